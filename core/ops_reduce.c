// core/ops_reduce.c: sum and mean over a set of axes.
//
// The input is padded to 4-D; kept and reduced axes are listed once, and each output element
// sums its reduced block (in double: the loss means reduce millions of terms).
#include "core.h"

#include <string.h>

typedef struct {
    int shape[4];
    int64_t stride[4];    // input strides (dense)
    int kept[4], n_kept, red[4], n_red;
    int64_t n_out, n_in_block;
    int trailing;         // the reduced axes are the last ones: a block is one dense run
} Reduction;

static void reduction_plan(const Tensor *x, int mask, Reduction *r) {
    memset(r, 0, sizeof *r);
    int pad = 4 - x->ndim;
    int64_t st = 1;
    for (int i = 3; i >= 0; i--) {
        r->shape[i] = i >= pad ? x->shape[i - pad] : 1;
        r->stride[i] = st;
        st *= r->shape[i];
    }
    r->n_out = r->n_in_block = 1;
    for (int i = pad; i < 4; i++) {
        if (mask & (1 << (i - pad))) r->red[r->n_red++] = i, r->n_in_block *= r->shape[i];
        else r->kept[r->n_kept++] = i, r->n_out *= r->shape[i];
    }
    r->trailing = 1;
    for (int j = 0; j < r->n_red; j++) r->trailing &= r->red[j] == 4 - r->n_red + j;
}

// Offset in the input of output element o (kept coords) or of block element k (reduced coords).
static inline int64_t coords_offset(const Reduction *r, const int *axes, int n_axes, int64_t idx) {
    int64_t off = 0;
    for (int j = n_axes - 1; j >= 0; j--) {
        int a = axes[j];
        off += (idx % r->shape[a]) * r->stride[a];
        idx /= r->shape[a];
    }
    return off;
}

// y[o] = scale * sum over the block of x
static void reduce_forward(const Reduction *r, const float *x, float *y, float scale) {
    if (r->trailing) {   // dense blocks: the common case (a mean over everything, over rows)
        int64_t nb = r->n_in_block;
        if (r->n_out == 1) {
            double acc = 0;
#pragma omp parallel for schedule(static) reduction(+ : acc)
            for (int64_t k = 0; k < nb; k++) acc += x[k];
            y[0] = (float)(acc * scale);
            return;
        }
#pragma omp parallel for schedule(static)
        for (int64_t o = 0; o < r->n_out; o++) {
            double acc = 0;
            for (int64_t k = 0; k < nb; k++) acc += x[o * nb + k];
            y[o] = (float)(acc * scale);
        }
        return;
    }
#pragma omp parallel for schedule(static) if (r->n_out > 1)
    for (int64_t o = 0; o < r->n_out; o++) {
        int64_t base = coords_offset(r, r->kept, r->n_kept, o);
        double acc = 0;
        for (int64_t k = 0; k < r->n_in_block; k++) acc += x[base + coords_offset(r, r->red, r->n_red, k)];
        y[o] = (float)(acc * scale);
    }
}

// dx[i] += scale * dy[output of i]
static void reduce_backward(const Reduction *r, const float *dy, float *dx, float scale) {
    if (r->trailing) {
        int64_t nb = r->n_in_block, n = r->n_out * nb;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] += scale * dy[i / nb];
        return;
    }
#pragma omp parallel for schedule(static) if (r->n_out > 1)
    for (int64_t o = 0; o < r->n_out; o++) {
        int64_t base = coords_offset(r, r->kept, r->n_kept, o);
        float g = scale * dy[o];
        for (int64_t k = 0; k < r->n_in_block; k++) dx[base + coords_offset(r, r->red, r->n_red, k)] += g;
    }
}

// What a sum or mean keeps for its backward: the plan and 1 or 1/count
typedef struct {
    Reduction plan;
    float scale;
} ReduceSaved;

static void reduce_backward_node(Tape *tp, TapeNode *n) {
    const ReduceSaved *sv = n->extra;
    reduce_backward(&sv->plan, n->out->grad, tensor_grad(tp, n->in[0]), sv->scale);
}

static Tensor *reduce_op(Tape *tp, const char *name, Tensor *x, int mask, int keepdim, int mean) {
    tensor_require_contiguous(x, name);
    mask &= (1 << x->ndim) - 1;
    if (!mask) core_fatal("%s: no axis of the %d-D input selected", name, x->ndim);
    Reduction local;
    reduction_plan(x, mask, &local);
    int shape[4], nd = 0;
    for (int i = 0; i < x->ndim; i++) {
        if (!(mask & (1 << i))) shape[nd++] = x->shape[i];
        else if (keepdim) shape[nd++] = 1;
    }
    if (nd == 0) shape[nd++] = 1;
    float scale = mean ? 1.0f / (float)local.n_in_block : 1.0f;
    Tensor *y = tape_output(tp, nd, shape, &x, 1);
    reduce_forward(&local, x->data, y->data, scale);
    if (y->tangent) reduce_forward(&local, x->tangent, y->tangent, scale);
    TapeNode *n = tape_record(tp, name, y, reduce_backward_node, &x, 1);
    if (n) {
        ReduceSaved sv = {local, scale};
        n->extra = tape_keep(tp, &sv, sizeof sv);
    }
    return y;
}

Tensor *op_sum(Tape *tp, Tensor *x, int axes_mask, int keepdim) { return reduce_op(tp, "sum", x, axes_mask, keepdim, 0); }
Tensor *op_mean(Tape *tp, Tensor *x, int axes_mask, int keepdim) { return reduce_op(tp, "mean", x, axes_mask, keepdim, 1); }
