// core/ops_conv.c: 2-D convolution, NCHW, as im2col + sgemm per image and group (a 1x1 stride-1
// convolution skips im2col: the image already is the column matrix).
//   x (N, Cin, H, W), w (Cout, Cin/G, KH, KW), b (Cout) -> y (N, Cout, OH, OW)
// Per image and group g: y_g (Cout/G, OH*OW) = w_g (Cout/G, K) col_g (K, OH*OW), K = Cin/G*KH*KW.
// Backward recomputes the columns instead of saving them (they are KH*KW times the input).
// Tangent: conv(x', w) + conv(x, w') + b', the same kernel twice.
#include "core.h"
#include "gemm.h"

#include <string.h>

typedef struct {
    int N, Cin, H, W, Cout, KH, KW, OH, OW, sh, sw, ph, pw, G;
} ConvShape;

static int conv_is_pointwise(const ConvShape *s) {
    return s->KH == 1 && s->KW == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 && s->pw == 0;
}

// col (Cin/G*KH*KW, OH*OW) <- patches of image xn's channels [g*Cin/G, (g+1)*Cin/G)
static void im2col(const ConvShape *s, const float *xn, int g, float *col) {
    int cg = s->Cin / s->G, K = cg * s->KH * s->KW, OHW = s->OH * s->OW;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < K; r++) {
        int kw = r % s->KW, kh = (r / s->KW) % s->KH, c = g * cg + r / (s->KW * s->KH);
        const float *plane = xn + (size_t)c * s->H * s->W;
        float *out = col + (size_t)r * OHW;
        for (int oh = 0; oh < s->OH; oh++) {
            int ih = oh * s->sh - s->ph + kh;
            float *o = out + (size_t)oh * s->OW;
            if (ih < 0 || ih >= s->H) {
                memset(o, 0, (size_t)s->OW * sizeof(float));
                continue;
            }
            const float *row = plane + (size_t)ih * s->W;
            for (int ow = 0; ow < s->OW; ow++) {
                int iw = ow * s->sw - s->pw + kw;
                o[ow] = iw >= 0 && iw < s->W ? row[iw] : 0.0f;
            }
        }
    }
}

// dxn channels of group g += col2im(dcol)
static void col2im_add(const ConvShape *s, const float *dcol, int g, float *dxn) {
    int cg = s->Cin / s->G, OHW = s->OH * s->OW;
    // one channel per iteration: its KH*KW rows write only its own plane
#pragma omp parallel for schedule(static)
    for (int cl = 0; cl < cg; cl++) {
        float *plane = dxn + (size_t)(g * cg + cl) * s->H * s->W;
        for (int kh = 0; kh < s->KH; kh++)
            for (int kw = 0; kw < s->KW; kw++) {
                const float *in = dcol + ((size_t)(cl * s->KH + kh) * s->KW + kw) * OHW;
                for (int oh = 0; oh < s->OH; oh++) {
                    int ih = oh * s->sh - s->ph + kh;
                    if (ih < 0 || ih >= s->H) continue;
                    float *row = plane + (size_t)ih * s->W;
                    const float *d = in + (size_t)oh * s->OW;
                    for (int ow = 0; ow < s->OW; ow++) {
                        int iw = ow * s->sw - s->pw + kw;
                        if (iw >= 0 && iw < s->W) row[iw] += d[ow];
                    }
                }
            }
    }
}

// y = conv(x, w) + b (b may be NULL); col scratch (K, OH*OW) unless pointwise.
static void conv_forward(const ConvShape *s, const float *x, const float *w, const float *b, float *y, float *col) {
    int cg = s->Cin / s->G, og = s->Cout / s->G, K = cg * s->KH * s->KW, OHW = s->OH * s->OW;
    for (int n = 0; n < s->N; n++) {
        const float *xn = x + (size_t)n * s->Cin * s->H * s->W;
        float *yn = y + (size_t)n * s->Cout * OHW;
        for (int g = 0; g < s->G; g++) {
            const float *cm = xn + (size_t)g * cg * s->H * s->W;
            if (!conv_is_pointwise(s)) {
                im2col(s, xn, g, col);
                cm = col;
            }
            sgemm_rm(0, 0, og, OHW, K, w + (size_t)g * og * K, cm, yn + (size_t)g * og * OHW, 0.0f);
        }
        if (b) {
#pragma omp parallel for schedule(static)
            for (int c = 0; c < s->Cout; c++)
                for (int i = 0; i < OHW; i++) yn[(size_t)c * OHW + i] += b[c];
        }
    }
}

static void conv_backward(const ConvShape *s, const float *x, const float *w, const float *dy, float *dx, float *dw,
                          float *db, float *col) {
    int cg = s->Cin / s->G, og = s->Cout / s->G, K = cg * s->KH * s->KW, OHW = s->OH * s->OW;
    int pointwise = conv_is_pointwise(s);
    for (int n = 0; n < s->N; n++) {
        const float *xn = x + (size_t)n * s->Cin * s->H * s->W, *dyn = dy + (size_t)n * s->Cout * OHW;
        float *dxn = dx ? dx + (size_t)n * s->Cin * s->H * s->W : NULL;
        for (int g = 0; g < s->G; g++) {
            const float *dyg = dyn + (size_t)g * og * OHW, *wg = w + (size_t)g * og * K;
            if (dw) {
                const float *cm = xn + (size_t)g * cg * s->H * s->W;
                if (!pointwise) {
                    im2col(s, xn, g, col);
                    cm = col;
                }
                sgemm_rm(0, 1, og, K, OHW, dyg, cm, dw + (size_t)g * og * K, 1.0f);
            }
            if (dxn) {
                if (pointwise) {   // the columns are dx itself
                    sgemm_rm(1, 0, K, OHW, og, wg, dyg, dxn + (size_t)g * cg * s->H * s->W, 1.0f);
                } else {
                    sgemm_rm(1, 0, K, OHW, og, wg, dyg, col, 0.0f);
                    col2im_add(s, col, g, dxn);
                }
            }
        }
        if (db) {
#pragma omp parallel for schedule(static)
            for (int c = 0; c < s->Cout; c++) {
                float acc = 0;
                for (int i = 0; i < OHW; i++) acc += dyn[(size_t)c * OHW + i];
                db[c] += acc;
            }
        }
    }
}

static float *conv_col(Tape *tp, const ConvShape *s) {
    if (conv_is_pointwise(s)) return NULL;
    return tape_alloc(tp, (size_t)(s->Cin / s->G) * s->KH * s->KW * s->OH * s->OW * sizeof(float));
}

static void conv_backward_node(Tape *tp, TapeNode *n) {
    ConvShape *s = n->extra;
    Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    conv_backward(s, x->data, w->data, n->out->grad, tensor_grad(tp, x), tensor_grad(tp, w),
                  b ? tensor_grad(tp, b) : NULL, conv_col(tp, s));
}

Tensor *op_conv2d(Tape *tp, Tensor *x, Tensor *w, Tensor *b, int sh, int sw, int ph, int pw, int groups) {
    tensor_require_contiguous(x, "op_conv2d");
    tensor_require_contiguous(w, "op_conv2d");
    const char *wn = w->name ? w->name : "?";
    if (x->ndim != 4 || w->ndim != 4) core_fatal("op_conv2d: x and weight '%s' must be 4-D", wn);
    ConvShape s = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3],
                   0, 0, sh, sw, ph, pw, groups};
    if (groups <= 0 || s.Cin % groups || s.Cout % groups || w->shape[1] != s.Cin / groups)
        core_fatal("op_conv2d: weight '%s' (%d, %d, %d, %d) does not fit %d input channels in %d groups", wn,
                   w->shape[0], w->shape[1], w->shape[2], w->shape[3], s.Cin, groups);
    if (b && b->numel != s.Cout) core_fatal("op_conv2d: bias of '%s' must have %d elements", wn, s.Cout);
    if (sh <= 0 || sw <= 0 || ph < 0 || pw < 0) core_fatal("op_conv2d: bad stride or padding");
    s.OH = (s.H + 2 * ph - s.KH) / sh + 1;
    s.OW = (s.W + 2 * pw - s.KW) / sw + 1;
    if (s.OH <= 0 || s.OW <= 0) core_fatal("op_conv2d: %dx%d input too small for a %dx%d kernel ('%s')", s.H, s.W, s.KH, s.KW, wn);
    int shape[4] = {s.N, s.Cout, s.OH, s.OW};
    Tensor *in[3] = {x, w, b};
    Tensor *y = tape_output(tp, 4, shape, in, 3);
    float *col = conv_col(tp, &s);
    conv_forward(&s, x->data, w->data, b ? b->data : NULL, y->data, col);
    if (y->tangent) {
        int first = 1;
        if (x->tangent) conv_forward(&s, x->tangent, w->data, NULL, y->tangent, col), first = 0;
        if (w->tangent) {
            float *tmp = first ? y->tangent : tape_alloc(tp, (size_t)y->numel * sizeof(float));
            conv_forward(&s, x->data, w->tangent, NULL, tmp, col);
            if (!first)
                for (int64_t i = 0; i < y->numel; i++) y->tangent[i] += tmp[i];
            first = 0;
        }
        if (first) memset(y->tangent, 0, (size_t)y->numel * sizeof(float));
        if (b && b->tangent) {
            int64_t OHW = (int64_t)s.OH * s.OW;
            for (int64_t i = 0; i < y->numel; i++) y->tangent[i] += b->tangent[(i / OHW) % s.Cout];
        }
    }
    TapeNode *n = tape_record(tp, "conv2d", y, conv_backward_node, in, 3);
    if (n) {
        n->extra = tape_alloc(tp, sizeof s);
        memcpy(n->extra, &s, sizeof s);
    }
    return y;
}
