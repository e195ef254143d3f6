// core/ops_shape.c: ops that move data without arithmetic: a dense copy of a strided view,
// concatenation along an axis, and embedding-row lookup. (Reshape, permute and slice are views
// and live in tensor.c.)
#include "core.h"

#include <string.h>

// ---------------------------------------------------------------------------------------------
// contiguous: x strided (up to 4-D, strides relative to x's data) -> y dense, same shape.

typedef struct {
    int shape[4];
    int64_t stride[4];
} Strided4;

static Strided4 strided4(const Tensor *x) {
    Strided4 s;
    int pad = 4 - x->ndim;
    for (int i = 0; i < 4; i++) {
        s.shape[i] = i >= pad ? x->shape[i - pad] : 1;
        s.stride[i] = i >= pad ? x->stride[i - pad] : 0;
    }
    return s;
}

// dst dense <- src strided (gather), or dst strided += src dense (scatter-add) when add.
static void strided_copy(const Strided4 *s, const float *strided, float *dense, int scatter_add) {
    int64_t rows = (int64_t)s->shape[0] * s->shape[1] * s->shape[2];
    int W = s->shape[3];
    int64_t sw = s->stride[3];
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < rows; row++) {
        int i2 = (int)(row % s->shape[2]);
        int i1 = (int)((row / s->shape[2]) % s->shape[1]);
        int i0 = (int)(row / ((int64_t)s->shape[2] * s->shape[1]));
        int64_t off = i0 * s->stride[0] + i1 * s->stride[1] + i2 * s->stride[2];
        float *d = dense + row * W;
        if (scatter_add) {
            // distinct dense rows map to distinct strided rows (a permutation or a slice), so
            // parallel rows never write the same element
            float *p = (float *)strided + off;
            for (int j = 0; j < W; j++) p[j * sw] += d[j];
        } else {
            const float *p = strided + off;
            for (int j = 0; j < W; j++) d[j] = p[j * sw];
        }
    }
}

static void contiguous_backward_node(Tape *tp, TapeNode *n) {
    Strided4 s = strided4(n->in[0]);
    strided_copy(&s, tensor_grad(tp, n->in[0]), n->out->grad, 1);
}

Tensor *op_contiguous(Tape *tp, Tensor *x) {
    if (tensor_is_contiguous(x)) return x;
    Tensor *y = tape_output(tp, x->ndim, x->shape, &x, 1);
    y->name = x->name;
    Strided4 s = strided4(x);
    strided_copy(&s, x->data, y->data, 0);
    if (y->tangent) strided_copy(&s, x->tangent, y->tangent, 0);
    tape_record(tp, "contiguous", y, contiguous_backward_node, &x, 1);
    return y;
}

// ---------------------------------------------------------------------------------------------
// concat: xs[i] (outer, n_i, inner) -> y (outer, sum n_i, inner). Any number of inputs: the
// list lives in the node's extra block, since a node holds at most TAPE_MAX_INPUTS.

typedef struct {
    int n;
    int64_t outer, inner, total;   // total = sum of the concatenated axis
    Tensor **xs;
} ConcatInfo;

// mode 0: y <- x data, 1: y <- x tangent (zero when absent), 2: dx += dy
static void concat_move(const ConcatInfo *c, float *y, int mode, Tape *tp) {
    int64_t at = 0;
    for (int i = 0; i < c->n; i++) {
        Tensor *x = c->xs[i];
        int64_t len = x->numel / (c->outer ? c->outer : 1);   // n_i * inner
        const float *src = mode == 0 ? x->data : x->tangent;
        float *dx = mode == 2 ? tensor_grad(tp, x) : NULL;
        if (mode == 2 && !dx) {
            at += len;
            continue;
        }
#pragma omp parallel for schedule(static)
        for (int64_t o = 0; o < c->outer; o++) {
            float *yr = y + o * c->total * c->inner + at;
            if (mode == 2) {
                float *xr = dx + o * len;
                for (int64_t j = 0; j < len; j++) xr[j] += yr[j];
            } else if (src) memcpy(yr, src + o * len, (size_t)len * sizeof(float));
            else memset(yr, 0, (size_t)len * sizeof(float));
        }
        at += len;
    }
}

static void concat_backward_node(Tape *tp, TapeNode *n) { concat_move(n->extra, n->out->grad, 2, tp); }

Tensor *op_concat(Tape *tp, Tensor *const *xs, int n, int axis) {
    if (n < 1) core_fatal("op_concat: no inputs");
    int a = tensor_axis(xs[0], axis);
    int shape[4];
    memcpy(shape, xs[0]->shape, sizeof shape);
    shape[a] = 0;
    for (int i = 0; i < n; i++) {
        tensor_require_contiguous(xs[i], "op_concat");
        if (xs[i]->ndim != xs[0]->ndim) core_fatal("op_concat: input %d is %d-D, input 0 is %d-D", i, xs[i]->ndim, xs[0]->ndim);
        for (int d = 0; d < xs[0]->ndim; d++)
            if (d != a && xs[i]->shape[d] != xs[0]->shape[d]) {
                char s0[64], si[64];
                tensor_shape_str(xs[0], s0, sizeof s0);
                tensor_shape_str(xs[i], si, sizeof si);
                core_fatal("op_concat: input %d %s does not match input 0 %s off axis %d", i, si, s0, a);
            }
        shape[a] += xs[i]->shape[a];
    }
    ConcatInfo *c = tape_alloc(tp, sizeof *c);
    c->n = n;
    c->outer = 1;
    for (int d = 0; d < a; d++) c->outer *= shape[d];
    c->inner = 1;
    for (int d = a + 1; d < xs[0]->ndim; d++) c->inner *= shape[d];
    c->total = shape[a];
    c->xs = tape_alloc(tp, (size_t)n * sizeof(Tensor *));
    memcpy(c->xs, xs, (size_t)n * sizeof(Tensor *));
    Tensor *y = tape_output(tp, xs[0]->ndim, shape, xs, n);
    concat_move(c, y->data, 0, tp);
    if (y->tangent) concat_move(c, y->tangent, 1, tp);
    TapeNode *node = tape_record(tp, "concat", y, concat_backward_node, NULL, 0);
    if (node) node->extra = c;
    return y;
}

// ---------------------------------------------------------------------------------------------
// embedding: table (V, D), ids (n) -> y (n, D)

// rows looked up by id, each D wide
typedef struct {
    int64_t rows, D;
    const int *ids;   // arena copy: the caller's array may change before backward
} EmbeddingRows;

static void embedding_backward_node(Tape *tp, TapeNode *n) {
    Tensor *table = n->in[0];
    const EmbeddingRows *e = n->extra;
    const int *ids = e->ids;
    int64_t rows = e->rows, D = e->D;
    float *dt = tensor_grad(tp, table);
    const float *dy = n->out->grad;
    // serial over rows: a repeated id (the null class in a batch) must not race
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < D; j++) dt[(int64_t)ids[i] * D + j] += dy[i * D + j];
}

Tensor *op_embedding(Tape *tp, Tensor *table, const int *ids, int n) {
    tensor_require_contiguous(table, "op_embedding");
    if (table->ndim != 2) core_fatal("op_embedding: table '%s' must be 2-D", table->name ? table->name : "?");
    int V = table->shape[0], D = table->shape[1];
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= V) core_fatal("op_embedding: id %d at %d outside [0, %d) of '%s'", ids[i], i, V, table->name ? table->name : "?");
    int shape[2] = {n, D};
    Tensor *y = tape_output(tp, 2, shape, &table, 1);
    for (int i = 0; i < n; i++) {
        memcpy(y->data + (int64_t)i * D, table->data + (int64_t)ids[i] * D, (size_t)D * sizeof(float));
        if (y->tangent) memcpy(y->tangent + (int64_t)i * D, table->tangent + (int64_t)ids[i] * D, (size_t)D * sizeof(float));
    }
    TapeNode *node = tape_record(tp, "embedding", y, embedding_backward_node, &table, 1);
    if (node) {
        EmbeddingRows e = {n, D, tape_keep(tp, ids, (size_t)n * sizeof(int))};
        node->extra = tape_keep(tp, &e, sizeof e);
    }
    return y;
}
