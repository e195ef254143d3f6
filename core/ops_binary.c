// core/ops_binary.c: add, sub, mul, div with numpy broadcasting.
//
// Shapes are aligned from the right and padded to 4-D; an input's size-1 dims get stride 0, so
// every op is one loop over the output's rows with per-input inner strides of 0 or 1.
// Gradients of a broadcast input are sums over its broadcast dims; those loops run serially
// (they are the small parameters: gates, position embeddings), full-shape ones in parallel.
#include "core.h"
#include "kernels.h"

#include <string.h>

typedef enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV } BinKind;
static const char *bin_names[] = {"add", "sub", "mul", "div"};

// Output shape (4-D, padded at the front) and element strides of a and b into it.
typedef struct {
    int shape[4];
    int64_t sa[4], sb[4];
    int64_t rows;   // shape[0] * shape[1] * shape[2]
} Broadcast;

static void broadcast_strides(const Tensor *x, const int *out4, int64_t *s4) {
    int pad = 4 - x->ndim;
    int64_t st = 1;
    for (int i = 3; i >= 0; i--) {
        int xi = i - pad;
        int size = xi >= 0 ? x->shape[xi] : 1;
        s4[i] = size == 1 ? 0 : st;   // a size-1 dim repeats its one element
        st *= size;
    }
}

static int broadcast_shape(const Tensor *a, const Tensor *b, Broadcast *bc, int *out_ndim, int *out_shape) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < 4; i++) {
        int ai = i - (4 - a->ndim), bi = i - (4 - b->ndim);
        int as = ai >= 0 ? a->shape[ai] : 1, bs = bi >= 0 ? b->shape[bi] : 1;
        if (as != bs && as != 1 && bs != 1) return -1;
        bc->shape[i] = as > bs ? as : bs;
        if (as == 0 || bs == 0) bc->shape[i] = 0;
    }
    broadcast_strides(a, bc->shape, bc->sa);
    broadcast_strides(b, bc->shape, bc->sb);
    bc->rows = (int64_t)bc->shape[0] * bc->shape[1] * bc->shape[2];
    *out_ndim = nd;
    for (int i = 0; i < nd; i++) out_shape[i] = bc->shape[4 - nd + i];
    return 0;
}

static inline int64_t row_offset(const Broadcast *bc, const int64_t *s, int64_t row) {
    int i2 = (int)(row % bc->shape[2]);
    int64_t r = row / bc->shape[2];
    int i1 = (int)(r % bc->shape[1]);
    int i0 = (int)(r / bc->shape[1]);
    return i0 * s[0] + i1 * s[1] + i2 * s[2];
}

// y = a (op) b
static void binary_forward(BinKind kind, const Broadcast *bc, const float *a, const float *b, float *y) {
    int W = bc->shape[3];
    int64_t sa = bc->sa[3], sb = bc->sb[3];
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < bc->rows; row++) {
        const float *ar = a + row_offset(bc, bc->sa, row), *br = b + row_offset(bc, bc->sb, row);
        float *yr = y + row * W;
        switch (kind) {
        case BIN_ADD: for (int j = 0; j < W; j++) yr[j] = ar[j * sa] + br[j * sb]; break;
        case BIN_SUB: for (int j = 0; j < W; j++) yr[j] = ar[j * sa] - br[j * sb]; break;
        case BIN_MUL: for (int j = 0; j < W; j++) yr[j] = ar[j * sa] * br[j * sb]; break;
        case BIN_DIV: for (int j = 0; j < W; j++) yr[j] = ar[j * sa] / br[j * sb]; break;
        }
    }
}

// y' = a' (+,-) b' ; (a b)' = a' b + a b' ; (a / b)' = a' / b - a b' / b^2. NULL tangent = zero.
static void binary_tangent(BinKind kind, const Broadcast *bc, const float *a, const float *b,
                           const float *ta, const float *tb, float *ty) {
    int W = bc->shape[3];
    int64_t sa = bc->sa[3], sb = bc->sb[3];
#pragma omp parallel for schedule(static)
    for (int64_t row = 0; row < bc->rows; row++) {
        int64_t oa = row_offset(bc, bc->sa, row), ob = row_offset(bc, bc->sb, row);
        float *tr = ty + row * W;
        for (int j = 0; j < W; j++) {
            float av = a[oa + j * sa], bv = b[ob + j * sb];
            float dta = ta ? ta[oa + j * sa] : 0.0f, dtb = tb ? tb[ob + j * sb] : 0.0f;
            float v;
            switch (kind) {
            case BIN_ADD: v = dta + dtb; break;
            case BIN_SUB: v = dta - dtb; break;
            case BIN_MUL: v = dta * bv + av * dtb; break;
            default: v = dta / bv - av * dtb / (bv * bv); break;
            }
            tr[j] = v;
        }
    }
}

// d(a op b)/d(which input), elementwise.
static inline float binary_partial(BinKind kind, int which, float av, float bv) {
    switch (kind) {
    case BIN_ADD: return 1.0f;
    case BIN_SUB: return which == 0 ? 1.0f : -1.0f;
    case BIN_MUL: return which == 0 ? bv : av;
    default: return which == 0 ? 1.0f / bv : -av / (bv * bv);
    }
}

// dx += dy * d(a op b)/dx for x = a (which 0) or b (which 1).
static void binary_backward_input(BinKind kind, int which, const Broadcast *bc, const float *a,
                                  const float *b, const float *dy, float *dx, int full) {
    int W = bc->shape[3];
    int64_t sa = bc->sa[3], sb = bc->sb[3], sx = which == 0 ? sa : sb;
    const int64_t *xs = which == 0 ? bc->sa : bc->sb;
    if (full) {   // x has the output's shape: rows are disjoint, run them in parallel
#pragma omp parallel for schedule(static)
        for (int64_t row = 0; row < bc->rows; row++) {
            int64_t oa = row_offset(bc, bc->sa, row), ob = row_offset(bc, bc->sb, row);
            const float *dr = dy + row * W;
            float *xr = dx + row * W;
            if (kind == BIN_ADD || (kind == BIN_SUB && which == 0))
                for (int j = 0; j < W; j++) xr[j] += dr[j];
            else
                for (int j = 0; j < W; j++) xr[j] += dr[j] * binary_partial(kind, which, a[oa + j * sa], b[ob + j * sb]);
        }
        return;
    }
    for (int64_t row = 0; row < bc->rows; row++) {
        int64_t oa = row_offset(bc, bc->sa, row), ob = row_offset(bc, bc->sb, row);
        int64_t ox = row_offset(bc, xs, row);
        const float *dr = dy + row * W;
        for (int j = 0; j < W; j++)
            dx[ox + j * sx] += dr[j] * binary_partial(kind, which, a[oa + j * sa], b[ob + j * sb]);
    }
}

// What a binary op keeps for its backward.
typedef struct {
    BinKind kind;
    Broadcast bc;
} BinarySaved;

static void binary_backward_node(Tape *tp, TapeNode *n) {
    const BinarySaved *sv = n->extra;
    BinKind kind = sv->kind;
    const Broadcast *bc = &sv->bc;
    Tensor *a = n->in[0], *b = n->in[1];
    float *da = tensor_grad(tp, a), *db = tensor_grad(tp, b);
    if (da) binary_backward_input(kind, 0, bc, a->data, b->data, n->out->grad, da, a->numel == n->out->numel);
    if (db) binary_backward_input(kind, 1, bc, a->data, b->data, n->out->grad, db, b->numel == n->out->numel);
}

static Tensor *binary_op(Tape *tp, BinKind kind, Tensor *a, Tensor *b) {
    tensor_require_contiguous(a, bin_names[kind]);
    tensor_require_contiguous(b, bin_names[kind]);
    Broadcast local, *bc = &local;
    int nd, shape[4];
    if (broadcast_shape(a, b, bc, &nd, shape) != 0) {
        char sa[64], sb[64];
        tensor_shape_str(a, sa, sizeof sa);
        tensor_shape_str(b, sb, sizeof sb);
        core_fatal("op_%s: shapes %s ('%s') and %s ('%s') do not broadcast", bin_names[kind], sa,
                   a->name ? a->name : "?", sb, b->name ? b->name : "?");
    }
    Tensor *in[2] = {a, b};
    Tensor *y = tape_output(tp, nd, shape, in, 2);
    binary_forward(kind, bc, a->data, b->data, y->data);
    if (y->tangent) binary_tangent(kind, bc, a->data, b->data, a->tangent, b->tangent, y->tangent);
    TapeNode *n = tape_record(tp, bin_names[kind], y, binary_backward_node, in, 2);
    if (n) {
        BinarySaved sv = {kind, *bc};
        n->extra = tape_keep(tp, &sv, sizeof sv);
    }
    return y;
}

// ---------------------------------------------------------------------------------------------
// Gated residual: y = x + a * g, x and a (R, C), g (C); one pass instead of op_mul then op_add.
//   y' = x' + a' g + a g';  dx += dy, da += dy g, dg += sum_rows dy a

static void gated_residual_backward_node(Tape *tp, TapeNode *n) {
    Tensor *x = n->in[0], *a = n->in[1], *g = n->in[2];
    int64_t C = g->numel, R = a->numel / (C ? C : 1);
    const float *dy = n->out->grad, *gv = g->data;
    float *dx = tensor_grad(tp, x), *da = tensor_grad(tp, a), *dg = tensor_grad(tp, g);
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        const float *dyr = dy + r * C;
        if (dx) {
            float *dxr = dx + r * C;
            for (int64_t c = 0; c < C; c++) dxr[c] += dyr[c];
        }
        if (da) {
            float *dar = da + r * C;
            for (int64_t c = 0; c < C; c++) dar[c] += dyr[c] * gv[c];
        }
    }
    if (dg) add_row_sums(dy, a->data, dg, R, (int)C);
}

Tensor *op_gated_residual(Tape *tp, Tensor *x, Tensor *a, Tensor *g) {
    tensor_require_contiguous(x, "op_gated_residual");
    tensor_require_contiguous(a, "op_gated_residual");
    tensor_require_contiguous(g, "op_gated_residual");
    int64_t C = a->shape[a->ndim - 1];
    if (!tensor_same_shape(x, a) || g->numel != C)
        core_fatal("op_gated_residual: x and a must have one shape (..., C) and g (C) = %lld elements", (long long)C);
    int64_t R = a->numel / (C ? C : 1);
    Tensor *in[3] = {x, a, g};
    Tensor *y = tape_output(tp, a->ndim, a->shape, in, 3);
    const float *xd = x->data, *ad = a->data, *gd = g->data;
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < R; r++) {
        float *yr = y->data + r * C;
        const float *xr = xd + r * C, *ar = ad + r * C;
        for (int64_t c = 0; c < C; c++) yr[c] = xr[c] + ar[c] * gd[c];
    }
    if (y->tangent) {
        const float *tx = x->tangent, *ta = a->tangent, *tg = g->tangent;
#pragma omp parallel for schedule(static)
        for (int64_t r = 0; r < R; r++) {
            float *tr = y->tangent + r * C;
            const float *txr = tx ? tx + r * C : NULL, *tar = ta ? ta + r * C : NULL, *ar = ad + r * C;
            for (int64_t c = 0; c < C; c++)
                tr[c] = (txr ? txr[c] : 0.0f) + (tar ? tar[c] * gd[c] : 0.0f) + (tg ? ar[c] * tg[c] : 0.0f);
        }
    }
    tape_record(tp, "gated_residual", y, gated_residual_backward_node, in, 3);
    return y;
}

Tensor *op_add(Tape *tp, Tensor *a, Tensor *b) { return binary_op(tp, BIN_ADD, a, b); }
Tensor *op_sub(Tape *tp, Tensor *a, Tensor *b) { return binary_op(tp, BIN_SUB, a, b); }
Tensor *op_mul(Tape *tp, Tensor *a, Tensor *b) { return binary_op(tp, BIN_MUL, a, b); }
Tensor *op_div(Tape *tp, Tensor *a, Tensor *b) { return binary_op(tp, BIN_DIV, a, b); }
