// core/ops_resize.c: bilinear and bicubic resize as torch.nn.functional.interpolate
// (align_corners=False, with or without antialias).
//
// Resizing is separable and linear: y = Rh x Rw^T per plane, with Rh (OH, H) and Rw (OW, W) the
// 1-D interpolation matrices. Building them once makes the three faces two GEMMs each:
// forward and tangent apply (Rh, Rw), backward applies their transposes.
#include "core.h"
#include "gemm.h"

#include <math.h>
#include <string.h>

static double cubic1(double x, double A) { return ((A + 2) * x - (A + 3)) * x * x + 1; }        // |x| <= 1
static double cubic2(double x, double A) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; }  // 1 < |x| < 2

// Antialiasing filters of torch's _upsample_*_aa kernels.
static double aa_filter(ResizeMode mode, double x) {
    x = fabs(x);
    if (mode == RESIZE_BILINEAR) return x < 1.0 ? 1.0 - x : 0.0;
    const double a = -0.5;
    if (x < 1.0) return cubic1(x, a);
    if (x < 2.0) return cubic2(x, a);
    return 0.0;
}

// R (out, in): row i holds the weights of output i over the inputs.
static void resize_matrix(float *R, int in, int out, ResizeMode mode, int antialias) {
    memset(R, 0, (size_t)in * out * sizeof(float));
    float scale = (float)in / (float)out;   // torch computes the scale in the input's precision
    for (int i = 0; i < out; i++) {
        float *row = R + (size_t)i * in;
        if (antialias) {
            double interp = mode == RESIZE_BILINEAR ? 1.0 : 2.0;   // half the filter size
            double support = scale >= 1.0f ? interp * scale : interp;
            double center = scale * (i + 0.5), invscale = scale >= 1.0f ? 1.0 / scale : 1.0;
            int xmin = (int)(center - support + 0.5);
            if (xmin < 0) xmin = 0;
            int xmax = (int)(center + support + 0.5);
            if (xmax > in) xmax = in;
            double total = 0, w[4096];
            int n = xmax - xmin;
            if (n > 4096) core_fatal("op_resize: antialias window of %d inputs is too large", n);
            for (int j = 0; j < n; j++) total += (w[j] = aa_filter(mode, (j + xmin - center + 0.5) * invscale));
            for (int j = 0; j < n; j++) row[xmin + j] = (float)(total != 0 ? w[j] / total : 0);
        } else if (mode == RESIZE_BILINEAR) {
            float src = scale * (i + 0.5f) - 0.5f;
            if (src < 0) src = 0;
            int i0 = (int)src;
            if (i0 > in - 1) i0 = in - 1;
            int i1 = i0 + 1 < in ? i0 + 1 : in - 1;
            float l = src - (float)i0;
            row[i0] += 1.0f - l;
            row[i1] += l;
        } else {
            float src = scale * (i + 0.5f) - 0.5f;
            int i0 = (int)floorf(src);
            double t = src - (float)i0, A = -0.75;
            double w[4] = {cubic2(t + 1, A), cubic1(t, A), cubic1(1 - t, A), cubic2(2 - t, A)};
            for (int k = 0; k < 4; k++) {   // out-of-range taps read the border, as torch
                int j = i0 - 1 + k;
                j = j < 0 ? 0 : (j > in - 1 ? in - 1 : j);
                row[j] += (float)w[k];
            }
        }
    }
}

typedef struct {
    int planes, H, W, OH, OW;
    float *Rh, *Rw;
} Resize;

// y (planes, OH, OW) = Rh x Rw^T, or x (planes, H, W) += Rh^T y Rw when transpose.
static void resize_apply(const Resize *r, const float *src, float *dst, float *tmp, int transpose) {
    for (int p = 0; p < r->planes; p++) {
        if (!transpose) {
            const float *x = src + (size_t)p * r->H * r->W;
            sgemm_rm(0, 1, r->H, r->OW, r->W, x, r->Rw, tmp, 0.0f);                          // (H, OW)
            sgemm_rm(0, 0, r->OH, r->OW, r->H, r->Rh, tmp, dst + (size_t)p * r->OH * r->OW, 0.0f);
        } else {
            const float *dy = src + (size_t)p * r->OH * r->OW;
            sgemm_rm(1, 0, r->H, r->OW, r->OH, r->Rh, dy, tmp, 0.0f);                         // (H, OW)
            sgemm_rm(0, 0, r->H, r->W, r->OW, tmp, r->Rw, dst + (size_t)p * r->H * r->W, 1.0f);
        }
    }
}

static void resize_backward_node(Tape *tp, TapeNode *n) {
    Resize *r = n->extra;
    float *tmp = tape_alloc(tp, (size_t)r->H * r->OW * sizeof(float));
    resize_apply(r, n->out->grad, tensor_grad(tp, n->in[0]), tmp, 1);
}

Tensor *op_resize(Tape *tp, Tensor *x, int out_h, int out_w, ResizeMode mode, int antialias) {
    tensor_require_contiguous(x, "op_resize");
    if (x->ndim != 4 || out_h <= 0 || out_w <= 0) core_fatal("op_resize: x must be (N, C, H, W), output size positive");
    Resize *r = tape_alloc(tp, sizeof *r);
    *r = (Resize){x->shape[0] * x->shape[1], x->shape[2], x->shape[3], out_h, out_w, NULL, NULL};
    r->Rh = tape_alloc(tp, (size_t)r->OH * r->H * sizeof(float));
    r->Rw = tape_alloc(tp, (size_t)r->OW * r->W * sizeof(float));
    resize_matrix(r->Rh, r->H, r->OH, mode, antialias);
    resize_matrix(r->Rw, r->W, r->OW, mode, antialias);
    int shape[4] = {x->shape[0], x->shape[1], out_h, out_w};
    Tensor *y = tape_output(tp, 4, shape, &x, 1);
    float *tmp = tape_alloc(tp, (size_t)r->H * r->OW * sizeof(float));
    resize_apply(r, x->data, y->data, tmp, 0);
    if (y->tangent) resize_apply(r, x->tangent, y->tangent, tmp, 0);
    TapeNode *n = tape_record(tp, "resize", y, resize_backward_node, &x, 1);
    if (n) n->extra = r;
    return y;
}
