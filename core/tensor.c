// core/tensor.c: tensor records, views, and the lazily allocated gradient buffers.
#include "core.h"

#include <stdio.h>
#include <string.h>

static void set_shape(Tensor *t, int ndim, const int *shape) {
    if (ndim < 1 || ndim > TENSOR_MAX_DIMS) core_fatal("tensor: ndim %d out of range 1..4", ndim);
    t->ndim = ndim;
    int64_t n = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        if (shape[i] < 0) core_fatal("tensor: negative dimension %d", shape[i]);
        t->shape[i] = shape[i];
        t->stride[i] = n;
        n *= shape[i];
    }
    for (int i = ndim; i < TENSOR_MAX_DIMS; i++) {
        t->shape[i] = 1;
        t->stride[i] = 1;
    }
    t->numel = n;
}

int tensor_is_contiguous(const Tensor *t) {
    int64_t n = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != n) return 0;
        n *= t->shape[i];
    }
    return 1;
}

int tensor_same_shape(const Tensor *a, const Tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

void tensor_shape_str(const Tensor *t, char *buf, size_t n) {
    size_t k = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < t->ndim && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, i ? ", %d" : "%d", t->shape[i]);
    if (k < n) snprintf(buf + k, n - k, ")");
}

int tensor_axis(const Tensor *t, int axis) {
    int a = axis < 0 ? axis + t->ndim : axis;
    if (a < 0 || a >= t->ndim) core_fatal("tensor: axis %d out of range for a %d-D tensor", axis, t->ndim);
    return a;
}

void tensor_require_contiguous(const Tensor *t, const char *op) {
    if (!tensor_is_contiguous(t)) {
        char s[64];
        tensor_shape_str(t, s, sizeof s);
        core_fatal("%s: input '%s' %s is a strided view; call op_contiguous first", op,
                   t->name ? t->name : "?", s);
    }
}

static Tensor *tensor_record(Tape *tp, int ndim, const int *shape, const char *name) {
    Tensor *t = arena_calloc(tp->arena, sizeof *t);
    set_shape(t, ndim, shape);
    t->name = name;
    return t;
}

Tensor *tensor_new(Tape *tp, int ndim, const int *shape, const char *name) {
    Tensor *t = tensor_record(tp, ndim, shape, name);
    t->data = arena_alloc(tp->arena, (size_t)t->numel * sizeof(float));
    return t;
}

Tensor *tensor_zeros(Tape *tp, int ndim, const int *shape, const char *name) {
    Tensor *t = tensor_record(tp, ndim, shape, name);
    t->data = arena_calloc(tp->arena, (size_t)t->numel * sizeof(float));
    return t;
}

Tensor *tensor_from(Tape *tp, int ndim, const int *shape, const float *src, const char *name) {
    Tensor *t = tensor_new(tp, ndim, shape, name);
    memcpy(t->data, src, (size_t)t->numel * sizeof(float));
    return t;
}

Tensor *tensor_scalar(Tape *tp, float value) {
    int one = 1;
    Tensor *t = tensor_new(tp, 1, &one, "scalar");
    t->data[0] = value;
    return t;
}

Tensor *tensor_wrap(Tape *tp, float *data, int ndim, const int *shape, const char *name) {
    Tensor *t = tensor_record(tp, ndim, shape, name);
    t->data = data;
    return t;
}

float *tensor_attach_tangent(Tape *tp, Tensor *t) {
    if (t->base) core_fatal("tensor_attach_tangent: '%s' is a view; attach to its base", t->name ? t->name : "?");
    if (!t->tangent) t->tangent = arena_calloc(tp->arena, (size_t)t->numel * sizeof(float));
    return t->tangent;
}

float *tensor_grad(Tape *tp, Tensor *t) {
    if (!t->requires_grad) return NULL;
    if (t->base) {
        float *g = tensor_grad(tp, t->base);
        return g ? g + t->offset : NULL;
    }
    if (!t->grad) t->grad = arena_calloc(tp->arena, (size_t)t->numel * sizeof(float));
    if (tp->grad_to) {   // this tape keeps its own parameter gradients (tape_redirect_grads)
        uintptr_t g = (uintptr_t)t->grad, lo = (uintptr_t)tp->grad_from;
        if (g >= lo && g < lo + (uintptr_t)tp->grad_n * sizeof(float)) return tp->grad_to + (t->grad - tp->grad_from);
    }
    return t->grad;
}

Tensor *tape_output(Tape *tp, int ndim, const int *shape, Tensor *const *inputs, int n_in) {
    Tensor *t = tensor_new(tp, ndim, shape, NULL);
    int tangent = 0, grad = 0;
    for (int i = 0; i < n_in; i++) {
        if (!inputs[i]) continue;
        tangent |= inputs[i]->tangent != NULL;
        grad |= inputs[i]->requires_grad;
    }
    if (tangent) t->tangent = arena_alloc(tp->arena, (size_t)t->numel * sizeof(float));
    t->requires_grad = tp->recording && grad;
    return t;
}

// A view shares storage with x's base. Gradient and tangent alias too (see core.h).
static Tensor *view_of(Tape *tp, Tensor *x, int ndim, const int *shape, const int64_t *stride,
                       int64_t offset) {
    Tensor *v = arena_calloc(tp->arena, sizeof *v);
    Tensor *base = x->base ? x->base : x;
    set_shape(v, ndim, shape);
    for (int i = 0; i < ndim; i++) v->stride[i] = stride[i];
    v->base = base;
    v->offset = x->offset + offset;
    v->data = base->data + v->offset;
    // From x, not from base: a view of an op_drop_tangent view must stay tangent-free.
    v->tangent = x->tangent ? x->tangent + offset : NULL;
    v->requires_grad = x->requires_grad;
    v->name = x->name;
    return v;
}

Tensor *op_reshape(Tape *tp, Tensor *x, int ndim, const int *shape) {
    tensor_require_contiguous(x, "op_reshape");
    int64_t n = 1;
    int s[TENSOR_MAX_DIMS];
    int infer = -1;
    for (int i = 0; i < ndim; i++) {
        s[i] = shape[i];
        if (shape[i] == -1) {
            if (infer >= 0) core_fatal("op_reshape: more than one -1 in the new shape");
            infer = i;
        } else n *= shape[i];
    }
    if (infer >= 0) {
        if (n == 0 || x->numel % n) core_fatal("op_reshape: cannot infer a dimension of %lld elements", (long long)x->numel);
        s[infer] = (int)(x->numel / n);
        n *= s[infer];
    }
    if (n != x->numel) {
        char a[64];
        tensor_shape_str(x, a, sizeof a);
        core_fatal("op_reshape: %s has %lld elements, the new shape %lld", a, (long long)x->numel, (long long)n);
    }
    Tensor tmp;
    set_shape(&tmp, ndim, s);
    return view_of(tp, x, ndim, s, tmp.stride, 0);
}

Tensor *op_permute(Tape *tp, Tensor *x, const int *perm) {
    int shape[TENSOR_MAX_DIMS];
    int64_t stride[TENSOR_MAX_DIMS];
    int seen = 0;
    for (int i = 0; i < x->ndim; i++) {
        int p = perm[i];
        if (p < 0 || p >= x->ndim || (seen & (1 << p))) core_fatal("op_permute: bad permutation");
        seen |= 1 << p;
        shape[i] = x->shape[p];
        stride[i] = x->stride[p];
    }
    return view_of(tp, x, x->ndim, shape, stride, 0);
}

Tensor *op_slice(Tape *tp, Tensor *x, int axis, int start, int end) {
    int a = tensor_axis(x, axis);
    if (start < 0 || end > x->shape[a] || start > end)
        core_fatal("op_slice: [%d, %d) out of range for axis %d of size %d", start, end, a, x->shape[a]);
    int shape[TENSOR_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[a] = end - start;
    return view_of(tp, x, x->ndim, shape, x->stride, (int64_t)start * x->stride[a]);
}

Tensor *op_stop_gradient(Tape *tp, Tensor *x) {
    Tensor *y = tensor_wrap(tp, x->data, x->ndim, x->shape, x->name);
    for (int i = 0; i < x->ndim; i++) y->stride[i] = x->stride[i];
    return y;
}

Tensor *op_drop_tangent(Tape *tp, Tensor *x) {
    Tensor *v = view_of(tp, x, x->ndim, x->shape, x->stride, 0);
    v->tangent = NULL;
    return v;
}

Tensor *op_tangent_of(Tape *tp, Tensor *x) {
    if (!x->tangent) {
        Tensor *z = tensor_zeros(tp, x->ndim, x->shape, x->name);
        return z;
    }
    Tensor *y = tensor_wrap(tp, x->tangent, x->ndim, x->shape, x->name);
    for (int i = 0; i < x->ndim; i++) y->stride[i] = x->stride[i];
    return y;
}
