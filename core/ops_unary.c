// core/ops_unary.c: elementwise y = f(x): SiLU, GELU (tanh and erf), ReLU, sigmoid, exp, sqrt,
// pow, clip, scale, add-scalar; and SwiGLU's gate silu(a) * b.
//
// The forward also writes f'(x) when a tangent or a gradient will need it, so the tangent is
// y' = f'(x) x' and the backward dx += f'(x) dy: one derivative evaluation serves both faces.
// ReLU is the exception: its derivative is the mask y > 0, read from the output, so it saves nothing.
#include "core.h"
#include "kernels.h"

#include <math.h>
#include <string.h>

typedef enum { U_SILU, U_GELU_TANH, U_GELU_ERF, U_RELU, U_SIGMOID, U_EXP, U_SQRT, U_POW, U_CLIP } UnaryKind;
static const char *unary_names[] = {"silu", "gelu_tanh", "gelu_erf", "relu", "sigmoid", "exp", "sqrt", "pow", "clip"};

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }
// The same through fast_expf (core/kernels.h), so SwiGLU's loops vectorise: glibc's expf is one call
// per element and was a third of SwiGLU's time. exp(-x) for x < -88 would overflow: 1/(1 + e^88) is
// already below float's smallest normal, so the argument is capped there (by a compare, not fminf,
// whose NaN rules keep GCC from vectorising).
static inline float sigmoid_fast(float x) {
    float m = -x > 88.0f ? 88.0f : -x;
    return 1.0f / (1.0f + fast_expf(m));
}

// x (n) -> y (n), d = f'(x) (n) or NULL. p0, p1: exponent, or clip bounds.
static void unary_forward(UnaryKind kind, const float *x, float *y, float *d, int64_t n, float p0, float p1) {
    const float k_tanh = 0.7978845608028654f;   // sqrt(2 / pi)
    const float k_erf = 0.7071067811865476f;    // 1 / sqrt(2)
    const float k_pdf = 0.3989422804014327f;    // 1 / sqrt(2 pi)
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], out, der;
        switch (kind) {
        case U_SILU: {
            float s = sigmoidf(v);
            out = v * s;
            der = s * (1.0f + v * (1.0f - s));
            break;
        }
        case U_GELU_TANH: {
            float u = k_tanh * (v + 0.044715f * v * v * v), th = tanhf(u);
            out = 0.5f * v * (1.0f + th);
            der = 0.5f * (1.0f + th) + 0.5f * v * (1.0f - th * th) * k_tanh * (1.0f + 3.0f * 0.044715f * v * v);
            break;
        }
        case U_GELU_ERF: {
            float c = 0.5f * (1.0f + erff(v * k_erf));
            out = v * c;
            der = c + v * k_pdf * expf(-0.5f * v * v);
            break;
        }
        case U_RELU: out = v > 0.0f ? v : 0.0f; der = v > 0.0f ? 1.0f : 0.0f; break;
        case U_SIGMOID: out = sigmoidf(v); der = out * (1.0f - out); break;
        case U_EXP: out = expf(v); der = out; break;
        case U_SQRT: out = sqrtf(v); der = 0.5f / out; break;
        case U_POW: out = powf(v, p0); der = p0 * powf(v, p0 - 1.0f); break;
        default:   // U_CLIP: the derivative is 1 strictly inside, 0 on the bounds and outside
            out = v < p0 ? p0 : (v > p1 ? p1 : v);
            der = v > p0 && v < p1 ? 1.0f : 0.0f;
            break;
        }
        y[i] = out;
        if (d) d[i] = der;
    }
}

// y' = d x'
static void unary_tangent(const float *d, const float *tx, float *ty, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) ty[i] = d[i] * tx[i];
}

// dx += d dy
static void unary_backward(const float *d, const float *dy, float *dx, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) dx[i] += d[i] * dy[i];
}

static void unary_backward_node(Tape *tp, TapeNode *n) {
    unary_backward(n->saved[0], n->out->grad, tensor_grad(tp, n->in[0]), n->out->numel);
}

static Tensor *unary_op(Tape *tp, UnaryKind kind, Tensor *x, float p0, float p1) {
    tensor_require_contiguous(x, unary_names[kind]);
    Tensor *y = tape_output(tp, x->ndim, x->shape, &x, 1);
    int need_d = y->tangent || y->requires_grad;
    float *d = need_d ? tape_alloc(tp, (size_t)x->numel * sizeof(float)) : NULL;
    unary_forward(kind, x->data, y->data, d, x->numel, p0, p1);
    if (y->tangent) unary_tangent(d, x->tangent, y->tangent, x->numel);
    TapeNode *n = tape_record(tp, unary_names[kind], y, unary_backward_node, &x, 1);
    if (n) n->saved[0] = d;
    return y;
}

// ReLU saves nothing: its derivative is the mask y > 0 of its own output (y > 0 iff x > 0, and a
// NaN input gives y = 0 and derivative 0, as unary_forward's rule).
static void relu_backward_node(Tape *tp, TapeNode *n) {
    const float *y = n->out->data, *dy = n->out->grad;
    float *dx = tensor_grad(tp, n->in[0]);
    int64_t N = n->out->numel;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) dx[i] += y[i] > 0.0f ? dy[i] : 0.0f;
}

static Tensor *relu_op(Tape *tp, Tensor *x) {
    tensor_require_contiguous(x, "relu");
    Tensor *y = tape_output(tp, x->ndim, x->shape, &x, 1);
    int64_t N = x->numel;
    const float *xd = x->data, *tx = x->tangent;
    float *yd = y->data, *ty = y->tangent;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) yd[i] = xd[i] > 0.0f ? xd[i] : 0.0f;
    if (ty) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < N; i++) ty[i] = yd[i] > 0.0f ? tx[i] : 0.0f;
    }
    tape_record(tp, "relu", y, relu_backward_node, &x, 1);
    return y;
}

Tensor *op_silu(Tape *tp, Tensor *x) { return unary_op(tp, U_SILU, x, 0, 0); }
Tensor *op_gelu_tanh(Tape *tp, Tensor *x) { return unary_op(tp, U_GELU_TANH, x, 0, 0); }
Tensor *op_gelu_erf(Tape *tp, Tensor *x) { return unary_op(tp, U_GELU_ERF, x, 0, 0); }
Tensor *op_relu(Tape *tp, Tensor *x) { return relu_op(tp, x); }
Tensor *op_sigmoid(Tape *tp, Tensor *x) { return unary_op(tp, U_SIGMOID, x, 0, 0); }
Tensor *op_exp(Tape *tp, Tensor *x) { return unary_op(tp, U_EXP, x, 0, 0); }
Tensor *op_sqrt(Tape *tp, Tensor *x) { return unary_op(tp, U_SQRT, x, 0, 0); }
Tensor *op_pow(Tape *tp, Tensor *x, float p) { return unary_op(tp, U_POW, x, p, 0); }
Tensor *op_clip(Tape *tp, Tensor *x, float lo, float hi) {
    if (!(lo <= hi)) core_fatal("op_clip: lo %g > hi %g", lo, hi);
    return unary_op(tp, U_CLIP, x, lo, hi);
}

// ---------------------------------------------------------------------------------------------
// Affine maps with a constant derivative: y = s x + c. No saved buffer.

static void affine_backward_node(Tape *tp, TapeNode *n) {
    const float *scale = n->extra;   // s: all the backward needs
    float s = *scale, *dx = tensor_grad(tp, n->in[0]);
    const float *dy = n->out->grad;
    int64_t N = n->out->numel;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) dx[i] += s * dy[i];
}

static Tensor *affine_op(Tape *tp, const char *name, Tensor *x, float s, float c) {
    tensor_require_contiguous(x, name);
    Tensor *y = tape_output(tp, x->ndim, x->shape, &x, 1);
    int64_t N = x->numel;
    const float *xd = x->data, *tx = x->tangent;
    float *yd = y->data, *ty = y->tangent;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < N; i++) yd[i] = s * xd[i] + c;
    if (ty) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < N; i++) ty[i] = s * tx[i];
    }
    TapeNode *n = tape_record(tp, name, y, affine_backward_node, &x, 1);
    if (n) n->extra = tape_keep(tp, &s, sizeof s);
    return y;
}

Tensor *op_scale(Tape *tp, Tensor *x, float s) { return affine_op(tp, "scale", x, s, 0.0f); }
Tensor *op_add_scalar(Tape *tp, Tensor *x, float c) { return affine_op(tp, "add_scalar", x, 1.0f, c); }

// ---------------------------------------------------------------------------------------------
// SwiGLU gate: y = silu(a) * b over R rows of H values; row r of a and b starts at r * ld (ld = H
// for two separate tensors, 2 H for a packed [a | b] whose b = a + H), of y at r * H.

static void swiglu_forward(const float *a, const float *b, float *y, int64_t R, int64_t H, int64_t ld) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *ar = a + r * ld, *br = b + r * ld;
        float *yr = y + r * H;
        for (int64_t i = 0; i < H; i++) yr[i] = ar[i] * sigmoid_fast(ar[i]) * br[i];
    }
}

// y' = silu'(a) a' b + silu(a) b'
static void swiglu_tangent(const float *a, const float *b, const float *ta, const float *tb, float *ty, int64_t R,
                           int64_t H, int64_t ld) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *ar = a + r * ld, *br = b + r * ld, *tar = ta ? ta + r * ld : NULL, *tbr = tb ? tb + r * ld : NULL;
        float *tyr = ty + r * H;
        for (int64_t i = 0; i < H; i++) {
            float s = sigmoid_fast(ar[i]), silu = ar[i] * s, dsilu = s * (1.0f + ar[i] * (1.0f - s));
            tyr[i] = (tar ? dsilu * tar[i] * br[i] : 0.0f) + (tbr ? silu * tbr[i] : 0.0f);
        }
    }
}

static void swiglu_backward(const float *a, const float *b, const float *dy, float *da, float *db, int64_t R, int64_t H,
                            int64_t ld) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *ar = a + r * ld, *br = b + r * ld, *dyr = dy + r * H;
        float *dar = da ? da + r * ld : NULL, *dbr = db ? db + r * ld : NULL;
        for (int64_t i = 0; i < H; i++) {
            float s = sigmoid_fast(ar[i]), silu = ar[i] * s, dsilu = s * (1.0f + ar[i] * (1.0f - s));
            if (dar) dar[i] += dyr[i] * dsilu * br[i];
            if (dbr) dbr[i] += dyr[i] * silu;
        }
    }
}

static void swiglu_backward_node(Tape *tp, TapeNode *n) {
    Tensor *a = n->in[0], *b = n->in[1];
    int64_t H = a->shape[a->ndim - 1], R = a->numel / (H ? H : 1);
    swiglu_backward(a->data, b->data, n->out->grad, tensor_grad(tp, a), tensor_grad(tp, b), R, H, H);
}

static void swiglu_packed_backward_node(Tape *tp, TapeNode *n) {
    Tensor *h = n->in[0];
    int64_t H = h->shape[h->ndim - 1] / 2, R = n->out->numel / (H ? H : 1);
    float *dh = tensor_grad(tp, h);
    if (dh) swiglu_backward(h->data, h->data + H, n->out->grad, dh, dh + H, R, H, 2 * H);
}

Tensor *op_swiglu_packed(Tape *tp, Tensor *h) {
    tensor_require_contiguous(h, "op_swiglu_packed");
    int64_t H2 = h->shape[h->ndim - 1], H = H2 / 2, R = h->numel / (H2 ? H2 : 1);
    if (H2 % 2) core_fatal("op_swiglu_packed: the last axis (%lld) must be even", (long long)H2);
    int shape[TENSOR_MAX_DIMS];
    for (int i = 0; i < h->ndim; i++) shape[i] = h->shape[i];
    shape[h->ndim - 1] = (int)H;
    Tensor *y = tape_output(tp, h->ndim, shape, &h, 1);
    swiglu_forward(h->data, h->data + H, y->data, R, H, H2);
    if (y->tangent) swiglu_tangent(h->data, h->data + H, h->tangent, h->tangent + H, y->tangent, R, H, H2);
    tape_record(tp, "swiglu_packed", y, swiglu_packed_backward_node, &h, 1);
    return y;
}

Tensor *op_swiglu(Tape *tp, Tensor *a, Tensor *b) {
    tensor_require_contiguous(a, "op_swiglu");
    tensor_require_contiguous(b, "op_swiglu");
    if (!tensor_same_shape(a, b)) core_fatal("op_swiglu: a and b differ in shape");
    Tensor *in[2] = {a, b};
    Tensor *y = tape_output(tp, a->ndim, a->shape, in, 2);
    int64_t H = a->shape[a->ndim - 1], R = a->numel / (H ? H : 1);   // rows of the last axis
    swiglu_forward(a->data, b->data, y->data, R, H, H);
    if (y->tangent) swiglu_tangent(a->data, b->data, a->tangent, b->tangent, y->tangent, R, H, H);
    tape_record(tp, "swiglu", y, swiglu_backward_node, in, 2);
    return y;
}
