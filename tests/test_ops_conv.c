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

// op_conv2d_cnhw (channel-major, inference only) against op_conv2d + op_relu on the same numbers
// (op_conv2d itself is checked against PyTorch above): Inception's kernel shapes, padding and
// stride, tiles of one output row, of rows straddling two images, and the default tiling; written
// at a channel offset of a larger tensor whose other channels must stay untouched.
static void check_cnhw(int N, int Cin, int H, int W, int Cout, int KH, int KW, int sh, int ph, int pw, int relu,
                       int with_bias, const char *tile_rows) {
    TestWork w;
    test_work_init(&w, 16 << 20);
    tape_set_recording(&w.tp, 0);
    Rng r;
    rng_init(&r, (uint64_t)(N * 1000 + Cin * 100 + KH * 10 + KW));
    int xs[4] = {N, Cin, H, W}, ws[4] = {Cout, Cin, KH, KW}, bs[1] = {Cout};
    Tensor *x = tensor_new(&w.tp, 4, xs, "x"), *wt = tensor_new(&w.tp, 4, ws, "w"), *b = tensor_new(&w.tp, 1, bs, "b");
    rng_fill_normal(&r, x->data, x->numel, 0, 1), rng_fill_normal(&r, wt->data, wt->numel, 0, 0.3f);
    rng_fill_normal(&r, b->data, b->numel, 0, 0.5f);
    unsetenv("PMF_CONV_TILE_ROWS");
    Tensor *want = op_conv2d(&w.tp, x, wt, with_bias ? b : NULL, sh, sh, ph, pw, 1);
    if (relu) want = op_relu(&w.tp, want);
    int perm[4] = {1, 0, 2, 3};
    Tensor *xc = op_contiguous(&w.tp, op_permute(&w.tp, x, perm));
    int OH = want->shape[2], OW = want->shape[3], c0 = 3, extra = 5;
    int os[4] = {c0 + Cout + extra, N, OH, OW};
    Tensor *out = tensor_new(&w.tp, 4, os, "out");
    for (int64_t i = 0; i < out->numel; i++) out->data[i] = -7.0f;
    if (tile_rows) setenv("PMF_CONV_TILE_ROWS", tile_rows, 1);
    ck_assert(op_conv2d_cnhw(&w.tp, xc, wt, with_bias ? b : NULL, sh, sh, ph, pw, relu, out, c0) == out);
    unsetenv("PMF_CONV_TILE_ROWS");
    Tensor *got = op_contiguous(&w.tp, op_permute(&w.tp, op_slice(&w.tp, out, 0, c0, c0 + Cout), perm));
    char label[96];
    snprintf(label, sizeof label, "cnhw %dx%d s%d p%d,%d relu %d tiles %s", KH, KW, sh, ph, pw, relu,
             tile_rows ? tile_rows : "default");
    double e = compare_rel(label, got->data, want->data, want->numel);
    ck_assert_msg(e <= 1e-6, "%s: rel err %.3g", label, e);
    int64_t plane = (int64_t)N * OH * OW;
    for (int64_t i = 0; i < plane * c0; i++) ck_assert_msg(out->data[i] == -7.0f, "%s: channel below c0 written", label);
    for (int64_t i = plane * (c0 + Cout); i < out->numel; i++)
        ck_assert_msg(out->data[i] == -7.0f, "%s: channel past c0 + Cout written", label);
    test_work_free(&w);
}

START_TEST(test_conv_cnhw) {
    const char *tiles[3] = {NULL, "1", "3"};   // default, one row, rows across two images
    for (int t = 0; t < 3; t++) {
        check_cnhw(3, 5, 7, 6, 4, 3, 3, 1, 1, 1, 1, 1, tiles[t]);
        check_cnhw(3, 5, 7, 6, 4, 1, 1, 1, 0, 0, 1, 1, tiles[t]);
        check_cnhw(3, 5, 7, 6, 4, 1, 7, 1, 0, 3, 1, 1, tiles[t]);
        check_cnhw(3, 5, 7, 6, 4, 7, 1, 1, 3, 0, 0, 1, tiles[t]);
        check_cnhw(2, 3, 9, 8, 6, 3, 3, 2, 0, 0, 1, 0, tiles[t]);
        check_cnhw(2, 6, 5, 5, 4, 5, 5, 1, 2, 2, 0, 0, tiles[t]);
    }
    check_cnhw(4, 70, 17, 17, 40, 1, 7, 1, 0, 3, 1, 1, NULL);   // several default tiles
    check_cnhw(4, 40, 17, 17, 24, 1, 1, 1, 0, 0, 1, 1, "5");
}
END_TEST

// op_maxpool2d without a tape or tangent takes a values-only path (no argmax); it must give the
// argmax path's values exactly (the argmax path is checked against PyTorch above), NaNs included.
START_TEST(test_maxpool_values_only) {
    static const int cfg[][7] = {{3, 3, 2, 2, 0, 0, 0}, {3, 3, 1, 1, 1, 1, 0}, {2, 2, 2, 2, 1, 1, 1},
                                 {3, 3, 2, 2, 1, 1, 1}, {2, 3, 1, 2, 1, 0, 0}, {3, 3, 2, 2, 0, 0, 1}};
    for (int k = 0; k < 6; k++) {
        const int *c = cfg[k];
        TestWork w;
        test_work_init(&w, 4 << 20);
        int xs[4] = {2, 3, 9, k == 5 ? 2 : 11};   // the last: one ceil-mode window wider than W
        Tensor *x = tensor_new(&w.tp, 4, xs, "x");
        Rng r;
        rng_init(&r, 40 + k);
        rng_fill_normal(&r, x->data, x->numel, 0, 1);
        x->data[17] = x->data[x->numel - 5] = 0.0f / 0.0f;
        x->requires_grad = 1;
        Tensor *with_arg = op_maxpool2d(&w.tp, x, c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
        tape_set_recording(&w.tp, 0);
        Tensor *values = op_maxpool2d(&w.tp, x, c[0], c[1], c[2], c[3], c[4], c[5], c[6]);
        ck_assert(with_arg->requires_grad && !values->requires_grad);
        int nan = 0;
        for (int64_t i = 0; i < values->numel; i++) {
            float a = with_arg->data[i], b = values->data[i];
            nan += a != a;
            ck_assert_msg((a != a && b != b) || a == b, "maxpool %d: [%lld] %g vs %g", k, (long long)i, a, b);
        }
        ck_assert_msg(nan > 0, "maxpool %d: the NaN inputs reached no output", k);
        test_work_free(&w);
    }
}
END_TEST

int main(void) {
    int n = 0;
    for (int i = 0; i < N_CONV; i++) all_cases[n++] = conv_cases[i];
    for (int i = 0; i < N_POOL; i++) all_cases[n++] = pool_cases[i];
    for (int i = 0; i < N_RESIZE; i++) all_cases[n++] = resize_cases[i];
    Suite *s = suite_create("ops_conv");
    TCase *tc = tcase_create("golden+fd");
    add_op_table(tc, all_cases, n);
    suite_add_tcase(s, tc);
    TCase *cn = tcase_create("cnhw");
    tcase_add_test(cn, test_conv_cnhw);
    tcase_add_test(cn, test_maxpool_values_only);
    suite_add_tcase(s, cn);
    return run_suite(s);
}
