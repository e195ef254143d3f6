// core/ops_qkv.c: op_qkv_heads, the chain between the packed q/k/v projection and attention in one
// op: split, per-head RMSNorm of q and k (spec 6.2's q/k-norm), 2-D RoPE, with tangent and backward.
// Unfused this was a reshape, rmsnorm, reshape and rope2d per q and k, each a pass over memory, a
// tape record and an intermediate gradient; and three GEMMs each packing the same activations.
//
// Per row (b, t), head h, part q or k: x the head's HS inputs, s = (mean(x^2) + eps)^-1/2 (saved),
// n = x s, y = R_t (w n) with R_t the rotation of token t (identity outside the grid).
//   tangent  y' = R_t (w n' + w' n),  n' = s x' - n mean(n s x')
//   backward g = R_t^-1 dy;  dx += s (w g - n mean(w g n));  dw += sum_rows g n
#include "core.h"
#include "kernels.h"

#include <math.h>
#include <omp.h>
#include <string.h>

typedef struct {
    int B, T, NH, HS, C, start, n_pos;
    float eps;
    float *cs;     // rope2d_table (n_pos, HS/2, 2)
    float *rstd;   // (2, B*T, NH)
} Qkv;

// The rotation of row bt's token, or NULL outside the grid.
static const float *row_rotation(const Qkv *s, int64_t bt) {
    int p = (int)(bt % s->T) - s->start;
    return p >= 0 && p < s->n_pos ? s->cs + (size_t)p * s->HS : NULL;
}

static void qkv_forward(const Qkv *s, const float *in, const float *wq, const float *wk, float *out) {
    int64_t BT = (int64_t)s->B * s->T;
    int C = s->C, HS = s->HS;
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < BT; bt++) {
        const float *cs = row_rotation(s, bt);
        for (int part = 0; part < 2; part++) {
            const float *w = part ? wk : wq;
            for (int h = 0; h < s->NH; h++) {
                const float *x = in + bt * 3 * C + part * C + h * HS;
                float *y = out + (part * BT + bt) * C + h * HS;
                float r = (float)(1.0 / sqrt(dot_f64(x, NULL, HS) / HS + s->eps));
                s->rstd[(part * BT + bt) * s->NH + h] = r;
                if (w) for (int c = 0; c < HS; c++) y[c] = w[c] * (x[c] * r);
                else for (int c = 0; c < HS; c++) y[c] = x[c] * r;
                if (cs) rope_rotate(cs, y, y, HS, 1.0f);
            }
        }
        memcpy(out + (2 * BT + bt) * C, in + bt * 3 * C + 2 * C, (size_t)C * sizeof(float));
    }
}

static void qkv_tangent(const Qkv *s, const float *in, const float *tin, const float *wq, const float *wk,
                        const float *twq, const float *twk, float *tout) {
    int64_t BT = (int64_t)s->B * s->T;
    int C = s->C, HS = s->HS;
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < BT; bt++) {
        const float *cs = row_rotation(s, bt);
        for (int part = 0; part < 2; part++) {
            const float *w = part ? wk : wq, *tw = part ? twk : twq;
            for (int h = 0; h < s->NH; h++) {
                const float *x = in + bt * 3 * C + part * C + h * HS, *tx = tin ? tin + bt * 3 * C + part * C + h * HS : NULL;
                float *ty = tout + (part * BT + bt) * C + h * HS, r = s->rstd[(part * BT + bt) * s->NH + h];
                float mf = tx ? (float)(dot_f64(x, tx, HS) * ((double)r * r) / HS) : 0.0f;
                for (int c = 0; c < HS; c++) {
                    float n = x[c] * r, dn = tx ? tx[c] * r - n * mf : 0.0f;
                    ty[c] = (w ? w[c] * dn : dn) + (tw ? tw[c] * n : 0.0f);
                }
                if (cs) rope_rotate(cs, ty, ty, HS, 1.0f);
            }
        }
        float *tv = tout + (2 * BT + bt) * C;
        if (tin) memcpy(tv, tin + bt * 3 * C + 2 * C, (size_t)C * sizeof(float));
        else memset(tv, 0, (size_t)C * sizeof(float));
    }
}

// dw partials: (threads, 2, HS), added in thread order (deterministic for a thread count).
static void qkv_backward(const Qkv *s, const float *in, const float *wq, const float *wk, const float *dout,
                         float *din, float *dwq, float *dwk, float *part_dw, int nt) {
    int64_t BT = (int64_t)s->B * s->T;
    int C = s->C, HS = s->HS;
#pragma omp parallel num_threads(nt)
    {
        int tid = omp_get_thread_num();
        float *pdw = part_dw + (size_t)tid * 2 * HS;
        float g[HS];   // HS is at most 1024 (checked by op_qkv_heads)
#pragma omp for schedule(static)
        for (int64_t bt = 0; bt < BT; bt++) {
            const float *cs = row_rotation(s, bt);
            for (int part = 0; part < 2; part++) {
                const float *w = part ? wk : wq;
                int want_dw = part ? dwk != NULL : dwq != NULL;
                for (int h = 0; h < s->NH; h++) {
                    const float *x = in + bt * 3 * C + part * C + h * HS, *dy = dout + (part * BT + bt) * C + h * HS;
                    float r = s->rstd[(part * BT + bt) * s->NH + h];
                    if (cs) rope_rotate(cs, dy, g, HS, -1.0f);
                    else memcpy(g, dy, (size_t)HS * sizeof(float));
                    if (want_dw)
                        for (int c = 0; c < HS; c++) pdw[part * HS + c] += g[c] * (x[c] * r);
                    if (!din) continue;
                    double m = wdot_f64(w, g, x, HS) * r;   // mean(w g n) = r mean(w g x)
                    float mf = (float)(m / HS), *dx = din + bt * 3 * C + part * C + h * HS;
                    for (int c = 0; c < HS; c++) dx[c] += r * ((w ? w[c] * g[c] : g[c]) - x[c] * r * mf);
                }
            }
            if (din) {
                const float *dv = dout + (2 * BT + bt) * C;
                float *dx = din + bt * 3 * C + 2 * C;
                for (int c = 0; c < C; c++) dx[c] += dv[c];
            }
        }
    }
    for (int t = 0; t < nt; t++)
        for (int c = 0; c < HS; c++) {
            if (dwq) dwq[c] += part_dw[(size_t)t * 2 * HS + c];
            if (dwk) dwk[c] += part_dw[(size_t)t * 2 * HS + HS + c];
        }
}

static void qkv_backward_node(Tape *tp, TapeNode *n) {
    const Qkv *s = n->extra;
    Tensor *x = n->in[0], *wq = n->in[1], *wk = n->in[2];
    float *dwq = wq ? tensor_grad(tp, wq) : NULL, *dwk = wk ? tensor_grad(tp, wk) : NULL;
    int nt = omp_in_parallel() ? 1 : core_threads();
    float *part = NULL;
    if (dwq || dwk) {
        part = tape_alloc(tp, (size_t)nt * 2 * s->HS * sizeof(float));
        memset(part, 0, (size_t)nt * 2 * s->HS * sizeof(float));
    }
    qkv_backward(s, x->data, wq ? wq->data : NULL, wk ? wk->data : NULL, n->out->grad, tensor_grad(tp, x), dwq, dwk,
                 part, nt);
}

Tensor *op_qkv_heads(Tape *tp, Tensor *qkv, Tensor *q_norm, Tensor *k_norm, int n_heads, float eps, int start,
                     int gh, int gw, float theta) {
    tensor_require_contiguous(qkv, "op_qkv_heads");
    if (qkv->ndim != 3 || n_heads <= 0 || qkv->shape[2] % (3 * n_heads))
        core_fatal("op_qkv_heads: qkv must be (B, T, 3 NH HS)");
    Qkv *s = tape_alloc(tp, sizeof *s);
    s->B = qkv->shape[0], s->T = qkv->shape[1], s->NH = n_heads, s->C = qkv->shape[2] / 3, s->HS = s->C / n_heads;
    s->start = start, s->n_pos = gh * gw, s->eps = eps;
    if (s->HS % 4 || s->HS > 1024) core_fatal("op_qkv_heads: head size %d must be a multiple of 4 and at most 1024", s->HS);
    if (start < 0 || start + s->n_pos > s->T) core_fatal("op_qkv_heads: tokens [%d, %d) outside %d tokens", start, start + s->n_pos, s->T);
    Tensor *w[2] = {q_norm, k_norm};
    for (int i = 0; i < 2; i++) {
        if (w[i] && w[i]->numel != s->HS) core_fatal("op_qkv_heads: norm weight '%s' must have %d elements", w[i]->name ? w[i]->name : "?", s->HS);
        if (w[i]) tensor_require_contiguous(w[i], "op_qkv_heads");
    }
    s->cs = tape_alloc(tp, (size_t)s->n_pos * s->HS * sizeof(float));
    rope2d_table(s->cs, s->n_pos, gw, s->HS, theta);
    int64_t BT = (int64_t)s->B * s->T;
    s->rstd = tape_alloc(tp, (size_t)(2 * BT * s->NH > 0 ? 2 * BT * s->NH : 1) * sizeof(float));
    int shape[4] = {3, s->B, s->T, s->C};
    Tensor *in[3] = {qkv, q_norm, k_norm};
    Tensor *y = tape_output(tp, 4, shape, in, 3);
    const float *wq = q_norm ? q_norm->data : NULL, *wk = k_norm ? k_norm->data : NULL;
    qkv_forward(s, qkv->data, wq, wk, y->data);
    if (y->tangent)
        qkv_tangent(s, qkv->data, qkv->tangent, wq, wk, q_norm ? q_norm->tangent : NULL, k_norm ? k_norm->tangent : NULL,
                    y->tangent);
    TapeNode *n = tape_record(tp, "qkv_heads", y, qkv_backward_node, in, 3);
    if (n) n->extra = s;
    return y;
}
