// tests/test_ops_elementwise.c: the broadcasting binary ops (add, sub, mul, div), the scalar and
// unary ops, swiglu and the reductions (sum, mean) against PyTorch goldens and central finite
// differences, through run_op_case (golden forward, golden + FD gradient, golden + FD tangent).
//
// Tolerances: 1e-5 relative vs PyTorch (float64 references; 3e-5 for the transcendental unary ops,
// whose float32 libm results differ by a few ulps), 2e-3 vs central differences with eps 1e-2
// (float32). relu and clip use eps 1e-3 so that no perturbation crosses a kink: their inputs stay
// at least 0.1 from 0 (relu) and from 0.05 and 1 (clip). Op arguments (scalars, axes, keepdim) are
// read from each golden file's metadata (tools/goldens/cases_elementwise.py).
#include <stdlib.h>

#include "harness.h"

static double meta_num(const SafeTensors *g, const char *key) {
    const char *v = safetensors_meta(g, key);
    ck_assert_msg(v != NULL, "%s: no metadata '%s'", g->path, key);
    return atof(v);
}

// The harness compares element counts only; broadcasting and keepdim must also give torch's shape.
static Tensor *same_shape_as_golden(Tensor *y, const SafeTensors *g) {
    const StEntry *e = safetensors_find(g, "out");
    ck_assert_msg(e != NULL, "%s: no tensor 'out'", g->path);
    int ok = y->ndim == e->ndim;
    for (int i = 0; ok && i < y->ndim; i++) ok = y->shape[i] == e->shape[i];
    char got[64];
    tensor_shape_str(y, got, sizeof got);
    ck_assert_msg(ok, "%s: output shape %s, golden has %d dims (first %lld)", g->path, got, e->ndim,
                  (long long)e->shape[0]);
    return y;
}

static Tensor *add(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_add(tp, in[0], in[1]), g);
}
static Tensor *sub(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_sub(tp, in[0], in[1]), g);
}
static Tensor *mul(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_mul(tp, in[0], in[1]), g);
}
static Tensor *dvd(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_div(tp, in[0], in[1]), g);
}
static Tensor *scale(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_scale(tp, in[0], (float)meta_num(g, "s")), g);
}
static Tensor *add_scalar(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_add_scalar(tp, in[0], (float)meta_num(g, "s")), g);
}
static Tensor *silu(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_silu(tp, in[0]), g);
}
static Tensor *gelu_tanh(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_gelu_tanh(tp, in[0]), g);
}
static Tensor *gelu_erf(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_gelu_erf(tp, in[0]), g);
}
static Tensor *relu(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_relu(tp, in[0]), g);
}
static Tensor *sigmoid(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_sigmoid(tp, in[0]), g);
}
static Tensor *expo(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_exp(tp, in[0]), g);
}
static Tensor *sqrt_(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_sqrt(tp, in[0]), g);
}
static Tensor *pow_(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_pow(tp, in[0], (float)meta_num(g, "p")), g);
}
static Tensor *clip(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_clip(tp, in[0], (float)meta_num(g, "lo"), (float)meta_num(g, "hi")), g);
}
static Tensor *swiglu(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_swiglu(tp, in[0], in[1]), g);
}
static Tensor *gated_residual(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_gated_residual(tp, in[0], in[1], in[2]), g);
}
static Tensor *swiglu_packed(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_swiglu_packed(tp, in[0]), g);
}
static Tensor *sum(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_sum(tp, in[0], (int)meta_num(g, "mask"), (int)meta_num(g, "keepdim")), g);
}
static Tensor *mean(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_mean(tp, in[0], (int)meta_num(g, "mask"), (int)meta_num(g, "keepdim")), g);
}

// One table (add_op_table keeps a single table per process).
static const OpCase cases[] = {
    // Broadcast patterns (a, b): same (2,3,4)+(2,3,4); last (2,3,4)+(4); outer (2,1,4)*(1,3,1);
    // 4d (2,3,4,5)/(3,1,1); shape1 (2,3)+(1); shape1_left (1)+(3,4). Divisors are 1.5 + |x|.
    {"ew_add_same", add, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_add_last", add, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_add_outer", add, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_add_4d", add, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_add_shape1", add, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_add_shape1_left", add, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_sub_same", sub, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_sub_last", sub, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_sub_outer", sub, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_sub_4d", sub, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_sub_shape1", sub, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_sub_shape1_left", sub, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_mul_same", mul, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_mul_last", mul, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_mul_outer", mul, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_mul_4d", mul, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_mul_shape1", mul, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_mul_shape1_left", mul, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_div_same", dvd, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_div_last", dvd, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_div_outer", dvd, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_div_4d", dvd, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_div_shape1", dvd, 2, 0, 1e-5, 2e-3, 1e-2},
    {"ew_div_shape1_left", dvd, 2, 0, 1e-5, 2e-3, 1e-2},
    // Scalar and unary ops on (3,5) or (3,6); swiglu on (2,3,4) pairs.
    {"ew_scale", scale, 1, 0, 1e-5, 2e-3, 1e-2},
    {"ew_add_scalar", add_scalar, 1, 0, 1e-5, 2e-3, 1e-2},
    {"ew_silu", silu, 1, 0, 3e-5, 2e-3, 1e-2},
    {"ew_gelu_tanh", gelu_tanh, 1, 0, 3e-5, 2e-3, 1e-2},
    {"ew_gelu_erf", gelu_erf, 1, 0, 3e-5, 2e-3, 1e-2},
    {"ew_relu", relu, 1, 0, 1e-5, 2e-3, 1e-3},
    {"ew_sigmoid", sigmoid, 1, 0, 3e-5, 2e-3, 1e-2},
    {"ew_exp", expo, 1, 0, 3e-5, 2e-3, 1e-2},
    {"ew_sqrt", sqrt_, 1, 0, 1e-5, 2e-3, 1e-2},
    {"ew_pow_2_5", pow_, 1, 0, 3e-5, 2e-3, 1e-2},
    {"ew_pow_3", pow_, 1, 0, 3e-5, 2e-3, 1e-2},
    {"ew_clip", clip, 1, 0, 1e-5, 2e-3, 1e-3},
    {"ew_swiglu", swiglu, 2, 0, 3e-5, 2e-3, 1e-2},
    {"ew_swiglu_packed", swiglu_packed, 1, 0, 3e-5, 2e-3, 1e-2},
    {"ew_gated_residual", gated_residual, 3, 0, 1e-5, 2e-3, 1e-2},
    // Reductions of x (2,3,4) over all axes (AXES_ALL), the last axis (mask 0x4), axes 0 and 2 (0x5).
    {"red_sum_all_k0", sum, 1, 0, 1e-5, 2e-3, 1e-2},
    {"red_sum_all_k1", sum, 1, 0, 1e-5, 2e-3, 1e-2},
    {"red_sum_last_k0", sum, 1, 0, 1e-5, 2e-3, 1e-2},
    {"red_sum_last_k1", sum, 1, 0, 1e-5, 2e-3, 1e-2},
    {"red_sum_ax02_k0", sum, 1, 0, 1e-5, 2e-3, 1e-2},
    {"red_sum_ax02_k1", sum, 1, 0, 1e-5, 2e-3, 1e-2},
    {"red_mean_all_k0", mean, 1, 0, 1e-5, 2e-3, 1e-2},
    {"red_mean_all_k1", mean, 1, 0, 1e-5, 2e-3, 1e-2},
    {"red_mean_last_k0", mean, 1, 0, 1e-5, 2e-3, 1e-2},
    {"red_mean_last_k1", mean, 1, 0, 1e-5, 2e-3, 1e-2},
    {"red_mean_ax02_k0", mean, 1, 0, 1e-5, 2e-3, 1e-2},
    {"red_mean_ax02_k1", mean, 1, 0, 1e-5, 2e-3, 1e-2},
};

int main(void) {
    Suite *s = suite_create("ops_elementwise");
    TCase *tc = tcase_create("golden+fd");
    add_op_table(tc, cases, (int)(sizeof cases / sizeof cases[0]));
    suite_add_tcase(s, tc);
    return run_suite(s);
}
