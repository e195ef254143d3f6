// core/ops_norm.c: normalisations over the last axis: RMSNorm, LayerNorm, softmax.
// LayerNorm over the channel axis of (N, C, H, W) tensors, op_layernorm_channels, is at the end.
//
// Each forward saves the per-row statistic (rstd) so backward and tangent are one pass each.
// Tangent rules are spec 5.4's: with n the normalised row and e = rstd x' (RMSNorm) or
// e = rstd (x' - mean x') (LayerNorm), n' = e - n mean(n e).
#include "core.h"

#include "kernels.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

// R rows of C: the saved shape of RMSNorm, LayerNorm and softmax over the last axis
typedef struct {
    int64_t R;
    int C;
} RowShape;

static void *keep_rows(Tape *tp, int64_t R, int C) {
    RowShape s = {R, C};
    return tape_keep(tp, &s, sizeof s);
}

// Weight gradients sum over rows; rows are split across threads, each with its own partial sum,
// then added in thread order (deterministic for a given thread count).
void add_row_sums(const float *a, const float *b, float *dw, int64_t R, int C) {
    if (!dw) return;
    int nt = core_threads();
    float *part = core_calloc((size_t)nt * C, sizeof(float), "norm weight-gradient partials");
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        float *p = part + (size_t)t * C;
        for (int64_t r = t; r < R; r += T) {
            const float *ar = a + r * C, *br = b ? b + r * C : NULL;
            if (br) for (int c = 0; c < C; c++) p[c] += ar[c] * br[c];
            else for (int c = 0; c < C; c++) p[c] += ar[c];
        }
    }
    for (int t = 0; t < nt; t++)
        for (int c = 0; c < C; c++) dw[c] += part[(size_t)t * C + c];
    free(part);
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: x (R, C), w (C) or NULL -> y = w * x * rstd, rstd = (mean(x^2) + eps)^-1/2; saves rstd (R)

static void rmsnorm_forward(const float *x, const float *w, float *y, float *rstd, int64_t R, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        float *yr = y + r * C;
        double ss = dot_f64(xr, NULL, C);
        float s = (float)(1.0 / sqrt(ss / C + eps));
        rstd[r] = s;
        if (w) for (int c = 0; c < C; c++) yr[c] = w[c] * (xr[c] * s);
        else for (int c = 0; c < C; c++) yr[c] = xr[c] * s;
    }
}

// n' = rstd x' - n mean(n rstd x'); y' = w n' + w' n
static void rmsnorm_tangent(const float *x, const float *tx, const float *w, const float *tw, const float *rstd,
                            float *ty, int64_t R, int C) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C, *txr = tx ? tx + r * C : NULL;
        float *tr = ty + r * C, s = rstd[r];
        // mean(n rstd x') = rstd^2 mean(x x'): one dot product
        double m = txr ? dot_f64(xr, txr, C) * ((double)s * s) : 0.0;
        float mf = (float)(m / C);
        for (int c = 0; c < C; c++) {
            float n = xr[c] * s, dn = txr ? txr[c] * s - n * mf : 0.0f;
            tr[c] = (w ? w[c] * dn : dn) + (tw ? tw[c] * n : 0.0f);
        }
    }
}

// dn = w dy; dx += rstd (dn - n mean(dn n)); dw += sum_rows dy n
static void rmsnorm_backward(const float *x, const float *w, const float *rstd, const float *dy, float *dx,
                             float *dw, float *nbuf, int64_t R, int C) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C, *dyr = dy + r * C;
        float s = rstd[r], *nr = nbuf ? nbuf + r * C : NULL;
        if (nr)
            for (int c = 0; c < C; c++) nr[c] = xr[c] * s;
        if (!dx) continue;
        double m = wdot_f64(w, dyr, xr, C) * s;   // mean(dn n) = rstd mean(w dy x)
        float mf = (float)(m / C), *dxr = dx + r * C;
        for (int c = 0; c < C; c++) dxr[c] += s * ((w ? w[c] * dyr[c] : dyr[c]) - xr[c] * s * mf);
    }
    if (dw) add_row_sums(dy, nbuf, dw, R, C);
}

static void rmsnorm_backward_node(Tape *tp, TapeNode *n) {
    Tensor *x = n->in[0], *w = n->in[1];
    float *dw = w ? tensor_grad(tp, w) : NULL;
    const RowShape *rs = n->extra;
    int64_t R = rs->R;
    int C = rs->C;
    float *nbuf = dw ? tape_alloc(tp, (size_t)R * C * sizeof(float)) : NULL;
    rmsnorm_backward(x->data, w ? w->data : NULL, n->saved[0], n->out->grad, tensor_grad(tp, x), dw, nbuf, R, C);
}

Tensor *op_rmsnorm(Tape *tp, Tensor *x, Tensor *w, float eps) {
    tensor_require_contiguous(x, "op_rmsnorm");
    int C = x->shape[x->ndim - 1];
    if (w && w->numel != C) core_fatal("op_rmsnorm: weight '%s' has %lld elements, rows have %d", w->name ? w->name : "?", (long long)w->numel, C);
    int64_t R = x->numel / (C ? C : 1);
    Tensor *in[2] = {x, w};
    Tensor *y = tape_output(tp, x->ndim, x->shape, in, 2);
    float *rstd = tape_alloc(tp, (size_t)(R ? R : 1) * sizeof(float));
    rmsnorm_forward(x->data, w ? w->data : NULL, y->data, rstd, R, C, eps);
    if (y->tangent) rmsnorm_tangent(x->data, x->tangent, w ? w->data : NULL, w ? w->tangent : NULL, rstd, y->tangent, R, C);
    TapeNode *n = tape_record(tp, "rmsnorm", y, rmsnorm_backward_node, in, 2);
    if (n) {
        n->saved[0] = rstd;
        n->extra = keep_rows(tp, R, C);
    }
    return y;
}

// ---------------------------------------------------------------------------------------------
// LayerNorm: x (R, C), w, b (C) or NULL -> y = w * (x - mu) rstd + b; saves mu, rstd (R)

static void layernorm_forward(const float *x, const float *w, const float *b, float *y, float *mu, float *rstd,
                              int64_t R, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        float *yr = y + r * C;
        double m = 0, v = 0;
        for (int c = 0; c < C; c++) m += xr[c];
        m /= C;
        for (int c = 0; c < C; c++) v += (xr[c] - m) * (xr[c] - m);
        v /= C;
        float mf = (float)m, s = (float)(1.0 / sqrt(v + eps));
        mu[r] = mf;
        rstd[r] = s;
        for (int c = 0; c < C; c++) {
            float n = (xr[c] - mf) * s;
            yr[c] = (w ? w[c] * n : n) + (b ? b[c] : 0.0f);
        }
    }
}

// e = rstd (x' - mean x'); n' = e - n mean(n e); y' = w n' + w' n + b'
static void layernorm_tangent(const float *x, const float *tx, const float *w, const float *tw, const float *tb,
                              const float *mu, const float *rstd, float *ty, int64_t R, int C) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C, *txr = tx ? tx + r * C : NULL;
        float *tr = ty + r * C, s = rstd[r], m = mu[r];
        double mt = 0, mne = 0;
        if (txr) {
            for (int c = 0; c < C; c++) mt += txr[c];
            mt /= C;
            for (int c = 0; c < C; c++) mne += (double)((xr[c] - m) * s) * (s * (txr[c] - (float)mt));
            mne /= C;
        }
        for (int c = 0; c < C; c++) {
            float n = (xr[c] - m) * s;
            float dn = txr ? s * (txr[c] - (float)mt) - n * (float)mne : 0.0f;
            tr[c] = (w ? w[c] * dn : dn) + (tw ? tw[c] * n : 0.0f) + (tb ? tb[c] : 0.0f);
        }
    }
}

// dn = w dy; dx += rstd (dn - mean(dn) - n mean(dn n)); dw += sum dy n; db += sum dy
static void layernorm_backward_node(Tape *tp, TapeNode *nd) {
    Tensor *x = nd->in[0], *wt = nd->in[1], *bt = nd->in[2];
    const float *w = wt ? wt->data : NULL, *dy = nd->out->grad, *mu = nd->saved[0], *rstd = nd->saved[1];
    float *dx = tensor_grad(tp, x), *dw = wt ? tensor_grad(tp, wt) : NULL, *db = bt ? tensor_grad(tp, bt) : NULL;
    const RowShape *rs = nd->extra;
    int64_t R = rs->R;
    int C = rs->C;
    float *nbuf = dw ? tape_alloc(tp, (size_t)R * C * sizeof(float)) : NULL;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x->data + r * C, *dyr = dy + r * C;
        float s = rstd[r], m = mu[r];
        double mdn = 0, mdnn = 0;
        for (int c = 0; c < C; c++) {
            float n = (xr[c] - m) * s, dn = w ? w[c] * dyr[c] : dyr[c];
            if (nbuf) nbuf[r * C + c] = n;
            mdn += dn;
            mdnn += (double)dn * n;
        }
        if (!dx) continue;
        float a = (float)(mdn / C), bb = (float)(mdnn / C), *dxr = dx + r * C;
        for (int c = 0; c < C; c++) {
            float n = (xr[c] - m) * s, dn = w ? w[c] * dyr[c] : dyr[c];
            dxr[c] += s * (dn - a - n * bb);
        }
    }
    if (dw) add_row_sums(dy, nbuf, dw, R, C);
    if (db) add_row_sums(dy, NULL, db, R, C);
}

Tensor *op_layernorm(Tape *tp, Tensor *x, Tensor *w, Tensor *b, float eps) {
    tensor_require_contiguous(x, "op_layernorm");
    int C = x->shape[x->ndim - 1];
    if ((w && w->numel != C) || (b && b->numel != C)) core_fatal("op_layernorm: weight or bias size differs from %d", C);
    int64_t R = x->numel / (C ? C : 1);
    Tensor *in[3] = {x, w, b};
    Tensor *y = tape_output(tp, x->ndim, x->shape, in, 3);
    float *mu = tape_alloc(tp, (size_t)(R ? R : 1) * sizeof(float)), *rstd = tape_alloc(tp, (size_t)(R ? R : 1) * sizeof(float));
    layernorm_forward(x->data, w ? w->data : NULL, b ? b->data : NULL, y->data, mu, rstd, R, C, eps);
    if (y->tangent)
        layernorm_tangent(x->data, x->tangent, w ? w->data : NULL, w ? w->tangent : NULL, b ? b->tangent : NULL, mu,
                          rstd, y->tangent, R, C);
    TapeNode *n = tape_record(tp, "layernorm", y, layernorm_backward_node, in, 3);
    if (n) {
        n->saved[0] = mu;
        n->saved[1] = rstd;
        n->extra = keep_rows(tp, R, C);
    }
    return y;
}

// ---------------------------------------------------------------------------------------------
// softmax over the last axis: x (R, C) -> y (R, C). y' = y (x' - sum(y x')); dx += y (dy - sum(y dy))

void softmax_rows(const float *x, float *y, int64_t R, int C) {
    // 16 partial maxima and sums in a fixed order: vectorisable and thread-count independent
    enum { L = 16 };
    for (int64_t r = 0; r < R; r++) {
        const float *xr = x + r * C;
        float *yr = y + r * C;
        float m[L], s[L];
        for (int j = 0; j < L; j++) m[j] = xr[0], s[j] = 0.0f;
        int c = 0;
        for (; c + L <= C; c += L)
            for (int j = 0; j < L; j++) m[j] = xr[c + j] > m[j] ? xr[c + j] : m[j];
        for (; c < C; c++) m[0] = xr[c] > m[0] ? xr[c] : m[0];
        float mx = m[0];
        for (int j = 1; j < L; j++) mx = m[j] > mx ? m[j] : mx;
        for (c = 0; c < C; c++) yr[c] = fast_expf(xr[c] - mx);
        for (c = 0; c + L <= C; c += L)
            for (int j = 0; j < L; j++) s[j] += yr[c + j];
        for (; c < C; c++) s[0] += yr[c];
        float sum = 0.0f;
        for (int j = 0; j < L; j++) sum += s[j];
        float inv = 1.0f / sum;
        for (c = 0; c < C; c++) yr[c] *= inv;
    }
}

// out = y (a - sum(y a)) row by row, added into out when accumulate
void softmax_rows_jvp(const float *y, const float *a, float *out, int64_t R, int C, int accumulate) {
    enum { L = 16 };
    for (int64_t r = 0; r < R; r++) {
        const float *yr = y + r * C, *ar = a + r * C;
        float *o = out + r * C, p[L] = {0};
        int c = 0;
        for (; c + L <= C; c += L)
            for (int j = 0; j < L; j++) p[j] += yr[c + j] * ar[c + j];
        for (; c < C; c++) p[0] += yr[c] * ar[c];
        float s = 0.0f;
        for (int j = 0; j < L; j++) s += p[j];
        if (accumulate) for (c = 0; c < C; c++) o[c] += yr[c] * (ar[c] - s);
        else for (c = 0; c < C; c++) o[c] = yr[c] * (ar[c] - s);
    }
}

static void softmax_backward_node(Tape *tp, TapeNode *n) {
    const RowShape *rs = n->extra;
    int64_t R = rs->R;
    int C = rs->C;
    const float *y = n->out->data, *dy = n->out->grad;
    float *dx = tensor_grad(tp, n->in[0]);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) softmax_rows_jvp(y + r * C, dy + r * C, dx + r * C, 1, C, 1);
}

Tensor *op_softmax(Tape *tp, Tensor *x) {
    tensor_require_contiguous(x, "op_softmax");
    int C = x->shape[x->ndim - 1];
    int64_t R = x->numel / (C ? C : 1);
    Tensor *y = tape_output(tp, x->ndim, x->shape, &x, 1);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) softmax_rows(x->data + r * C, y->data + r * C, 1, C);
    if (y->tangent) {
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < R; r++) softmax_rows_jvp(y->data + r * C, x->tangent + r * C, y->tangent + r * C, 1, C, 0);
    }
    TapeNode *n = tape_record(tp, "softmax", y, softmax_backward_node, &x, 1);
    if (n) n->extra = keep_rows(tp, R, C);
    return y;
}

// ---------------------------------------------------------------------------------------------
// LayerNorm over channels: x (N, C, S...) (S the trailing dims, H*W for images), w, b (C) or NULL
// -> y[n, c, s] = w[c] (x[n, c, s] - mu[n, s]) rstd[n, s] + b[c]; saves mu, rstd (N, S).
// The same numbers as op_layernorm on the channels-last layout, without the two transposed copies
// (ConvNeXt's trunk stays NCHW). The statistics of LNC_BLOCK neighbouring positions are summed
// together channel by channel, so every read is a contiguous run; blocks of positions are
// independent, so the result does not depend on the thread count.

#define LNC_BLOCK 64

// N images of C channels at S positions
typedef struct {
    int64_t N, S;
    int C;
} ChannelsShape;

static void layernorm_channels_forward(const float *x, const float *w, const float *b, float *y, float *mu,
                                       float *rstd, int64_t N, int C, int64_t S, float eps) {
    int64_t nb = (S + LNC_BLOCK - 1) / LNC_BLOCK;
#pragma omp parallel for schedule(static)
    for (int64_t job = 0; job < N * nb; job++) {
        int64_t n = job / nb, p0 = (job % nb) * LNC_BLOCK, len = S - p0 < LNC_BLOCK ? S - p0 : LNC_BLOCK;
        const float *xb = x + n * C * S + p0;
        float *yb = y + n * C * S + p0;
        double m[LNC_BLOCK] = {0}, v[LNC_BLOCK] = {0};
        float mf[LNC_BLOCK], sf[LNC_BLOCK];
        for (int c = 0; c < C; c++)
            for (int64_t i = 0; i < len; i++) m[i] += xb[c * S + i];
        for (int64_t i = 0; i < len; i++) m[i] /= C;
        for (int c = 0; c < C; c++)
            for (int64_t i = 0; i < len; i++) v[i] += (xb[c * S + i] - m[i]) * (xb[c * S + i] - m[i]);
        for (int64_t i = 0; i < len; i++) {
            mf[i] = (float)m[i];
            sf[i] = (float)(1.0 / sqrt(v[i] / C + eps));
            mu[n * S + p0 + i] = mf[i];
            rstd[n * S + p0 + i] = sf[i];
        }
        for (int c = 0; c < C; c++) {
            float wc = w ? w[c] : 1.0f, bc = b ? b[c] : 0.0f;
            const float *xr = xb + c * S;
            float *yr = yb + c * S;
            if (w)
                for (int64_t i = 0; i < len; i++) yr[i] = wc * ((xr[i] - mf[i]) * sf[i]) + bc;
            else
                for (int64_t i = 0; i < len; i++) yr[i] = (xr[i] - mf[i]) * sf[i] + bc;
        }
    }
}

// e = rstd (x' - mean_c x'); n' = e - n mean_c(n e); y' = w n' + w' n + b'
static void layernorm_channels_tangent(const float *x, const float *tx, const float *w, const float *tw,
                                       const float *tb, const float *mu, const float *rstd, float *ty, int64_t N,
                                       int C, int64_t S) {
    int64_t nb = (S + LNC_BLOCK - 1) / LNC_BLOCK;
#pragma omp parallel for schedule(static)
    for (int64_t job = 0; job < N * nb; job++) {
        int64_t n = job / nb, p0 = (job % nb) * LNC_BLOCK, len = S - p0 < LNC_BLOCK ? S - p0 : LNC_BLOCK;
        const float *xb = x + n * C * S + p0, *txb = tx ? tx + n * C * S + p0 : NULL;
        const float *m = mu + n * S + p0, *s = rstd + n * S + p0;
        float *tyb = ty + n * C * S + p0;
        double mt[LNC_BLOCK] = {0}, mne[LNC_BLOCK] = {0};
        float mtf[LNC_BLOCK] = {0}, mnef[LNC_BLOCK] = {0};
        if (txb) {
            for (int c = 0; c < C; c++)
                for (int64_t i = 0; i < len; i++) mt[i] += txb[c * S + i];
            for (int64_t i = 0; i < len; i++) mtf[i] = (float)(mt[i] / C);
            for (int c = 0; c < C; c++)
                for (int64_t i = 0; i < len; i++)
                    mne[i] += (double)((xb[c * S + i] - m[i]) * s[i]) * (s[i] * (txb[c * S + i] - mtf[i]));
            for (int64_t i = 0; i < len; i++) mnef[i] = (float)(mne[i] / C);
        }
        for (int c = 0; c < C; c++) {
            const float *xr = xb + c * S, *txr = txb ? txb + c * S : NULL;
            float *tr = tyb + c * S, wc = w ? w[c] : 1.0f, twc = tw ? tw[c] : 0.0f, tbc = tb ? tb[c] : 0.0f;
            for (int64_t i = 0; i < len; i++) {
                float nn = (xr[i] - m[i]) * s[i];
                float dn = txr ? s[i] * (txr[i] - mtf[i]) - nn * mnef[i] : 0.0f;
                tr[i] = wc * dn + twc * nn + tbc;
            }
        }
    }
}

// dn = w dy; dx += rstd (dn - mean_c dn - n mean_c(dn n)); dw[c] += sum_{n,s} dy n; db[c] += sum dy.
// The weight sums run channel by channel (each thread owns its channels): no partials to merge.
static void layernorm_channels_backward_node(Tape *tp, TapeNode *nd) {
    Tensor *x = nd->in[0], *wt = nd->in[1], *bt = nd->in[2];
    const float *xd = x->data, *w = wt ? wt->data : NULL, *dy = nd->out->grad, *mu = nd->saved[0],
                *rstd = nd->saved[1];
    float *dx = tensor_grad(tp, x), *dw = wt ? tensor_grad(tp, wt) : NULL, *db = bt ? tensor_grad(tp, bt) : NULL;
    const ChannelsShape *sh = nd->extra;
    int64_t N = sh->N, S = sh->S;
    int C = sh->C;
    if (dx) {
        int64_t nb = (S + LNC_BLOCK - 1) / LNC_BLOCK;
#pragma omp parallel for schedule(static)
        for (int64_t job = 0; job < N * nb; job++) {
            int64_t n = job / nb, p0 = (job % nb) * LNC_BLOCK, len = S - p0 < LNC_BLOCK ? S - p0 : LNC_BLOCK;
            const float *xb = xd + n * C * S + p0, *dyb = dy + n * C * S + p0;
            const float *m = mu + n * S + p0, *s = rstd + n * S + p0;
            float *dxb = dx + n * C * S + p0;
            double mdn[LNC_BLOCK] = {0}, mdnn[LNC_BLOCK] = {0};
            float a[LNC_BLOCK], bb[LNC_BLOCK];
            for (int c = 0; c < C; c++) {
                const float *xr = xb + c * S, *dyr = dyb + c * S;
                float wc = w ? w[c] : 1.0f;
                for (int64_t i = 0; i < len; i++) {
                    float nn = (xr[i] - m[i]) * s[i], dn = wc * dyr[i];
                    mdn[i] += dn;
                    mdnn[i] += (double)dn * nn;
                }
            }
            for (int64_t i = 0; i < len; i++) a[i] = (float)(mdn[i] / C), bb[i] = (float)(mdnn[i] / C);
            for (int c = 0; c < C; c++) {
                const float *xr = xb + c * S, *dyr = dyb + c * S;
                float *dxr = dxb + c * S, wc = w ? w[c] : 1.0f;
                for (int64_t i = 0; i < len; i++) {
                    float nn = (xr[i] - m[i]) * s[i], dn = wc * dyr[i];
                    dxr[i] += s[i] * (dn - a[i] - nn * bb[i]);
                }
            }
        }
    }
    if (dw || db) {
#pragma omp parallel for schedule(static)
        for (int c = 0; c < C; c++) {
            double sw = 0, sb = 0;
            for (int64_t n = 0; n < N; n++) {
                const float *xr = xd + (n * C + c) * S, *dyr = dy + (n * C + c) * S;
                const float *m = mu + n * S, *s = rstd + n * S;
                for (int64_t i = 0; i < S; i++) {
                    sw += (double)dyr[i] * ((xr[i] - m[i]) * s[i]);
                    sb += dyr[i];
                }
            }
            if (dw) dw[c] += (float)sw;
            if (db) db[c] += (float)sb;
        }
    }
}

Tensor *op_layernorm_channels(Tape *tp, Tensor *x, Tensor *w, Tensor *b, float eps) {
    tensor_require_contiguous(x, "op_layernorm_channels");
    if (x->ndim < 2) core_fatal("op_layernorm_channels: x must be (N, C, ...), got %d-D", x->ndim);
    int N = x->shape[0], C = x->shape[1];
    if ((w && w->numel != C) || (b && b->numel != C))
        core_fatal("op_layernorm_channels: weight or bias size differs from %d channels", C);
    int64_t NC = (int64_t)N * C, S = NC > 0 ? x->numel / NC : 0;
    Tensor *in[3] = {x, w, b};
    Tensor *y = tape_output(tp, x->ndim, x->shape, in, 3);
    size_t stat = (size_t)(N * S > 0 ? N * S : 1) * sizeof(float);
    float *mu = tape_alloc(tp, stat), *rstd = tape_alloc(tp, stat);
    layernorm_channels_forward(x->data, w ? w->data : NULL, b ? b->data : NULL, y->data, mu, rstd, N, C, S, eps);
    if (y->tangent)
        layernorm_channels_tangent(x->data, x->tangent, w ? w->data : NULL, w ? w->tangent : NULL,
                                   b ? b->tangent : NULL, mu, rstd, y->tangent, N, C, S);
    TapeNode *n = tape_record(tp, "layernorm_channels", y, layernorm_channels_backward_node, in, 3);
    if (n) {
        n->saved[0] = mu;
        n->saved[1] = rstd;
        ChannelsShape sh = {N, S, C};
        n->extra = tape_keep(tp, &sh, sizeof sh);
    }
    return y;
}
