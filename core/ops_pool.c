// core/ops_pool.c: max, average and adaptive-average pooling over NCHW planes, with torch's
// output-size and divisor rules. Planes (N*C of them) are independent and run in parallel.
#include "core.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    int planes, H, W, OH, OW;
} PoolShape;

// ---------------------------------------------------------------------------------------------
// max pooling: saves the argmax (flat index into the plane) of every output

static void maxpool_backward_node(Tape *tp, TapeNode *n) {
    PoolShape *s = n->extra;
    const int *arg = (const int *)n->saved[0];
    const float *dy = n->out->grad;
    float *dx = tensor_grad(tp, n->in[0]);
    int OHW = s->OH * s->OW, HW = s->H * s->W;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < s->planes; p++)
        for (int i = 0; i < OHW; i++) dx[(size_t)p * HW + arg[(size_t)p * OHW + i]] += dy[(size_t)p * OHW + i];
}

static int pool_out_size(int in, int k, int s, int p, int ceil_mode) {
    int num = in + 2 * p - k;
    int out = (ceil_mode ? (num + s - 1) / s : num / s) + 1;
    // torch: the last window must start inside the input or its left padding
    if (ceil_mode && (out - 1) * s >= in + p) out--;
    return out;
}

// Max pooling without argmax (no tangent, no gradient: inference), separable: per output row the
// column-wise max of its window rows (one vectorisable pass per row), then the max over each
// window's columns. The same values as the argmax path: the same first-max rule, and a NaN
// anywhere in a window makes the output NaN. Windows never lie wholly in the padding (pad <= k/2).
static void maxpool_values(const PoolShape *s, const float *x, float *y, int kh, int kw, int sh, int sw, int ph,
                           int pw) {
    int OHW = s->OH * s->OW, HW = s->H * s->W;
#pragma omp parallel
    {
        float *vm = core_malloc((size_t)s->W * sizeof(float), "maxpool row");
#pragma omp for schedule(static)
        for (int p = 0; p < s->planes; p++) {
            const float *xp = x + (size_t)p * HW;
            float *yp = y + (size_t)p * OHW;
            for (int oh = 0; oh < s->OH; oh++) {
                int i0 = oh * sh - ph, i1 = i0 + kh;
                i0 = i0 < 0 ? 0 : i0, i1 = i1 > s->H ? s->H : i1;
                memcpy(vm, xp + (size_t)i0 * s->W, (size_t)s->W * sizeof(float));
                for (int i = i0 + 1; i < i1; i++) {
                    const float *r = xp + (size_t)i * s->W;
                    for (int j = 0; j < s->W; j++) vm[j] = (r[j] > vm[j] || r[j] != r[j]) ? r[j] : vm[j];
                }
                float *yr = yp + (size_t)oh * s->OW;
                // windows wholly inside [0, W): ow in [lo, hi), one tap at a time across them
                // (vectorisable); the clipped ones at the borders one by one
                int lo = (pw + sw - 1) / sw, hi = s->W - kw + pw >= 0 ? (s->W - kw + pw) / sw + 1 : 0;
                lo = lo < s->OW ? lo : s->OW, hi = hi < s->OW ? hi : s->OW, hi = hi > lo ? hi : lo;
                for (int ow = lo; ow < hi; ow++) yr[ow] = vm[ow * sw - pw];
                for (int k = 1; k < kw; k++)
                    for (int ow = lo; ow < hi; ow++) {
                        float v = vm[ow * sw - pw + k];
                        yr[ow] = (v > yr[ow] || v != v) ? v : yr[ow];
                    }
                for (int ow = 0; ow < s->OW; ow++) {
                    if (ow == lo) ow = hi;
                    if (ow >= s->OW) break;
                    int j0 = ow * sw - pw, j1 = j0 + kw;
                    j0 = j0 < 0 ? 0 : j0, j1 = j1 > s->W ? s->W : j1;
                    float best = vm[j0];
                    for (int j = j0 + 1; j < j1; j++) best = (vm[j] > best || vm[j] != vm[j]) ? vm[j] : best;
                    yr[ow] = best;
                }
            }
        }
        free(vm);
    }
}

Tensor *op_maxpool2d(Tape *tp, Tensor *x, int kh, int kw, int sh, int sw, int ph, int pw, int ceil_mode) {
    tensor_require_contiguous(x, "op_maxpool2d");
    if (x->ndim != 4) core_fatal("op_maxpool2d: x must be (N, C, H, W)");
    if (ph * 2 > kh || pw * 2 > kw) core_fatal("op_maxpool2d: padding must be at most half the kernel");
    PoolShape s = {x->shape[0] * x->shape[1], x->shape[2], x->shape[3], 0, 0};
    s.OH = pool_out_size(s.H, kh, sh, ph, ceil_mode);
    s.OW = pool_out_size(s.W, kw, sw, pw, ceil_mode);
    if (s.OH <= 0 || s.OW <= 0) core_fatal("op_maxpool2d: %dx%d input too small", s.H, s.W);
    int shape[4] = {x->shape[0], x->shape[1], s.OH, s.OW};
    Tensor *y = tape_output(tp, 4, shape, &x, 1);
    int OHW = s.OH * s.OW, HW = s.H * s.W;
    if (!y->tangent && !y->requires_grad) {   // nothing will read the argmax: values only
        maxpool_values(&s, x->data, y->data, kh, kw, sh, sw, ph, pw);
        return y;
    }
    int *arg = tape_alloc(tp, (size_t)s.planes * OHW * sizeof(int));
    if (kh == 2 && kw == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0 && 2 * s.OH <= s.H && 2 * s.OW <= s.W) {
        // VGG's 2x2 stride-2 pool, every window inside: no bounds tests (same first-max and NaN rule)
#pragma omp parallel for schedule(static)
        for (int p = 0; p < s.planes; p++) {
            const float *xp = x->data + (size_t)p * HW;
            float *yp = y->data + (size_t)p * OHW;
            int *ap = arg + (size_t)p * OHW;
            for (int oh = 0; oh < s.OH; oh++) {
                const float *r0 = xp + (size_t)2 * oh * s.W, *r1 = r0 + s.W;
                for (int ow = 0; ow < s.OW; ow++) {
                    int i0 = 2 * oh * s.W + 2 * ow;
                    float best = r0[2 * ow], v;
                    int bi = i0;
                    v = r0[2 * ow + 1];
                    if (v > best || v != v) best = v, bi = i0 + 1;
                    v = r1[2 * ow];
                    if (v > best || v != v) best = v, bi = i0 + s.W;
                    v = r1[2 * ow + 1];
                    if (v > best || v != v) best = v, bi = i0 + s.W + 1;
                    yp[oh * s.OW + ow] = best;
                    ap[oh * s.OW + ow] = bi;
                }
            }
        }
    } else {
#pragma omp parallel for schedule(static)
        for (int p = 0; p < s.planes; p++) {
            const float *xp = x->data + (size_t)p * HW;
            for (int oh = 0; oh < s.OH; oh++)
                for (int ow = 0; ow < s.OW; ow++) {
                    float best = -FLT_MAX;
                    int bi = -1;
                    for (int i = oh * sh - ph; i < oh * sh - ph + kh; i++) {
                        if (i < 0 || i >= s.H) continue;
                        for (int j = ow * sw - pw; j < ow * sw - pw + kw; j++) {
                            if (j < 0 || j >= s.W) continue;
                            float v = xp[i * s.W + j];
                            if (bi < 0 || v > best || v != v) best = v, bi = i * s.W + j;
                        }
                    }
                    y->data[(size_t)p * OHW + oh * s.OW + ow] = best;
                    arg[(size_t)p * OHW + oh * s.OW + ow] = bi;
                }
        }
    }
    if (y->tangent) {
        float *ty = y->tangent;
        const float *tx = x->tangent;
        int64_t ny = y->numel;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < ny; i++) ty[i] = tx[(i / OHW) * HW + arg[i]];
    }
    TapeNode *n = tape_record(tp, "maxpool2d", y, maxpool_backward_node, &x, 1);
    if (n) {
        n->saved[0] = (float *)arg;
        n->extra = tape_keep(tp, &s, sizeof s);
    }
    return y;
}

// ---------------------------------------------------------------------------------------------
// Average pooling, plain and adaptive: a linear map given by each output's window and divisor.
// windows (OH*OW, 5): h0, h1, w0, w1 (clipped to the input) and the divisor bits.

typedef struct {
    PoolShape s;
    int *win;      // (OH*OW) x 4
    float *inv;    // (OH*OW) 1 / divisor
    int stride1;   // windows one apart in both directions (the separable forward applies)
    int kw;        // the kernel's width (a window of kw columns lies wholly inside the input)
} AvgPool;

// y = A x for a stride-1 pool (Inception's 3 x 3 branch pools), separable: per output row the
// column sums of its window rows (one vectorisable pass per row), then the sums over each window's
// columns. Stride 1 means one output row shares its rows' window and the columns' windows slide.
static void avgpool_stride1(const AvgPool *a, const float *x, float *y) {
    int OHW = a->s.OH * a->s.OW, HW = a->s.H * a->s.W, W = a->s.W, OW = a->s.OW;
#pragma omp parallel
    {
        float *vs = core_malloc((size_t)W * sizeof(float), "avgpool row");
#pragma omp for schedule(static)
        for (int p = 0; p < a->s.planes; p++) {
            const float *xp = x + (size_t)p * HW;
            float *yp = y + (size_t)p * OHW;
            for (int oh = 0; oh < a->s.OH; oh++) {
                const int *w = a->win + 4 * (oh * OW);
                // vs = ((row h0 + row h0+1) + row h0+2) + ..., in one pass for the usual 2-3 rows
                // (the sums 0 + ... of the plain loop, whose first addition is exact)
                int nr = w[1] - w[0];
                const float *r0 = xp + (size_t)w[0] * W, *r1 = nr > 1 ? r0 + W : r0, *r2 = nr > 2 ? r1 + W : r1;
                if (nr <= 0)
                    for (int j = 0; j < W; j++) vs[j] = 0.0f;
                else if (nr == 1)
                    for (int j = 0; j < W; j++) vs[j] = r0[j];
                else if (nr == 2)
                    for (int j = 0; j < W; j++) vs[j] = r0[j] + r1[j];
                else
                    for (int j = 0; j < W; j++) vs[j] = (r0[j] + r1[j]) + r2[j];
                for (int i = w[0] + 3; i < w[1]; i++) {
                    const float *r = xp + (size_t)i * W;
                    for (int j = 0; j < W; j++) vs[j] += r[j];
                }
                // windows of kw full columns: one tap at a time across them (vectorisable, the
                // same order of sums as the border windows' loop); the clipped ones one by one
                float *yr = yp + (size_t)oh * OW;
                const float *inv = a->inv + (size_t)oh * OW;
                int lo = 0, hi = 0;
                while (lo < OW && w[4 * lo + 3] - w[4 * lo + 2] < a->kw) lo++;
                for (hi = lo; hi < OW && w[4 * hi + 3] - w[4 * hi + 2] == a->kw;) hi++;
                if (lo < hi) {
                    int j0 = w[4 * lo + 2] - lo;   // window of ow starts at column ow + j0
                    for (int ow = lo; ow < hi; ow++) yr[ow] = vs[ow + j0];
                    for (int k = 1; k < a->kw; k++)
                        for (int ow = lo; ow < hi; ow++) yr[ow] += vs[ow + j0 + k];
                    for (int ow = lo; ow < hi; ow++) yr[ow] *= inv[ow];
                }
                for (int ow = 0; ow < OW; ow++) {
                    if (ow == lo) ow = hi;
                    if (ow >= OW) break;
                    const int *wo = w + 4 * ow;
                    float acc = 0;
                    for (int j = wo[2]; j < wo[3]; j++) acc += vs[j];
                    yr[ow] = acc * inv[ow];
                }
            }
        }
        free(vs);
    }
}

// y = A x (per plane); transpose: x += A^T y
static void avgpool_apply(const AvgPool *a, const float *x, float *y, int transpose) {
    int OHW = a->s.OH * a->s.OW, HW = a->s.H * a->s.W, W = a->s.W;
    if (!transpose && a->stride1) {
        avgpool_stride1(a, x, y);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int p = 0; p < a->s.planes; p++) {
        const float *xp = x + (size_t)p * (transpose ? OHW : HW);
        float *yp = y + (size_t)p * (transpose ? HW : OHW);
        for (int o = 0; o < OHW; o++) {
            const int *w = a->win + 4 * o;
            if (transpose) {
                float g = xp[o] * a->inv[o];
                for (int i = w[0]; i < w[1]; i++)
                    for (int j = w[2]; j < w[3]; j++) yp[i * W + j] += g;
            } else {
                float acc = 0;
                for (int i = w[0]; i < w[1]; i++)
                    for (int j = w[2]; j < w[3]; j++) acc += xp[i * W + j];
                yp[o] = acc * a->inv[o];
            }
        }
    }
}

static void avgpool_backward_node(Tape *tp, TapeNode *n) { avgpool_apply(n->extra, n->out->grad, tensor_grad(tp, n->in[0]), 1); }

static Tensor *avgpool_run(Tape *tp, const char *name, Tensor *x, AvgPool *a) {
    int shape[4] = {x->shape[0], x->shape[1], a->s.OH, a->s.OW};
    Tensor *y = tape_output(tp, 4, shape, &x, 1);
    avgpool_apply(a, x->data, y->data, 0);
    if (y->tangent) avgpool_apply(a, x->tangent, y->tangent, 0);
    TapeNode *n = tape_record(tp, name, y, avgpool_backward_node, &x, 1);
    if (n) n->extra = a;
    return y;
}

static AvgPool *avgpool_new(Tape *tp, Tensor *x, int OH, int OW) {
    AvgPool *a = tape_alloc(tp, sizeof *a);
    a->s = (PoolShape){x->shape[0] * x->shape[1], x->shape[2], x->shape[3], OH, OW};
    a->stride1 = 0;
    a->win = tape_alloc(tp, (size_t)OH * OW * 4 * sizeof(int));
    a->inv = tape_alloc(tp, (size_t)OH * OW * sizeof(float));
    return a;
}

Tensor *op_avgpool2d(Tape *tp, Tensor *x, int kh, int kw, int sh, int sw, int ph, int pw, int count_include_pad) {
    tensor_require_contiguous(x, "op_avgpool2d");
    if (x->ndim != 4) core_fatal("op_avgpool2d: x must be (N, C, H, W)");
    if (ph * 2 > kh || pw * 2 > kw) core_fatal("op_avgpool2d: padding must be at most half the kernel");
    int H = x->shape[2], W = x->shape[3];
    int OH = pool_out_size(H, kh, sh, ph, 0), OW = pool_out_size(W, kw, sw, pw, 0);
    if (OH <= 0 || OW <= 0) core_fatal("op_avgpool2d: %dx%d input too small", H, W);
    AvgPool *a = avgpool_new(tp, x, OH, OW);
    a->stride1 = sh == 1 && sw == 1;
    a->kw = kw;
    for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
            // as torch: the padded window, clipped to input + padding, sets the divisor with padding
            int h0 = oh * sh - ph, w0 = ow * sw - pw;
            int h1 = h0 + kh < H + ph ? h0 + kh : H + ph, w1 = w0 + kw < W + pw ? w0 + kw : W + pw;
            int padded = (h1 - h0) * (w1 - w0);
            h0 = h0 < 0 ? 0 : h0, w0 = w0 < 0 ? 0 : w0;
            h1 = h1 > H ? H : h1, w1 = w1 > W ? W : w1;
            int *w = a->win + 4 * (oh * OW + ow);
            w[0] = h0, w[1] = h1, w[2] = w0, w[3] = w1;
            int div = count_include_pad ? padded : (h1 - h0) * (w1 - w0);
            a->inv[oh * OW + ow] = div > 0 ? 1.0f / (float)div : 0.0f;
        }
    return avgpool_run(tp, "avgpool2d", x, a);
}

Tensor *op_adaptive_avgpool2d(Tape *tp, Tensor *x, int OH, int OW) {
    tensor_require_contiguous(x, "op_adaptive_avgpool2d");
    if (x->ndim != 4 || OH <= 0 || OW <= 0) core_fatal("op_adaptive_avgpool2d: x must be (N, C, H, W), output positive");
    int H = x->shape[2], W = x->shape[3];
    AvgPool *a = avgpool_new(tp, x, OH, OW);
    for (int oh = 0; oh < OH; oh++)
        for (int ow = 0; ow < OW; ow++) {
            int *w = a->win + 4 * (oh * OW + ow);
            w[0] = (int)((int64_t)oh * H / OH);
            w[1] = (int)(((int64_t)(oh + 1) * H + OH - 1) / OH);
            w[2] = (int)((int64_t)ow * W / OW);
            w[3] = (int)(((int64_t)(ow + 1) * W + OW - 1) / OW);
            a->inv[oh * OW + ow] = 1.0f / (float)((w[1] - w[0]) * (w[3] - w[2]));
        }
    return avgpool_run(tp, "adaptive_avgpool2d", x, a);
}
