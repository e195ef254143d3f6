// tests/test_ops_conv.c: op_conv2d, op_maxpool2d, op_avgpool2d, op_adaptive_avgpool2d and op_resize
// against PyTorch goldens (tools/goldens/cases_conv.py: F.conv2d, F.max_pool2d, F.avg_pool2d,
// F.adaptive_avg_pool2d, F.interpolate with align_corners=False) and central finite differences.
// Tolerances: 1e-5 relative vs PyTorch (float32 sums of at most 48 products against a float64
// reference). Every op here is linear in each input (max-pool piecewise linear), so central
// differences have no truncation error: 2e-3 covers float32 rounding of the perturbed inputs at
// eps 1e-2. The depthwise 7x7 and batch-4 rows sum up to 72 products (weight gradients), still
// far inside 1e-5. Max-pool inputs are spaced 0.02 apart, so its step is 1e-3 and cannot move an argmax.
#include "harness.h"

#include <stdlib.h>

// conv2d(x, w, b) with per-axis stride, pad and groups; b absent when the row has 2 inputs.
#define CONV(fname, sh, sw, ph, pw, groups, n_in)                                                     \
    static Tensor *fname(Tape *tp, Tensor **in, const SafeTensors *g) {                               \
        unsetenv("PMF_CONV_TILE_ROWS");                                                                \
        return op_conv2d(tp, in[0], in[1], (n_in) == 3 ? in[2] : NULL, sh, sw, ph, pw, groups);       \
    }
CONV(conv_s1_p1, 1, 1, 1, 1, 1, 3)
CONV(conv_s2_p0_nb, 2, 2, 0, 0, 1, 2)
CONV(conv_1x1, 1, 1, 0, 0, 1, 3)
CONV(conv_g2, 1, 1, 1, 1, 2, 3)
CONV(conv_dw, 1, 1, 1, 1, 3, 3)
CONV(conv_patch4, 4, 4, 0, 0, 1, 3)
CONV(conv_rect, 1, 2, 1, 0, 1, 3)
CONV(conv_dw7, 1, 1, 3, 3, 16, 3)
CONV(conv_dw3_s2, 2, 2, 1, 1, 4, 3)
CONV(conv_stem4, 4, 4, 0, 0, 1, 3)
CONV(conv_k2s2, 2, 2, 0, 0, 1, 3)

// The same convolutions with the GEMM path cut into tiles of `rows` output rows (core/ops_conv.c
// reads PMF_CONV_TILE_ROWS on every call; by default these tiny images are one tile each). The
// setting stays on through the row's backward pass; the plain builders above clear it.
#define CONV_TILED(fname, rows, sh, sw, ph, pw, n_in)                                                 \
    static Tensor *fname(Tape *tp, Tensor **in, const SafeTensors *g) {                               \
        setenv("PMF_CONV_TILE_ROWS", #rows, 1);                                                        \
        return op_conv2d(tp, in[0], in[1], (n_in) == 3 ? in[2] : NULL, sh, sw, ph, pw, 1);            \
    }
CONV_TILED(conv_s1_p1_tiles2, 2, 1, 1, 1, 1, 3)
CONV_TILED(conv_s2_p0_tiles1, 1, 2, 2, 0, 0, 2)
CONV_TILED(conv_1x1_tiles2, 2, 1, 1, 0, 0, 3)

static Tensor *max_2s2(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_maxpool2d(tp, in[0], 2, 2, 2, 2, 0, 0, 0);
}
static Tensor *max_3s2p1c(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_maxpool2d(tp, in[0], 3, 3, 2, 2, 1, 1, 1);
}
static Tensor *max_2s2p1c(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_maxpool2d(tp, in[0], 2, 2, 2, 2, 1, 1, 1);
}
static Tensor *avg_3s1p1_ex(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_avgpool2d(tp, in[0], 3, 3, 1, 1, 1, 1, 0);
}
static Tensor *avg_3s1p1_in(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_avgpool2d(tp, in[0], 3, 3, 1, 1, 1, 1, 1);
}
static Tensor *avg_2s2(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_avgpool2d(tp, in[0], 2, 2, 2, 2, 0, 0, 1);
}
static Tensor *ada_3(Tape *tp, Tensor **in, const SafeTensors *g) { return op_adaptive_avgpool2d(tp, in[0], 3, 3); }
static Tensor *ada_1(Tape *tp, Tensor **in, const SafeTensors *g) { return op_adaptive_avgpool2d(tp, in[0], 1, 1); }
static Tensor *ada_7(Tape *tp, Tensor **in, const SafeTensors *g) { return op_adaptive_avgpool2d(tp, in[0], 7, 7); }
static Tensor *ada_4x5(Tape *tp, Tensor **in, const SafeTensors *g) { return op_adaptive_avgpool2d(tp, in[0], 4, 5); }

#define RESIZE(fname, oh, ow, mode, aa)                                                               \
    static Tensor *fname(Tape *tp, Tensor **in, const SafeTensors *g) {                               \
        return op_resize(tp, in[0], oh, ow, mode, aa);                                                \
    }
RESIZE(rs_bl_down, 5, 5, RESIZE_BILINEAR, 0)
RESIZE(rs_bl_up, 8, 7, RESIZE_BILINEAR, 0)
RESIZE(rs_bc_down, 5, 5, RESIZE_BICUBIC, 0)
RESIZE(rs_bc_up, 8, 7, RESIZE_BICUBIC, 0)
RESIZE(rs_bl_aa_down, 5, 5, RESIZE_BILINEAR, 1)
RESIZE(rs_bc_aa_down, 6, 6, RESIZE_BICUBIC, 1)
RESIZE(rs_bl_aa_up, 8, 7, RESIZE_BILINEAR, 1)
RESIZE(rs_bc_aa_up, 8, 7, RESIZE_BICUBIC, 1)
RESIZE(rs_bc_aa_mixed, 5, 9, RESIZE_BICUBIC, 1)

static const OpCase conv_cases[] = {
    {"conv_3x3_s1_p1_bias", conv_s1_p1, 3, 0, 1e-5, 2e-3, 1e-2},
    {"conv_3x3_s2_p0_nobias", conv_s2_p0_nb, 2, 0, 1e-5, 2e-3, 1e-2},
    {"conv_1x1", conv_1x1, 3, 0, 1e-5, 2e-3, 1e-2},
    {"conv_groups2", conv_g2, 3, 0, 1e-5, 2e-3, 1e-2},
    {"conv_depthwise", conv_dw, 3, 0, 1e-5, 2e-3, 1e-2},
    {"conv_patch4", conv_patch4, 3, 0, 1e-5, 2e-3, 1e-2},
    {"conv_rect_k3x2_s1x2_p1x0", conv_rect, 3, 0, 1e-5, 2e-3, 1e-2},
    {"conv_3x3_batch4", conv_s1_p1, 3, 0, 1e-5, 2e-3, 1e-2},
    {"conv_3x3_batch4", conv_s1_p1_tiles2, 3, 0, 1e-5, 2e-3, 1e-2},
    {"conv_3x3_s2_p0_nobias", conv_s2_p0_tiles1, 2, 0, 1e-5, 2e-3, 1e-2},
    {"conv_1x1", conv_1x1_tiles2, 3, 0, 1e-5, 2e-3, 1e-2},
    {"conv_dw7_p3_c16", conv_dw7, 3, 0, 1e-5, 2e-3, 1e-2},
    {"conv_dw3_s2_p1", conv_dw3_s2, 3, 0, 1e-5, 2e-3, 1e-2},
    {"conv_stem4x4_s4", conv_stem4, 3, 0, 1e-5, 2e-3, 1e-2},
    {"conv_2x2_s2", conv_k2s2, 3, 0, 1e-5, 2e-3, 1e-2},
};

static const OpCase pool_cases[] = {
    {"maxpool_2x2_s2", max_2s2, 1, 0, 1e-5, 2e-3, 1e-3},
    {"maxpool_3x3_s2_p1_ceil", max_3s2p1c, 1, 0, 1e-5, 2e-3, 1e-3},
    {"maxpool_2x2_s2_p1_ceil_drop", max_2s2p1c, 1, 0, 1e-5, 2e-3, 1e-3},
    {"avgpool_3x3_s1_p1_excl", avg_3s1p1_ex, 1, 0, 1e-5, 2e-3, 1e-2},
    {"avgpool_3x3_s1_p1_incl", avg_3s1p1_in, 1, 0, 1e-5, 2e-3, 1e-2},
    {"avgpool_2x2_s2", avg_2s2, 1, 0, 1e-5, 2e-3, 1e-2},
    {"adaptive_avgpool_7to3", ada_3, 1, 0, 1e-5, 2e-3, 1e-2},
    {"adaptive_avgpool_8to1", ada_1, 1, 0, 1e-5, 2e-3, 1e-2},
    {"adaptive_avgpool_5to7", ada_7, 1, 0, 1e-5, 2e-3, 1e-2},
    {"adaptive_avgpool_6x9to4x5", ada_4x5, 1, 0, 1e-5, 2e-3, 1e-2},
};

static const OpCase resize_cases[] = {
    {"resize_bilinear_down", rs_bl_down, 1, 0, 1e-5, 2e-3, 1e-2},
    {"resize_bilinear_up", rs_bl_up, 1, 0, 1e-5, 2e-3, 1e-2},
    {"resize_bicubic_down", rs_bc_down, 1, 0, 1e-5, 2e-3, 1e-2},
    {"resize_bicubic_up", rs_bc_up, 1, 0, 1e-5, 2e-3, 1e-2},
    {"resize_bilinear_aa_down", rs_bl_aa_down, 1, 0, 1e-5, 2e-3, 1e-2},
    {"resize_bicubic_aa_down", rs_bc_aa_down, 1, 0, 1e-5, 2e-3, 1e-2},
    {"resize_bilinear_aa_up", rs_bl_aa_up, 1, 0, 1e-5, 2e-3, 1e-2},
    {"resize_bicubic_aa_up", rs_bc_aa_up, 1, 0, 1e-5, 2e-3, 1e-2},
    {"resize_bicubic_aa_mixed", rs_bc_aa_mixed, 1, 0, 1e-5, 2e-3, 1e-2},
};

// add_op_table keeps one table per process, so the three tables are one array of rows here.
#define N_CONV (int)(sizeof conv_cases / sizeof conv_cases[0])
#define N_POOL (int)(sizeof pool_cases / sizeof pool_cases[0])
#define N_RESIZE (int)(sizeof resize_cases / sizeof resize_cases[0])
static OpCase all_cases[N_CONV + N_POOL + N_RESIZE];

int main(void) {
    int n = 0;
    for (int i = 0; i < N_CONV; i++) all_cases[n++] = conv_cases[i];
    for (int i = 0; i < N_POOL; i++) all_cases[n++] = pool_cases[i];
    for (int i = 0; i < N_RESIZE; i++) all_cases[n++] = resize_cases[i];
    Suite *s = suite_create("ops_conv");
    TCase *tc = tcase_create("golden+fd");
    add_op_table(tc, all_cases, n);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
