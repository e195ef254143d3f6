// core/ops_matmul.c: matrix products on OpenBLAS: op_matmul (batched, all transpose cases) and
// op_linear (x w^T + b with torch's (out, in) weight layout).
#include "core.h"
#include "gemm.h"

#include <string.h>

// ---------------------------------------------------------------------------------------------
// matmul: a (batch, M, K) [or (batch, K, M) if ta], b (batch, K, N) [or (batch, N, K) if tb],
// or b (K, N) shared by every batch -> y (batch, M, N). Saves a MatmulShape.

static void matmul_forward(const float *a, const float *b, float *y, int batch, int M, int N, int K,
                           int ta, int tb, int shared, float beta) {
    if (shared && !ta) {   // one big GEMM: the batch folds into M
        sgemm_rm(0, tb, batch * M, N, K, a, b, y, beta);
        return;
    }
    for (int i = 0; i < batch; i++)
        sgemm_rm(ta, tb, M, N, K, a + (size_t)i * M * K, shared ? b : b + (size_t)i * K * N,
                 y + (size_t)i * M * N, beta);
}

// y' = a' b + a b'
static void matmul_tangent(const float *a, const float *ta_, const float *b, const float *tb_, float *ty,
                           int batch, int M, int N, int K, int ta, int tb, int shared) {
    float beta = 0.0f;
    if (ta_) matmul_forward(ta_, b, ty, batch, M, N, K, ta, tb, shared, beta), beta = 1.0f;
    if (tb_) matmul_forward(a, tb_, ty, batch, M, N, K, ta, tb, shared, beta), beta = 1.0f;
    if (beta == 0.0f) memset(ty, 0, (size_t)batch * M * N * sizeof(float));
}

static void matmul_backward(const float *a, const float *b, const float *dy, float *da, float *db,
                            int batch, int M, int N, int K, int ta, int tb, int shared) {
    if (shared && !ta) {
        int BM = batch * M;
        if (da) sgemm_rm(0, !tb, BM, K, N, dy, b, da, 1.0f);
        if (db) {
            if (!tb) sgemm_rm(1, 0, K, N, BM, a, dy, db, 1.0f);
            else sgemm_rm(1, 0, N, K, BM, dy, a, db, 1.0f);
        }
        return;
    }
    for (int i = 0; i < batch; i++) {
        const float *ai = a + (size_t)i * M * K, *bi = shared ? b : b + (size_t)i * K * N;
        const float *dyi = dy + (size_t)i * M * N;
        if (da) {
            float *dai = da + (size_t)i * M * K;
            if (!ta) sgemm_rm(0, !tb, M, K, N, dyi, bi, dai, 1.0f);
            else sgemm_rm(tb, 1, K, M, N, bi, dyi, dai, 1.0f);
        }
        if (db) {
            float *dbi = shared ? db : db + (size_t)i * K * N;
            if (!tb) sgemm_rm(!ta, 0, K, N, M, ai, dyi, dbi, 1.0f);
            else sgemm_rm(1, ta, N, K, M, dyi, ai, dbi, 1.0f);
        }
    }
}

// batch products of (M, K) by (K, N), each side transposed or not; b shared across the batch or not
typedef struct {
    int batch, M, N, K, ta, tb, shared;
} MatmulShape;

static void matmul_backward_node(Tape *tp, TapeNode *n) {
    const MatmulShape *s = n->extra;
    Tensor *a = n->in[0], *b = n->in[1];
    matmul_backward(a->data, b->data, n->out->grad, tensor_grad(tp, a), tensor_grad(tp, b), s->batch, s->M, s->N,
                    s->K, s->ta, s->tb, s->shared);
}

Tensor *op_matmul(Tape *tp, Tensor *a, Tensor *b, int ta, int tb) {
    tensor_require_contiguous(a, "op_matmul");
    tensor_require_contiguous(b, "op_matmul");
    if (a->ndim < 2 || b->ndim < 2) core_fatal("op_matmul: inputs must be at least 2-D");
    int shared = b->ndim == 2 && a->ndim > 2;
    if (!shared && a->ndim != b->ndim) core_fatal("op_matmul: a is %d-D, b is %d-D (b must match or be 2-D)", a->ndim, b->ndim);
    int batch = 1;
    for (int i = 0; i < a->ndim - 2; i++) {
        if (!shared && a->shape[i] != b->shape[i]) core_fatal("op_matmul: batch dim %d differs (%d vs %d)", i, a->shape[i], b->shape[i]);
        batch *= a->shape[i];
    }
    int ar = a->shape[a->ndim - 2], ac = a->shape[a->ndim - 1];
    int br = b->shape[b->ndim - 2], bc = b->shape[b->ndim - 1];
    int M = ta ? ac : ar, K = ta ? ar : ac, Kb = tb ? bc : br, N = tb ? br : bc;
    if (K != Kb) core_fatal("op_matmul: inner sizes differ (%d vs %d)", K, Kb);
    int shape[TENSOR_MAX_DIMS];
    for (int i = 0; i < a->ndim - 2; i++) shape[i] = a->shape[i];
    shape[a->ndim - 2] = M;
    shape[a->ndim - 1] = N;
    Tensor *in[2] = {a, b};
    Tensor *y = tape_output(tp, a->ndim, shape, in, 2);
    matmul_forward(a->data, b->data, y->data, batch, M, N, K, ta, tb, shared, 0.0f);
    if (y->tangent) matmul_tangent(a->data, a->tangent, b->data, b->tangent, y->tangent, batch, M, N, K, ta, tb, shared);
    TapeNode *n = tape_record(tp, "matmul", y, matmul_backward_node, in, 2);
    if (n) {
        MatmulShape s = {batch, M, N, K, ta, tb, shared};
        n->extra = tape_keep(tp, &s, sizeof s);
    }
    return y;
}

// ---------------------------------------------------------------------------------------------
// linear: x (M, K) (leading dims folded), w (N, K), b (N) -> y (M, N)

static void linear_forward(const float *x, const float *w, const float *b, float *y, int M, int N, int K) {
    if (b) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < M; i++) memcpy(y + (size_t)i * N, b, (size_t)N * sizeof(float));
    }
    sgemm_rm(0, 1, M, N, K, x, w, y, b ? 1.0f : 0.0f);
}

// y' = x' w^T + x w'^T + b'
static void linear_tangent(const float *x, const float *tx, const float *w, const float *tw, const float *tb,
                           float *ty, int M, int N, int K) {
    float beta = 0.0f;
    if (tb) {
        for (int i = 0; i < M; i++) memcpy(ty + (size_t)i * N, tb, (size_t)N * sizeof(float));
        beta = 1.0f;
    }
    if (tx) sgemm_rm(0, 1, M, N, K, tx, w, ty, beta), beta = 1.0f;
    if (tw) sgemm_rm(0, 1, M, N, K, x, tw, ty, beta), beta = 1.0f;
    if (beta == 0.0f) memset(ty, 0, (size_t)M * N * sizeof(float));
}

static void linear_backward(const float *x, const float *w, const float *dy, float *dx, float *dw, float *db,
                            int M, int N, int K) {
    if (dx) sgemm_rm(0, 0, M, K, N, dy, w, dx, 1.0f);
    if (dw) sgemm_rm(1, 0, N, K, M, dy, x, dw, 1.0f);
    if (db) {
#pragma omp parallel for schedule(static)
        for (int j = 0; j < N; j++) {
            float s = 0.0f;
            for (int i = 0; i < M; i++) s += dy[(size_t)i * N + j];
            db[j] += s;
        }
    }
}

// M rows of K inputs to N outputs
typedef struct {
    int M, N, K;
} LinearShape;

static void linear_backward_node(Tape *tp, TapeNode *n) {
    const LinearShape *s = n->extra;
    Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    linear_backward(x->data, w->data, n->out->grad, tensor_grad(tp, x), tensor_grad(tp, w),
                    b ? tensor_grad(tp, b) : NULL, s->M, s->N, s->K);
}

Tensor *op_linear(Tape *tp, Tensor *x, Tensor *w, Tensor *b) {
    tensor_require_contiguous(x, "op_linear");
    tensor_require_contiguous(w, "op_linear");
    int K = x->shape[x->ndim - 1];
    if (w->ndim != 2 || w->shape[1] != K)
        core_fatal("op_linear: weight '%s' must be (N, %d)", w->name ? w->name : "?", K);
    int N = w->shape[0];
    if (b && (b->numel != N)) core_fatal("op_linear: bias '%s' must have %d elements", b->name ? b->name : "?", N);
    int M = (int)(x->numel / (K ? K : 1));
    int shape[TENSOR_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = N;
    Tensor *in[3] = {x, w, b};
    Tensor *y = tape_output(tp, x->ndim, shape, in, 3);
    linear_forward(x->data, w->data, b ? b->data : NULL, y->data, M, N, K);
    if (y->tangent)
        linear_tangent(x->data, x->tangent, w->data, w->tangent, b ? b->tangent : NULL, y->tangent, M, N, K);
    TapeNode *n = tape_record(tp, "linear", y, linear_backward_node, in, 3);
    if (n) {
        LinearShape s = {M, N, K};
        n->extra = tape_keep(tp, &s, sizeof s);
    }
    return y;
}
