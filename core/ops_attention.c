// core/ops_attention.c: scaled dot-product attention per head, with the explicit tangent of
// spec 5.4 (fused kernels usually lack one):
//   S = Q K^T / sqrt(HS), P = softmax(S), O = P V
//   S' = (Q' K^T + Q K'^T) / sqrt(HS), P' = P (S' - rowsum(P S')), O' = P' V + P V'
// q, k, v, o are (B, T, NH*HS): head h of batch b is a (T, HS) block with row stride C = NH*HS,
// handed to sgemm with that leading dimension, so no head is ever copied out.
// (B, NH) blocks run in parallel, each doing its own single-threaded GEMMs.
#include "core.h"
#include "gemm.h"
#include "kernels.h"

#include <math.h>
#include <omp.h>
#include <string.h>

typedef struct {
    int B, T, NH, HS, C;
    float scale;
} AttnShape;

static void gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda, const float *Bm,
                 int ldb, float beta, float *Cm, int ldc) {
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K, alpha, A,
                lda, Bm, ldb, beta, Cm, ldc);
}

// q, k, v, o (B, T, C); P (B, NH, T, T) saved softmax or NULL; scratch (threads, 2, T, T).
// Tangents tq, tk, tv may be NULL (zero); to is NULL when no tangent is wanted.
static void attention_forward(const AttnShape *s, const float *q, const float *k, const float *v, float *o,
                              float *P_saved, const float *tq, const float *tk, const float *tv, float *to,
                              float *scratch) {
    int T = s->T, C = s->C, HS = s->HS;
    int prev = blas_serial_begin();
#pragma omp parallel for schedule(dynamic)
    for (int bh = 0; bh < s->B * s->NH; bh++) {
        int b = bh / s->NH, h = bh % s->NH;
        size_t off = (size_t)b * T * C + (size_t)h * HS;
        float *work = scratch + (size_t)omp_get_thread_num() * 2 * T * T;
        float *P = P_saved ? P_saved + (size_t)bh * T * T : work + (size_t)T * T;
        float *S = work;
        gemm(0, 1, T, T, HS, s->scale, q + off, C, k + off, C, 0.0f, S, T);
        softmax_rows(S, P, T, T);
        gemm(0, 0, T, HS, T, 1.0f, P, T, v + off, C, 0.0f, o + off, C);
        if (!to) continue;
        float *dS = S;   // S is spent: reuse it for S', then P'
        float beta = 0.0f;
        if (tq) gemm(0, 1, T, T, HS, s->scale, tq + off, C, k + off, C, 0.0f, dS, T), beta = 1.0f;
        if (tk) gemm(0, 1, T, T, HS, s->scale, q + off, C, tk + off, C, beta, dS, T), beta = 1.0f;
        if (beta != 0.0f) {
            softmax_rows_jvp(P, dS, dS, T, T, 0);   // in place: each row reads a before writing
            gemm(0, 0, T, HS, T, 1.0f, dS, T, v + off, C, 0.0f, to + off, C);
        } else {
            for (int t = 0; t < T; t++) memset(to + off + (size_t)t * C, 0, (size_t)HS * sizeof(float));
        }
        if (tv) gemm(0, 0, T, HS, T, 1.0f, P, T, tv + off, C, 1.0f, to + off, C);
    }
    blas_serial_end(prev);
}

// dP = dO V^T; dV += P^T dO; dS = P (dP - rowsum(P dP)); dQ += scale dS K; dK += scale dS^T Q
static void attention_backward(const AttnShape *s, const float *q, const float *k, const float *v, const float *P_all,
                               const float *dO, float *dq, float *dk, float *dv, float *scratch) {
    int T = s->T, C = s->C, HS = s->HS;
    int prev = blas_serial_begin();
#pragma omp parallel for schedule(dynamic)
    for (int bh = 0; bh < s->B * s->NH; bh++) {
        int b = bh / s->NH, h = bh % s->NH;
        size_t off = (size_t)b * T * C + (size_t)h * HS;
        const float *P = P_all + (size_t)bh * T * T;
        float *dP = scratch + (size_t)omp_get_thread_num() * 2 * T * T;
        if (dv) gemm(1, 0, T, HS, T, 1.0f, P, T, dO + off, C, 1.0f, dv + off, C);
        if (!dq && !dk) continue;
        gemm(0, 1, T, T, HS, 1.0f, dO + off, C, v + off, C, 0.0f, dP, T);
        softmax_rows_jvp(P, dP, dP, T, T, 0);
        if (dq) gemm(0, 0, T, HS, T, s->scale, dP, T, k + off, C, 1.0f, dq + off, C);
        if (dk) gemm(1, 0, T, HS, T, s->scale, dP, T, q + off, C, 1.0f, dk + off, C);
    }
    blas_serial_end(prev);
}

static void attention_backward_node(Tape *tp, TapeNode *n) {
    AttnShape *s = n->extra;
    Tensor *q = n->in[0], *k = n->in[1], *v = n->in[2];
    float *scratch = tape_alloc(tp, (size_t)core_threads() * 2 * s->T * s->T * sizeof(float));
    attention_backward(s, q->data, k->data, v->data, n->saved[0], n->out->grad, tensor_grad(tp, q),
                       tensor_grad(tp, k), tensor_grad(tp, v), scratch);
}

Tensor *op_attention(Tape *tp, Tensor *q, Tensor *k, Tensor *v, int n_heads) {
    tensor_require_contiguous(q, "op_attention");
    tensor_require_contiguous(k, "op_attention");
    tensor_require_contiguous(v, "op_attention");
    if (q->ndim != 3 || !tensor_same_shape(q, k) || !tensor_same_shape(q, v))
        core_fatal("op_attention: q, k, v must all be (B, T, NH*HS)");
    AttnShape s = {q->shape[0], q->shape[1], n_heads, 0, q->shape[2], 0};
    if (n_heads <= 0 || s.C % n_heads) core_fatal("op_attention: width %d is not divisible by %d heads", s.C, n_heads);
    s.HS = s.C / n_heads;
    s.scale = 1.0f / sqrtf((float)s.HS);
    Tensor *in[3] = {q, k, v};
    Tensor *y = tape_output(tp, 3, q->shape, in, 3);
    float *P = y->requires_grad ? tape_alloc(tp, (size_t)s.B * s.NH * s.T * s.T * sizeof(float)) : NULL;
    float *scratch = tape_alloc(tp, (size_t)core_threads() * 2 * s.T * s.T * sizeof(float));
    attention_forward(&s, q->data, k->data, v->data, y->data, P, q->tangent, k->tangent, v->tangent, y->tangent,
                      scratch);
    TapeNode *n = tape_record(tp, "attention", y, attention_backward_node, in, 3);
    if (n) {
        n->saved[0] = P;
        n->extra = tape_keep(tp, &s, sizeof s);
    }
    return y;
}
