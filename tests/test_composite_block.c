// tests/test_composite_block.c: two pre-norm pMF transformer blocks (spec 6.2) built from core ops
// (rmsnorm, linear, reshape, rope2d, attention, swiglu, mul, add) with parameters in a ParamStore,
// checked end to end against tools/goldens/cases_composite.py (plain torch, float64):
//   (a) output, JVP along a tangent of x and of every parameter, and d sum(out * g) for x and every
//       parameter: each within 1e-4 relative of PyTorch;
//   (b) that JVP against central differences along the same tangent (eps 1e-3, tolerance 1e-3);
//   (c) the gradients against central differences of sum(out * g) along 2 random directions of all
//       parameters at once and 1 of x (eps 1e-3, tolerance 1e-3).
// The finite-difference tolerances cover float32 rounding of the output (about 1e-7 relative per
// element, divided by 2 eps) and the O(eps^2) truncation, both measured near 1e-5 to 1e-4.
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

// B batch, T tokens (PREFIX + GH*GW patches), D model width, NH heads of HS, HID MLP hidden.
enum { B = 2, T = 10, D = 16, NH = 2, HS = 8, HID = 40, PREFIX = 4, GH = 2, GW = 3, NBLOCKS = 2 };
static const float THETA = 10000.0f, EPS = 1e-6f;
static const double TOL = 1e-4, FD_EPS = 1e-3, FD_TOL = 1e-3;

static const char *PARAM_NAMES[] = {"norm1", "wq", "wk", "wv", "qnorm", "knorm", "wo",
                                    "attn_scale", "norm2", "w1", "w3", "w2", "mlp_scale"};
#define N_PARAM_NAMES (int)(sizeof PARAM_NAMES / sizeof PARAM_NAMES[0])

typedef struct {
    SafeTensors st;
    ParamStore ps;
    Arena arena;
    Tape tape;
    float *p0;         // golden parameters, flat in the store's layout
    float *ptan;       // golden parameter tangents, same layout
    float *x0, *xtan;  // golden input and its tangent, (B, T, D)
    float *g;          // upstream gradient, (B, T, D)
    Tensor *x;         // the input of the latest run
} Fixture;

static void read_into(const SafeTensors *st, const char *name, int ndim, const int *shape, float *dst) {
    ck_assert_msg(safetensors_read_f32(st, name, ndim, shape, dst) == 0, "%s", core_last_error());
}

static void fixture_open(Fixture *f) {
    memset(f, 0, sizeof *f);
    golden_open(&f->st, "composite_block");
    const char *nh = safetensors_meta(&f->st, "n_heads"), *hid = safetensors_meta(&f->st, "hidden");
    ck_assert_msg(nh && atoi(nh) == NH && hid && atoi(hid) == HID, "composite_block: golden made for other sizes");
    params_init(&f->ps, 2 * N_PARAM_NAMES);
    for (int b = 0; b < NBLOCKS; b++)
        for (int i = 0; i < N_PARAM_NAMES; i++) {
            char key[80], name[64];
            snprintf(name, sizeof name, "b%d.%s", b, PARAM_NAMES[i]);
            snprintf(key, sizeof key, "p.%s", name);
            const StEntry *e = safetensors_find(&f->st, key);
            ck_assert_msg(e != NULL, "composite_block: no tensor '%s'", key);
            int shape[4];
            for (int k = 0; k < e->ndim; k++) shape[k] = (int)e->shape[k];
            params_declare(&f->ps, name, e->ndim, shape);
        }
    params_finalize(&f->ps);
    f->p0 = calloc((size_t)f->ps.total, sizeof(float));
    f->ptan = calloc((size_t)f->ps.total, sizeof(float));
    for (int i = 0; i < f->ps.n; i++) {
        Tensor *p = &f->ps.tensors[i];
        char key[72];
        int64_t off = p->data - f->ps.data;
        snprintf(key, sizeof key, "p.%s", p->name);
        read_into(&f->st, key, p->ndim, p->shape, f->p0 + off);
        snprintf(key, sizeof key, "t.%s", p->name);
        read_into(&f->st, key, p->ndim, p->shape, f->ptan + off);
    }
    const int xs[3] = {B, T, D};
    f->x0 = malloc(B * T * D * sizeof(float));
    f->xtan = malloc(B * T * D * sizeof(float));
    f->g = malloc(B * T * D * sizeof(float));
    read_into(&f->st, "x", 3, xs, f->x0);
    read_into(&f->st, "t.x", 3, xs, f->xtan);
    read_into(&f->st, "g", 3, xs, f->g);
    arena_init(&f->arena, 8 << 20);
    tape_init(&f->tape, &f->arena);
}

static void fixture_close(Fixture *f) {
    tape_free(&f->tape);
    arena_free(&f->arena);
    params_free(&f->ps);
    safetensors_close(&f->st);
    free(f->p0), free(f->ptan), free(f->x0), free(f->xtan), free(f->g);
}

static Tensor *param(Fixture *f, int b, const char *name) {
    char full[64];
    snprintf(full, sizeof full, "b%d.%s", b, name);
    Tensor *p = params_find(&f->ps, full);
    ck_assert_msg(p != NULL, "no parameter %s", full);
    return p;
}

// q or k (B, T, D): RMSNorm over each head's HS values with one HS-sized weight.
static Tensor *head_norm(Tape *tp, Tensor *q, Tensor *w) {
    const int heads[4] = {B, T, NH, HS}, flat[3] = {B, T, D};
    Tensor *n = op_rmsnorm(tp, op_reshape(tp, q, 4, heads), w, EPS);
    return op_reshape(tp, n, 3, flat);
}

static Tensor *block(Fixture *f, Tensor *x, int b) {
    Tape *tp = &f->tape;
    Tensor *h = op_rmsnorm(tp, x, param(f, b, "norm1"), EPS);
    Tensor *q = head_norm(tp, op_linear(tp, h, param(f, b, "wq"), NULL), param(f, b, "qnorm"));
    Tensor *k = head_norm(tp, op_linear(tp, h, param(f, b, "wk"), NULL), param(f, b, "knorm"));
    Tensor *v = op_linear(tp, h, param(f, b, "wv"), NULL);
    q = op_rope2d(tp, q, NH, PREFIX, GH, GW, THETA);
    k = op_rope2d(tp, k, NH, PREFIX, GH, GW, THETA);
    Tensor *a = op_attention(tp, q, k, v, NH);
    Tensor *o = op_linear(tp, a, param(f, b, "wo"), NULL);
    x = op_add(tp, x, op_mul(tp, o, param(f, b, "attn_scale")));
    h = op_rmsnorm(tp, x, param(f, b, "norm2"), EPS);
    Tensor *u = op_swiglu(tp, op_linear(tp, h, param(f, b, "w1"), NULL), op_linear(tp, h, param(f, b, "w3"), NULL));
    return op_add(tp, x, op_mul(tp, op_linear(tp, u, param(f, b, "w2"), NULL), param(f, b, "mlp_scale")));
}

// Both blocks at x0 + eps dx and params p0 + eps dp (NULL direction: unperturbed). With
// `tangents`, x and every parameter carry their golden tangents; with `record`, the tape records.
static Tensor *run(Fixture *f, int record, int tangents, const float *dx, const float *dp, double eps) {
    tape_reset(&f->tape);
    tape_set_recording(&f->tape, record);
    for (int64_t i = 0; i < f->ps.total; i++) f->ps.data[i] = f->p0[i] + (dp ? (float)(eps * dp[i]) : 0.0f);
    for (int i = 0; i < f->ps.n; i++) {
        Tensor *p = &f->ps.tensors[i];
        p->tangent = tangents ? f->ptan + (p->data - f->ps.data) : NULL;
    }
    const int xs[3] = {B, T, D};
    Tensor *x = tensor_from(&f->tape, 3, xs, f->x0, "x");
    if (dx)
        for (int64_t i = 0; i < x->numel; i++) x->data[i] += (float)(eps * dx[i]);
    x->requires_grad = record;
    if (tangents) memcpy(tensor_attach_tangent(&f->tape, x), f->xtan, (size_t)x->numel * sizeof(float));
    f->x = x;
    for (int b = 0; b < NBLOCKS; b++) x = block(f, x, b);
    ck_assert_msg(tensor_is_contiguous(x) && x->numel == B * T * D, "composite: output is not a dense (B, T, D)");
    return x;
}

static double loss(const Tensor *y, const float *g) {
    double s = 0;
    for (int64_t i = 0; i < y->numel; i++) s += (double)y->data[i] * g[i];
    return s;
}

START_TEST(composite_golden) {
    Fixture f;
    fixture_open(&f);
    printf("[composite_block: golden, tolerance %.0e]\n", TOL);
    Tensor *y = run(&f, 1, 1, NULL, NULL, 0);
    Tensor *want = golden_tensor(&f.tape, &f.st, "out");
    double e = compare_rel("forward", y->data, want->data, y->numel);
    ck_assert_msg(e <= TOL, "composite: forward rel err %.3g > %.3g", e, TOL);
    ck_assert_msg(y->tangent != NULL, "composite: inputs carry tangents but the output has none");
    Tensor *tw = golden_tensor(&f.tape, &f.st, "tout");
    e = compare_rel("tangent", y->tangent, tw->data, y->numel);
    ck_assert_msg(e <= TOL, "composite: tangent rel err %.3g > %.3g", e, TOL);

    params_zero_grad(&f.ps);
    tape_backward(&f.tape, y, f.g);
    Tensor *gx = golden_tensor(&f.tape, &f.st, "gr.x");
    e = compare_rel("grad x", tensor_grad(&f.tape, f.x), gx->data, gx->numel);
    ck_assert_msg(e <= TOL, "composite: grad x rel err %.3g > %.3g", e, TOL);
    int n_bad = 0;
    double worst = 0;
    for (int i = 0; i < f.ps.n; i++) {
        Tensor *p = &f.ps.tensors[i];
        char key[72], label[48];
        snprintf(key, sizeof key, "gr.%s", p->name);
        snprintf(label, sizeof label, "grad %s", p->name);
        Tensor *gw = golden_tensor(&f.tape, &f.st, key);
        e = compare_rel(label, p->grad, gw->data, p->numel);
        if (!(e <= TOL)) n_bad++;
        if (!(e <= worst)) worst = e;
    }
    ck_assert_msg(n_bad == 0, "composite: %d parameter gradients off by more than %.0e (worst %.3g)", n_bad, TOL,
                  worst);
    fixture_close(&f);
}
END_TEST

START_TEST(composite_fd_tangent) {
    Fixture f;
    fixture_open(&f);
    printf("[composite_block: tangent vs central differences, eps %.0e, tolerance %.0e]\n", FD_EPS, FD_TOL);
    Tensor *y = run(&f, 0, 1, NULL, NULL, 0);
    int64_t n = y->numel;
    double *an = malloc((size_t)n * sizeof(double)), *fd = malloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) an[i] = y->tangent[i];
    float *yp = malloc((size_t)n * sizeof(float));
    memcpy(yp, run(&f, 0, 0, f.xtan, f.ptan, FD_EPS)->data, (size_t)n * sizeof(float));
    Tensor *ym = run(&f, 0, 0, f.xtan, f.ptan, -FD_EPS);
    for (int64_t i = 0; i < n; i++) fd[i] = ((double)yp[i] - ym->data[i]) / (2 * FD_EPS);
    double e = compare_rel_d("fd tangent (x + all params)", an, fd, n);
    ck_assert_msg(e <= FD_TOL, "composite: fd tangent rel err %.3g > %.3g", e, FD_TOL);
    free(an), free(fd), free(yp);
    fixture_close(&f);
}
END_TEST

START_TEST(composite_fd_grad) {
    Fixture f;
    fixture_open(&f);
    printf("[composite_block: gradients vs central differences, eps %.0e, tolerance %.0e]\n", FD_EPS, FD_TOL);
    Tensor *y = run(&f, 1, 0, NULL, NULL, 0);
    params_zero_grad(&f.ps);
    tape_backward(&f.tape, y, f.g);
    float *gp = malloc((size_t)f.ps.total * sizeof(float)), *gx = malloc(B * T * D * sizeof(float));
    memcpy(gp, f.ps.grad, (size_t)f.ps.total * sizeof(float));
    memcpy(gx, tensor_grad(&f.tape, f.x), B * T * D * sizeof(float));

    // Directions: N(0, 1) per element, scaled per tensor by the RMS of its golden tangent (which
    // was drawn at the tensor's own scale), so no small weight is perturbed out of its regime.
    Rng rng;
    rng_init(&rng, 77);
    float *dp = calloc((size_t)f.ps.total, sizeof(float)), *dx = malloc(B * T * D * sizeof(float));
    double an[3], fd[3];
    for (int k = 0; k < 3; k++) {
        const float *use_dx = NULL, *use_dp = NULL;
        double a = 0;
        if (k < 2) {
            for (int i = 0; i < f.ps.n; i++) {
                Tensor *p = &f.ps.tensors[i];
                int64_t off = p->data - f.ps.data;
                double ss = 0;
                for (int64_t j = 0; j < p->numel; j++) ss += (double)f.ptan[off + j] * f.ptan[off + j];
                rng_fill_normal(&rng, dp + off, p->numel, 0.0f, (float)sqrt(ss / (double)p->numel));
            }
            for (int64_t j = 0; j < f.ps.total; j++) a += (double)gp[j] * dp[j];
            use_dp = dp;
        } else {
            rng_fill_normal(&rng, dx, B * T * D, 0.0f, 1.0f);
            for (int64_t j = 0; j < B * T * D; j++) a += (double)gx[j] * dx[j];
            use_dx = dx;
        }
        double lp = loss(run(&f, 0, 0, use_dx, use_dp, FD_EPS), f.g);
        double lm = loss(run(&f, 0, 0, use_dx, use_dp, -FD_EPS), f.g);
        an[k] = a;
        fd[k] = (lp - lm) / (2 * FD_EPS);
        char label[48];
        snprintf(label, sizeof label, k < 2 ? "fd grad, all params dir %d" : "fd grad, x dir", k);
        double e = compare_rel_d(label, &an[k], &fd[k], 1);
        ck_assert_msg(e <= FD_TOL, "composite: %s rel err %.3g > %.3g", label, e, FD_TOL);
    }
    free(gp), free(gx), free(dp), free(dx);
    fixture_close(&f);
}
END_TEST

int main(void) {
    Suite *s = suite_create("composite_block");
    TCase *tc = tcase_create("two pMF blocks");
    tcase_add_test(tc, composite_golden);
    tcase_add_test(tc, composite_fd_tangent);
    tcase_add_test(tc, composite_fd_grad);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
