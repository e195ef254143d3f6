// core/ops_position.c: position and time encodings: 2-D rotary embedding (a fixed rotation, so
// its tangent is the same rotation and its backward the inverse one) and the sinusoidal timestep
// embedding of a scalar per sample.
#include "core.h"
#include "kernels.h"

#include <math.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// rope2d: x (B, T, NH*HS); tokens [start, start + gh*gw) rotated per head; cs (gh*gw, m, 2) holds
// cos and sin of each (grid position, pair).

void rope2d_table(float *cs, int n_pos, int gw, int HS, float theta) {
    int m = HS / 2, half = m / 2;
    for (int p = 0; p < n_pos; p++) {
        int row = p / gw, col = p % gw;
        for (int j = 0; j < m; j++) {
            int k = j < half ? j : j - half;
            double f = pow((double)theta, -2.0 * k / m), ang = (j < half ? row : col) * f;
            cs[((size_t)p * m + j) * 2] = (float)cos(ang);
            cs[((size_t)p * m + j) * 2 + 1] = (float)sin(ang);
        }
    }
}

typedef struct {
    int B, T, NH, HS, start, n_pos;
    float *cs;
} Rope;

// dir +1: rotate (forward, tangent); dir -1: rotate back (backward). y may equal x.
static void rope_apply(const Rope *r, const float *x, float *y, int dir, int accumulate) {
    int C = r->NH * r->HS, m = r->HS / 2;
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < (int64_t)r->B * r->T; bt++) {
        int t = (int)(bt % r->T);
        const float *xr = x + bt * C;
        float *yr = y + bt * C;
        int p = t - r->start;
        if (p < 0 || p >= r->n_pos) {
            if (accumulate) for (int c = 0; c < C; c++) yr[c] += xr[c];
            else if (yr != xr) memcpy(yr, xr, (size_t)C * sizeof(float));
            continue;
        }
        const float *cs = r->cs + (size_t)p * m * 2;
        for (int h = 0; h < r->NH; h++) {
            const float *xh = xr + h * r->HS;
            float *yh = yr + h * r->HS;
            for (int j = 0; j < m; j++) {
                float c = cs[2 * j], s = dir * cs[2 * j + 1], a = xh[2 * j], b = xh[2 * j + 1];
                float ya = a * c - b * s, yb = a * s + b * c;
                if (accumulate) yh[2 * j] += ya, yh[2 * j + 1] += yb;
                else yh[2 * j] = ya, yh[2 * j + 1] = yb;
            }
        }
    }
}

static void rope_backward_node(Tape *tp, TapeNode *n) {
    rope_apply(n->extra, n->out->grad, tensor_grad(tp, n->in[0]), -1, 1);
}

Tensor *op_rope2d(Tape *tp, Tensor *x, int n_heads, int start, int gh, int gw, float theta) {
    tensor_require_contiguous(x, "op_rope2d");
    if (x->ndim != 3 || n_heads <= 0 || x->shape[2] % n_heads) core_fatal("op_rope2d: x must be (B, T, NH*HS)");
    Rope *r = tape_alloc(tp, sizeof *r);
    r->B = x->shape[0];
    r->T = x->shape[1];
    r->NH = n_heads;
    r->HS = x->shape[2] / n_heads;
    r->start = start;
    r->n_pos = gh * gw;
    if (r->HS % 4) core_fatal("op_rope2d: head size %d must be a multiple of 4 (two axes of pairs)", r->HS);
    if (start < 0 || start + r->n_pos > r->T) core_fatal("op_rope2d: tokens [%d, %d) outside %d tokens", start, start + r->n_pos, r->T);
    r->cs = tape_alloc(tp, (size_t)r->n_pos * (r->HS / 2) * 2 * sizeof(float));
    rope2d_table(r->cs, gh * gw, gw, r->HS, theta);
    Tensor *y = tape_output(tp, 3, x->shape, &x, 1);
    rope_apply(r, x->data, y->data, 1, 0);
    if (y->tangent) rope_apply(r, x->tangent, y->tangent, 1, 0);
    TapeNode *n = tape_record(tp, "rope2d", y, rope_backward_node, &x, 1);
    if (n) n->extra = r;
    return y;
}

// ---------------------------------------------------------------------------------------------
// timestep embedding: s (B) -> y (B, dim) = [cos(s f_k) | sin(s f_k)], f_k = max_period^(-k/half)
// y' = s' [-f sin, f cos]; ds += sum_k dy_cos (-f sin) + dy_sin (f cos)

// B timesteps, each embedded as half cosines and half sines
typedef struct {
    int B, half;
} TimestepShape;

static void timestep_backward_node(Tape *tp, TapeNode *n) {
    const TimestepShape *sh = n->extra;
    Tensor *s = n->in[0];
    int B = sh->B, half = sh->half;
    const float *f = n->saved[0], *dy = n->out->grad;
    float *ds = tensor_grad(tp, s);
    for (int b = 0; b < B; b++) {
        double acc = 0;
        for (int k = 0; k < half; k++) {
            float a = s->data[b] * f[k];
            acc += (double)dy[(size_t)b * 2 * half + k] * (-f[k] * sinf(a)) +
                   (double)dy[(size_t)b * 2 * half + half + k] * (f[k] * cosf(a));
        }
        ds[b] += (float)acc;
    }
}

Tensor *op_timestep_embedding(Tape *tp, Tensor *s, int dim, float max_period) {
    tensor_require_contiguous(s, "op_timestep_embedding");
    if (dim % 2) core_fatal("op_timestep_embedding: dim %d must be even", dim);
    int B = (int)s->numel, half = dim / 2;
    float *f = tape_alloc(tp, (size_t)(half ? half : 1) * sizeof(float));
    for (int k = 0; k < half; k++) f[k] = (float)exp(-log((double)max_period) * k / half);
    int shape[2] = {B, dim};
    Tensor *y = tape_output(tp, 2, shape, &s, 1);
    for (int b = 0; b < B; b++) {
        for (int k = 0; k < half; k++) {
            // the product is rounded to float first, as torch computes it in float32
            float a = s->data[b] * f[k];
            y->data[(size_t)b * dim + k] = cosf(a);
            y->data[(size_t)b * dim + half + k] = sinf(a);
            if (y->tangent) {
                float ts = s->tangent[b];
                y->tangent[(size_t)b * dim + k] = -ts * f[k] * sinf(a);
                y->tangent[(size_t)b * dim + half + k] = ts * f[k] * cosf(a);
            }
        }
    }
    TapeNode *n = tape_record(tp, "timestep_embedding", y, timestep_backward_node, &s, 1);
    if (n) {
        TimestepShape sh = {B, half};
        n->saved[0] = f;
        n->extra = tape_keep(tp, &sh, sizeof sh);
    }
    return y;
}
