// tests/test_alexnet.c: LPIPS v0.1 on AlexNet (perceptual/alexnet.c, lpips_alex_load) against numbers
// from elsewhere.
// - Hashed trunk weights and the real lin weights vs a PyTorch re-implementation of
//   lpips.LPIPS(net='alex') (tools/goldens/cases_alexnet.py): distances within 1e-4 relative of
//   float64 and PyTorch float32; input gradients within 1e-4 relative (l2) at 64 px (batch 2, every
//   element) and at 224 px (batch 1, a stored subset of 2048 elements: the whole gradient is 600 KB).
// - Central differences of the C distance at single pixels and along a direction.
// - The zero-activation policy (perceptual.h) inside AlexNet: with relu5 zero over every channel at
//   some positions of one image, distance and gradient stay finite and match central differences.
// - The loader: a round trip through a written file, a wrong shape or a missing tensor named with
//   the file, wrong lin weights (VGG's), and missing files naming the converter commands.
// - pmf_lpips --net alex (the binary beside this test): a missing trunk exits non-zero naming
//   tools/convert_weights.py alexnet; with a written trunk it prints lpips_distance's value.
#include "harness.h"

#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "perceptual/perceptual.h"

static Tensor *hash_image(Tape *tp, int N, int C, int S, uint64_t id, const char *name) {
    int shape[4] = {N, C, S, S};
    Tensor *t = tensor_new(tp, 4, shape, name);
    perceptual_hash_fill(t->data, t->numel, id, 1.0f);
    return t;
}

static Lpips g_alex;
static int g_alex_ready;

static Lpips *alex_net(void) {
    if (!g_alex_ready) {
        ck_assert_msg(lpips_alex_load(&g_alex, NULL, NULL) == 0, "%s", core_last_error());
        alexnet_fill_hash(&g_alex.alex);
        g_alex_ready = 1;
    }
    return &g_alex;
}

// sum_n g[n] dist_n(pred, target), evaluated without a tape record
static double weighted_distance(Lpips *lp, Tensor *pred, Tensor *targ, const float *g) {
    TestWork w;
    test_work_init(&w, 64 << 20);
    tape_set_recording(&w.tp, 0);
    Tensor *d = lpips_distance(lp, &w.tp, pred, targ);
    double s = 0;
    for (int n = 0; n < d->numel; n++) s += (double)g[n] * d->data[n];
    test_work_free(&w);
    return s;
}

// ---------------------------------------------------------------------------------------------
// Goldens

static void check_hash(Lpips *lp, const Tensor *wsum, const char *stem) {
    for (int j = 0; j < ALEXNET_N_CONV; j++) {
        double sw = test_sum(lp->alex.w[j]->data, lp->alex.w[j]->numel);
        double sb = test_sum(lp->alex.b[j]->data, lp->alex.b[j]->numel);
        ck_assert_msg(fabs(sw - wsum->data[2 * j]) <= 1e-4 * (1 + fabs(sw)) &&
                          fabs(sb - wsum->data[2 * j + 1]) <= 1e-4 * (1 + fabs(sb)),
                      "%s: hash weights of conv %d differ from python's: %g vs %g, %g vs %g", stem, j, sw,
                      wsum->data[2 * j], sb, wsum->data[2 * j + 1]);
    }
}

// Runs the golden's case; returns the C gradient (in w's arena) and sets *pred.
static const float *run_case(TestWork *w, Lpips *lp, int N, int C, int S, const float *g, Tensor **pred_out,
                             Tensor **dist_out) {
    Tensor *pred = hash_image(&w->tp, N, C, S, 1000, "pred"), *targ = hash_image(&w->tp, N, C, S, 1001, "target");
    pred->requires_grad = 1;
    double t0 = core_now();
    Tensor *d = lpips_distance(lp, &w->tp, pred, targ);
    ck_assert_int_eq((int)d->numel, N);
    tape_backward(&w->tp, d, g);
    printf("alex %d px: forward + backward %.2fs\n", S, core_now() - t0);
    *pred_out = pred, *dist_out = d;
    return tensor_grad(&w->tp, pred);
}

static void check_dist(const char *stem, const Tensor *d, const Tensor *want, const Tensor *want32) {
    double e64 = 0, e32 = 0;
    for (int i = 0; i < d->numel; i++) {
        double a = fabs(d->data[i] - want->data[i]) / fabs(want->data[i]);
        double b = fabs(d->data[i] - want32->data[i]) / fabs(want32->data[i]);
        e64 = a > e64 ? a : e64, e32 = b > e32 ? b : e32;
        printf("  %s: dist[%d] %.8f (torch f64 %.8f)\n", stem, i, d->data[i], want->data[i]);
    }
    printf("  %s: dist max rel err %.2e (f64), %.2e (torch f32)\n", stem, e64, e32);
    ck_assert_msg(e64 < 1e-4 && e32 < 1e-4, "%s: distance max rel error %.3g (f64), %.3g (f32)", stem, e64, e32);
}

START_TEST(test_lpips_alex_64) {
    SafeTensors st;
    golden_open(&st, "lpips_alex_64");
    TestWork w;
    test_work_init(&w, 64 << 20);
    Lpips *lp = alex_net();
    check_hash(lp, golden_tensor(&w.tp, &st, "wsum"), "lpips_alex_64");
    Tensor *gdist = golden_tensor(&w.tp, &st, "dist"), *d32 = golden_tensor(&w.tp, &st, "dist_f32");
    Tensor *gg = golden_tensor(&w.tp, &st, "g"), *grad = golden_tensor(&w.tp, &st, "grad");
    Tensor *fidx = golden_tensor(&w.tp, &st, "flip_idx"), *fval = golden_tensor(&w.tp, &st, "flip_f32");
    Tensor *pred, *d;
    const float *gc = run_case(&w, lp, grad->shape[0], grad->shape[1], grad->shape[2], gg->data, &pred, &d);
    check_dist("lpips_alex_64", d, gdist, d32);
    double eg = compare_rel("grad vs f64", gc, grad->data, grad->numel);
    // where PyTorch float32 took another branch than float64 (a kink), either value is right
    double num = 0, den = 0;
    for (int64_t i = 0; i < grad->numel; i++) {
        double e = fabs(gc[i] - grad->data[i]);
        for (int64_t k = 0; k < fidx->numel; k++)
            if ((int64_t)fidx->data[k] == i && fabs(gc[i] - fval->data[k]) < e) e = fabs(gc[i] - fval->data[k]);
        num += e * e, den += (double)grad->data[i] * grad->data[i];
    }
    double en = sqrt(num / den);
    printf("  grad vs nearer of f64/f32 rel err %.2e (%d flip entries)\n", en, (int)fidx->numel);
    ck_assert_msg(en < 1e-4, "lpips_alex_64: grad error %.3g vs the nearer reference, want < 1e-4", en);
    ck_assert_msg(eg < 1e-2, "lpips_alex_64: grad error %.3g vs f64, want < 1e-2", eg);
    test_work_free(&w);
    safetensors_close(&st);
}
END_TEST

START_TEST(test_lpips_alex_224) {
    SafeTensors st;
    golden_open(&st, "lpips_alex_224");
    TestWork w;
    test_work_init(&w, 64 << 20);
    Lpips *lp = alex_net();
    check_hash(lp, golden_tensor(&w.tp, &st, "wsum"), "lpips_alex_224");
    Tensor *gdist = golden_tensor(&w.tp, &st, "dist"), *d32 = golden_tensor(&w.tp, &st, "dist_f32");
    Tensor *gg = golden_tensor(&w.tp, &st, "g"), *shape = golden_tensor(&w.tp, &st, "shape");
    Tensor *idx = golden_tensor(&w.tp, &st, "idx"), *sub = golden_tensor(&w.tp, &st, "grad_sub");
    Tensor *sub32 = golden_tensor(&w.tp, &st, "grad_sub_f32");
    Tensor *gnorm = golden_tensor(&w.tp, &st, "grad_norm"), *gsum = golden_tensor(&w.tp, &st, "grad_sum");
    Tensor *pred, *d;
    const float *gc = run_case(&w, lp, (int)shape->data[0], (int)shape->data[1], (int)shape->data[2], gg->data,
                               &pred, &d);
    check_dist("lpips_alex_224", d, gdist, d32);
    int64_t n = idx->numel;
    float *got = core_malloc((size_t)n * sizeof(float), "sub");
    for (int64_t k = 0; k < n; k++) got[k] = gc[(int64_t)idx->data[k]];
    double e64 = compare_rel("grad subset vs f64", got, sub->data, n);
    double e32 = compare_rel("grad subset vs torch f32", got, sub32->data, n);
    // the whole gradient: its norm and sum (every element enters)
    double s2 = 0, s1 = 0;
    for (int64_t i = 0; i < pred->numel; i++) s2 += (double)gc[i] * gc[i], s1 += gc[i];
    double en = fabs(sqrt(s2) - gnorm->data[0]) / gnorm->data[0];
    double es = fabs(s1 - gsum->data[0]) / gnorm->data[0];   // relative to the norm: the sum may be near 0
    printf("  grad norm rel err %.2e, grad sum err / norm %.2e\n", en, es);
    ck_assert_msg(e64 < 1e-4 || e32 < 1e-4, "lpips_alex_224: grad subset error %.3g (f64), %.3g (f32)", e64, e32);
    ck_assert_msg(en < 1e-4 && es < 1e-4, "lpips_alex_224: grad norm error %.3g, sum error %.3g", en, es);
    free(got);
    test_work_free(&w);
    safetensors_close(&st);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Finite differences of the C forward (float32; steps of 1e-2 and 3e-3 in pixel units). Measured:
// 64 px pixel errors <= 1.1e-3 of max |grad|, direction 2.4e-4; zero tap <= 1.8e-3 and 5.8e-4.

// d/dh sum_n g[n] dist_n(pred + h v) at h = 0 by central differences; v is nonzero at `n` entries
static double fd_along(Lpips *lp, Tensor *pred, Tensor *targ, const float *g, const int64_t *at, const float *v,
                       int n, double h) {
    float *save = core_malloc((size_t)n * sizeof(float), "save");
    for (int k = 0; k < n; k++) save[k] = pred->data[at[k]];
    for (int k = 0; k < n; k++) pred->data[at[k]] = save[k] + (float)(h * v[k]);
    double fp = weighted_distance(lp, pred, targ, g);
    for (int k = 0; k < n; k++) pred->data[at[k]] = save[k] - (float)(h * v[k]);
    double fm = weighted_distance(lp, pred, targ, g);
    for (int k = 0; k < n; k++) pred->data[at[k]] = save[k];
    free(save);
    return (fp - fm) / (2 * h);
}

// The 3 pixels of largest |grad| one by one (error relative to max |grad|, limited by float32
// rounding of the distance: about 1e-8 / (2 h)), then the unit direction of the gradient over the
// 64 largest (relative error of grad . v). Fails above pixel_tol or dir_tol.
static void fd_check(Lpips *lp, Tensor *pred, Tensor *targ, const float *g, const float *grad, double h,
                     double pixel_tol, double dir_tol, const char *what) {
    enum { K = 64 };
    int64_t at[K];
    float v[K];
    for (int k = 0; k < K; k++) at[k] = -1;
    for (int64_t i = 0; i < pred->numel; i++) {   // the K largest |grad|, largest first
        float a = fabsf(grad[i]);
        int k = K;
        while (k > 0 && (at[k - 1] < 0 || a > fabsf(grad[at[k - 1]]))) k--;
        if (k == K) continue;
        memmove(at + k + 1, at + k, (size_t)(K - 1 - k) * sizeof at[0]);
        at[k] = i;
    }
    double worst = 0, scale = fabs(grad[at[0]]);
    for (int k = 0; k < 3; k++) {
        float one = 1.0f;
        double fd = fd_along(lp, pred, targ, g, &at[k], &one, 1, h);
        double e = fabs(fd - grad[at[k]]) / scale;
        printf("  %s fd: pixel %lld grad %.6e fd %.6e (err / max|grad| %.1e)\n", what, (long long)at[k], grad[at[k]], fd, e);
        worst = e > worst ? e : worst;
    }
    double gv = 0, vn = 0;
    for (int k = 0; k < K; k++) v[k] = grad[at[k]], vn += (double)v[k] * v[k];
    vn = sqrt(vn);
    for (int k = 0; k < K; k++) v[k] = (float)(v[k] / vn), gv += (double)grad[at[k]] * v[k];
    double fd = fd_along(lp, pred, targ, g, at, v, K, h);
    double e = fabs(fd - gv) / fabs(gv);
    printf("  %s fd: direction over %d pixels: grad.v %.6e fd %.6e (rel err %.1e)\n", what, K, gv, fd, e);
    ck_assert_msg(worst < pixel_tol, "%s: pixel gradient vs central differences: error %.3g", what, worst);
    ck_assert_msg(e < dir_tol, "%s: directional derivative vs central differences: error %.3g", what, e);
}

START_TEST(test_lpips_alex_fd) {
    Lpips *lp = alex_net();
    TestWork w;
    test_work_init(&w, 64 << 20);
    const float g[2] = {0.7f, -1.3f};
    Tensor *pred, *d;
    const float *grad = run_case(&w, lp, 2, 3, 64, g, &pred, &d);
    Tensor *targ = hash_image(&w.tp, 2, 3, 64, 1001, "target");
    pred->requires_grad = 0;
    fd_check(lp, pred, targ, g, grad, 1e-2, 3e-3, 1e-3, "64 px");
    test_work_free(&w);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Zero-activation policy: lower conv10's bias so relu5 is zero over every channel at one position
// of pred (with margin) while the target's relu5 stays nonzero there.

START_TEST(test_lpips_alex_zero_tap) {
    Lpips lp;
    ck_assert_msg(lpips_alex_load(&lp, NULL, NULL) == 0, "%s", core_last_error());
    alexnet_fill_hash(&lp.alex);
    TestWork w;
    test_work_init(&w, 64 << 20);
    enum { N = 2, S = 64 };
    Tensor *pred = hash_image(&w.tp, N, 3, S, 1000, "pred"), *targ = hash_image(&w.tp, N, 3, S, 1001, "target");
    // max over channels of relu5 at each position, pred and target
    Tensor *ta[5], *tb[5];
    tape_set_recording(&w.tp, 0);
    int cs[4] = {1, 3, 1, 1};
    static const float shift[3] = {-.030f, -.088f, -.188f}, scale[3] = {.458f, .448f, .450f};
    Tensor *sh = tensor_from(&w.tp, 4, cs, shift, "shift"), *sc = tensor_from(&w.tp, 4, cs, scale, "scale");
    alexnet_taps(&w.tp, &lp.alex, op_div(&w.tp, op_sub(&w.tp, pred, sh), sc), ta);
    alexnet_taps(&w.tp, &lp.alex, op_div(&w.tp, op_sub(&w.tp, targ, sh), sc), tb);
    tape_set_recording(&w.tp, 1);
    int C5 = ta[4]->shape[1], HW = ta[4]->shape[2] * ta[4]->shape[3];
    ck_assert_int_eq(HW, 9);
    float ma[N * 9], mb[N * 9];
    for (int n = 0; n < N; n++)
        for (int p = 0; p < HW; p++) {
            float a = 0, b = 0;
            for (int c = 0; c < C5; c++) {
                a = fmaxf(a, ta[4]->data[((size_t)n * C5 + c) * HW + p]);
                b = fmaxf(b, tb[4]->data[((size_t)n * C5 + c) * HW + p]);
            }
            ma[n * HW + p] = a, mb[n * HW + p] = b;
        }
    // c between the smallest and the second smallest of pred's maxima: that position goes to zero
    float lo = INFINITY, lo2 = INFINITY;
    for (int i = 0; i < N * HW; i++) {
        if (ma[i] < lo) lo2 = lo, lo = ma[i];
        else if (ma[i] < lo2) lo2 = ma[i];
    }
    ck_assert_msg(lo > 0 && lo2 > lo, "relu5 maxima %g %g", lo, lo2);
    float c = 0.5f * (lo + lo2);
    for (int k = 0; k < C5; k++) lp.alex.b[4]->data[k] -= c;
    int zero_a = 0, live_b = 0;
    for (int i = 0; i < N * HW; i++) zero_a += ma[i] <= c, live_b += mb[i] > c;
    printf("zero tap: relu5 shifted by %.4f: %d all-zero positions in pred, %d live positions in target\n", c,
           zero_a, live_b);
    ck_assert_int_eq(zero_a, 1);
    ck_assert_msg(live_b > 0, "the target's relu5 is all zero too");
    // distance and gradient: finite; the gradient matches central differences
    pred->requires_grad = 1;
    const float g[N] = {1.0f, 0.6f};
    Tensor *d = lpips_distance(&lp, &w.tp, pred, targ);
    tape_backward(&w.tp, d, g);
    const float *grad = tensor_grad(&w.tp, pred);
    for (int n = 0; n < N; n++) ck_assert_msg(isfinite(d->data[n]) && d->data[n] > 0, "dist %g", d->data[n]);
    for (int64_t i = 0; i < pred->numel; i++) ck_assert_msg(isfinite(grad[i]), "grad[%lld] = %g", (long long)i, grad[i]);
    pred->requires_grad = 0;
    // relu5 is sparse after the shift (more curvature): a smaller step
    fd_check(&lp, pred, targ, g, grad, 3e-3, 5e-3, 2e-3, "zero tap");
    lpips_free(&lp);
    test_work_free(&w);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Loader

// The hashed trunk written to `path`; conv `bad` (or -1) gets a wrong weight shape (Cout, Cin, 3, 3)
// or, with bad_missing, is left out.
static void write_trunk(const char *path, int bad, int bad_missing) {
    Alexnet a;
    alexnet_init(&a);
    alexnet_fill_hash(&a);
    StWriter *wr = st_writer_new();
    for (int j = 0; j < ALEXNET_N_CONV; j++) {
        if (j == bad && bad_missing) continue;
        if (j == bad) {
            int s[4] = {a.w[j]->shape[0], a.w[j]->shape[1], 3, 3};
            st_writer_add(wr, a.w[j]->name, 4, s, a.w[j]->data);
        } else {
            st_writer_add_tensor(wr, a.w[j]);
        }
        st_writer_add_tensor(wr, a.b[j]);
    }
    ck_assert_msg(st_writer_save(wr, path) == 0, "%s", core_last_error());
    st_writer_free(wr);
    alexnet_free(&a);
}

START_TEST(test_alex_loader) {
    char dir[] = "/tmp/pmf_alex_XXXXXX", path[300];
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(path, sizeof path, "%s/trunk.safetensors", dir);
    // round trip: the file loads to the hash values, and the default lin weights are AlexNet's
    write_trunk(path, -1, 0);
    Lpips lp;
    ck_assert_msg(lpips_alex_load(&lp, path, NULL) == 0, "%s", core_last_error());
    ck_assert(lp.net == LPIPS_NET_ALEX && lp.n_taps == 5);
    Alexnet ref;
    alexnet_init(&ref);
    alexnet_fill_hash(&ref);
    for (int j = 0; j < ALEXNET_N_CONV; j++) {
        ck_assert(memcmp(lp.alex.w[j]->data, ref.w[j]->data, (size_t)ref.w[j]->numel * sizeof(float)) == 0);
        ck_assert(memcmp(lp.alex.b[j]->data, ref.b[j]->data, (size_t)ref.b[j]->numel * sizeof(float)) == 0);
    }
    static const int ch[5] = {64, 192, 384, 256, 256};
    for (int l = 0; l < 5; l++) {
        ck_assert_int_eq(lp.lin[l]->shape[1], ch[l]);
        double s = 0;
        for (int64_t i = 0; i < lp.lin[l]->numel; i++) {
            ck_assert(lp.lin[l]->data[i] >= 0);
            s += lp.lin[l]->data[i];
        }
        ck_assert_msg(s > 0, "lin%d is all zero", l);
    }
    lpips_free(&lp);
    alexnet_free(&ref);
    LpipsLossConfig cfg;
    lpips_loss_defaults(&cfg, LPIPS_NET_ALEX);
    ck_assert_int_eq(cfg.crop_size, 224);
    // a wrong shape: the message names the file, the tensor and both shapes
    write_trunk(path, 1, 0);
    ck_assert(lpips_alex_load(&lp, path, NULL) == -1);
    const char *m = core_last_error();
    printf("wrong shape: %s\n", m);
    ck_assert_msg(strstr(m, path) && strstr(m, "features.3.weight") && strstr(m, "(192, 64, 3, 3)") &&
                      strstr(m, "(192, 64, 5, 5)"), "message: %s", m);
    // a missing tensor
    write_trunk(path, 4, 1);
    ck_assert(lpips_alex_load(&lp, path, NULL) == -1);
    m = core_last_error();
    ck_assert_msg(strstr(m, path) && strstr(m, "features.10.weight"), "message: %s", m);
    unlink(path);
    // VGG's lin weights are the wrong size for AlexNet
    char vgg_lin[1024];
    snprintf(vgg_lin, sizeof vgg_lin, "%s/lpips/lpips_v0.1_vgg_lin.safetensors", perceptual_weights_dir());
    ck_assert(lpips_alex_load(&lp, NULL, vgg_lin) == -1);
    m = core_last_error();
    ck_assert_msg(strstr(m, "lpips_v0.1_vgg_lin") && strstr(m, "lin1.weight"), "message: %s", m);
    // missing files name the converter
    ck_assert(lpips_alex_load(&lp, "/nonexistent/alexnet.safetensors", NULL) == -1);
    ck_assert_msg(strstr(core_last_error(), "tools/convert_weights.py alexnet alexnet-owt-7be5be79.pth"), "message: %s",
                  core_last_error());
    ck_assert(lpips_alex_load(&lp, NULL, "/nonexistent/lin.safetensors") == -1);
    ck_assert_msg(strstr(core_last_error(), "tools/convert_weights.py lpips-lin alex.pth"), "message: %s",
                  core_last_error());
    rmdir(dir);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// pmf_lpips --net alex (the binary beside this test in the build folder)

static int run_lpips(const char *args, char *out, size_t n) { return test_run_program("pmf_lpips", args, out, n); }

// An 8-bit RGB PNG of (3, S, S) values in [-1, 1]; returns the values it actually holds.
static void write_png(const char *path, const float *x, int S, float *held) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(png);
    png_init_io(png, f);
    png_set_IHDR(png, info, S, S, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    unsigned char *row = malloc((size_t)3 * S);
    for (int y = 0; y < S; y++) {
        for (int xx = 0; xx < S; xx++)
            for (int c = 0; c < 3; c++) {
                size_t i = ((size_t)c * S + y) * S + xx;
                long v = lroundf((x[i] + 1.0f) * 127.5f);
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                row[3 * xx + c] = (unsigned char)v;
                held[i] = (float)v / 127.5f - 1.0f;
            }
        png_write_row(png, row);
    }
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    free(row);
    fclose(f);
}

START_TEST(test_pmf_lpips_alex) {
    char out[4096];
    int rc = run_lpips("--net alex --weights /nonexistent/alexnet_features.safetensors a.png b.png", out, sizeof out);
    printf("pmf_lpips, missing trunk: status %d: %s", rc, out);
    ck_assert_msg(rc != 0, "pmf_lpips exited 0 without weights");
    ck_assert_msg(strstr(out, "tools/convert_weights.py alexnet"), "message: %s", out);
    // a written trunk and two PNGs: the printed distance is lpips_distance's
    char dir[] = "/tmp/pmf_alex_cli_XXXXXX", trunk[300], pa[300], pb[300], args[1200];
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(trunk, sizeof trunk, "%s/trunk.safetensors", dir);
    snprintf(pa, sizeof pa, "%s/a.png", dir);
    snprintf(pb, sizeof pb, "%s/b.png", dir);
    write_trunk(trunk, -1, 0);
    TestWork w;
    test_work_init(&w, 64 << 20);
    enum { S = 48 };
    Tensor *a = hash_image(&w.tp, 1, 3, S, 1000, "a"), *b = hash_image(&w.tp, 1, 3, S, 1001, "b");
    write_png(pa, a->data, S, a->data);
    write_png(pb, b->data, S, b->data);
    snprintf(args, sizeof args, "--net alex --weights '%s' --threads 1 '%s' '%s'", trunk, pa, pb);
    rc = run_lpips(args, out, sizeof out);
    printf("pmf_lpips: status %d: %s", rc, out);
    ck_assert_int_eq(rc, 0);
    const char *mean = strstr(out, "mean\t");
    ck_assert_msg(mean != NULL, "no mean line: %s", out);
    double got = atof(mean + 5);
    Lpips *lp = alex_net();
    tape_set_recording(&w.tp, 0);
    double want = lpips_distance(lp, &w.tp, a, b)->data[0];
    ck_assert_msg(fabs(got - want) <= 2e-6 + 1e-5 * want, "pmf_lpips printed %.6f, lpips_distance %.6f", got, want);
    unlink(trunk), unlink(pa), unlink(pb), rmdir(dir);
    test_work_free(&w);
}
END_TEST

int main(void) {
    Suite *s = suite_create("alexnet");
    TCase *tc = tcase_create("alexnet");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_alex_loader);
    tcase_add_test(tc, test_lpips_alex_64);
    tcase_add_test(tc, test_lpips_alex_224);
    tcase_add_test(tc, test_lpips_alex_fd);
    tcase_add_test(tc, test_lpips_alex_zero_tap);
    tcase_add_test(tc, test_pmf_lpips_alex);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
