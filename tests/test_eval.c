// tests/test_eval.c: eval/ against numbers from elsewhere.
// - .npz files written by numpy.savez and numpy.savez_compressed (tools/goldens/cases_fid.py) read
//   in every layout we claim ('<f4', Fortran order, 0-d, a uint8 member refused); a C-written file
//   read back.
// - Feature statistics vs numpy.mean / numpy.cov; the Frechet distance vs pytorch-fid's
//   scipy.linalg.sqrtm computation (1e-6 relative) on full-rank and singular covariances, and vs a
//   closed form (diagonal covariances); the Inception Score vs torch-fidelity's formula.
// - InceptionV3 (hash weights) vs pytorch-fid's network in plain torch (tools/goldens/
//   cases_inception.py): pool3 and logits of 2 images at 299 and of one 64 x 80 uint8 image resized
//   to 299, under pytorch-fid's and pMF's conventions, 1e-4 relative.
// - The image pipeline: a PNG folder, an HDF5 shard and a folder of shards of the same pixels give
//   the same statistics, equal to those of the features computed directly; a damaged shard given
//   to pmf_eval is refused with a message naming it.
// - PNG folders through dataset/'s decoder (cli/eval_readers.c): gray, gray+alpha, 2- and 16-bit
//   gray, RGB, RGBA, palette and 16-bit RGB files give the pixels the PNG format and PIL say (gray
//   kept as one channel), batches cut where the geometry changes; a chunk over dataset/'s limit
//   is refused with dataset/'s message by eval and by pmf_eval.
#include "harness.h"

#include <math.h>
#include <png.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/eval_readers.h"
#include "dataset/dataset.h"
#include "eval/eval.h"
#include "perceptual/perceptual.h"

// Inference only: nothing is recorded.
static void work_init(TestWork *w) {
    test_work_init(w, 64 << 20);
    tape_set_recording(&w->tp, 0);
}

static void path_of(char *buf, size_t n, const char *dir, const char *file) {
    snprintf(buf, n, "%s/%s/%s", PMF_SOURCE_DIR, dir, file);
}

static NpzArray read_ok(const char *path, const char *name) {
    NpzArray a;
    ck_assert_msg(npz_read(path, name, &a) == 0, "%s", core_last_error());
    return a;
}

static double rel(double got, double want) { return fabs(got - want) / fmax(fabs(want), 1e-300); }

// ---------------------------------------------------------------------------------------------
// npz

static void check_kinds(const char *file) {
    char path[1024];
    path_of(path, sizeof path, "tests/data", file);
    printf("%s\n", file);
    NpzArray a = read_ok(path, "a_f4");
    ck_assert_int_eq(a.ndim, 2);
    ck_assert(a.shape[0] == 3 && a.shape[1] == 5);
    for (int i = 0; i < 15; i++) ck_assert_msg(a.data[i] == i * 0.25 - 1.0, "a_f4[%d] = %g", i, a.data[i]);
    NpzArray b = read_ok(path, "b_fortran");
    ck_assert(b.ndim == 2 && b.shape[0] == 4 && b.shape[1] == 3);
    for (int i = 0; i < 12; i++) ck_assert_msg(b.data[i] == i / 7.0, "b_fortran (C order) [%d] = %g", i, b.data[i]);
    NpzArray c = read_ok(path, "c_scalar");
    ck_assert(c.ndim == 0 && c.numel == 1 && c.data[0] == 3.25);
    EvalStats s;
    ck_assert_msg(eval_stats_load_npz(path, &s) == 0, "%s", core_last_error());
    ck_assert_int_eq(s.dim, 5);
    for (int i = 0; i < 5; i++) {
        ck_assert(fabs(s.mu[i] - (-1.0 + 0.5 * i)) < 1e-15);
        for (int j = 0; j < 5; j++) ck_assert(s.sigma[i * 5 + j] == 1.0 / (1.0 + i + j));
    }
    eval_stats_free(&s);
    NpzArray u;
    ck_assert(npz_read(path, "arr_0", &u) == -1);   // uint8 images: refused with a message
    ck_assert_msg(strstr(core_last_error(), "'|u1'"), "message: %s", core_last_error());
    ck_assert(npz_read(path, "nope", &u) == -1);
    ck_assert_msg(strstr(core_last_error(), "no array 'nope'"), "message: %s", core_last_error());
    npz_array_free(&a), npz_array_free(&b), npz_array_free(&c);
}

START_TEST(test_npz_numpy_savez) { check_kinds("npz_kinds.npz"); }
END_TEST

START_TEST(test_npz_numpy_savez_compressed) { check_kinds("npz_kinds_compressed.npz"); }
END_TEST

START_TEST(test_npz_c_roundtrip) {
    char path[] = "/tmp/pmf_test_eval_XXXXXX.npz";
    int fd = mkstemps(path, 4);
    ck_assert(fd >= 0);
    close(fd);
    EvalStats s;
    eval_stats_alloc(&s, 7);
    for (int i = 0; i < 7; i++) {
        s.mu[i] = sin(i + 1.0) * 1e3;
        for (int j = 0; j < 7; j++) s.sigma[i * 7 + j] = 1.0 / (1.0 + i + j) + (i == j ? 1e-9 * i : 0);
    }
    ck_assert_msg(eval_stats_save_npz(path, &s) == 0, "%s", core_last_error());
    EvalStats r;
    ck_assert_msg(eval_stats_load_npz(path, &r) == 0, "%s", core_last_error());
    ck_assert_int_eq(r.dim, 7);
    ck_assert(!memcmp(r.mu, s.mu, 7 * sizeof(double)) && !memcmp(r.sigma, s.sigma, 49 * sizeof(double)));
    // a truncated file is an error, not a crash
    FILE *f = fopen(path, "r+b");
    ck_assert(f && ftruncate(fileno(f), 100) == 0);
    fclose(f);
    EvalStats bad;
    ck_assert(eval_stats_load_npz(path, &bad) == -1);
    printf("truncated npz: %s\n", core_last_error());
    unlink(path);
    eval_stats_free(&s), eval_stats_free(&r);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Statistics, Frechet distance, IS

static void stats_from(const char *path, const char *fname, const char *mname, const char *sname, EvalStats *s,
                       const char *label) {
    NpzArray f = read_ok(path, fname), mu = read_ok(path, mname), sg = read_ok(path, sname);
    int n = (int)f.shape[0], d = (int)f.shape[1];
    float *ff = malloc((size_t)n * d * sizeof(float));
    for (int64_t i = 0; i < f.numel; i++) ff[i] = (float)f.data[i];   // stored '<f4': exact
    EvalStatsAcc acc;
    eval_acc_init(&acc, d);
    int h = (n - 7) / 2;   // uneven batches
    eval_acc_add(&acc, ff, 7);
    eval_acc_add(&acc, ff + 7 * d, h);
    eval_acc_add(&acc, ff + (size_t)(7 + h) * d, n - 7 - h);
    ck_assert(eval_acc_finish(&acc, s) == 0);
    ck_assert(s->n == n);
    char l[64];
    snprintf(l, sizeof l, "%s mu", label);
    ck_assert(compare_rel_d(l, s->mu, mu.data, d) < 1e-12);
    snprintf(l, sizeof l, "%s sigma", label);
    ck_assert(compare_rel_d(l, s->sigma, sg.data, (int64_t)d * d) < 1e-12);
    eval_acc_free(&acc);
    free(ff);
    npz_array_free(&f), npz_array_free(&mu), npz_array_free(&sg);
}

static void check_fid_golden(const char *file) {
    char path[1024];
    path_of(path, sizeof path, "tests/goldens", file);
    printf("%s\n", file);
    EvalStats a, b;
    stats_from(path, "feat1", "mu1", "sigma1", &a, "set 1");
    stats_from(path, "feat2", "mu2", "sigma2", &b, "set 2");
    NpzArray want = read_ok(path, "fd_sqrtm"), want_eig = read_ok(path, "fd_eig");
    EvalFrechet fr;
    ck_assert_msg(eval_frechet(&a, &b, &fr) == 0, "%s", core_last_error());
    printf("  FD %.12g  scipy sqrtm %.12g (rel %.2e)  eigvals %.12g  clamped %d (min %.3g)\n", fr.distance,
           want.data[0], rel(fr.distance, want.data[0]), want_eig.data[0], fr.n_negative, fr.most_negative);
    ck_assert_msg(rel(fr.distance, want.data[0]) < 1e-6, "FD %.12g vs %.12g", fr.distance, want.data[0]);
    ck_assert(rel(fr.distance, want_eig.data[0]) < 1e-6);
    // symmetric in its arguments (a different decomposition order, same number)
    EvalFrechet rv;
    ck_assert(eval_frechet(&b, &a, &rv) == 0);
    ck_assert_msg(rel(rv.distance, fr.distance) < 1e-8, "FD(b, a) %.12g vs FD(a, b) %.12g", rv.distance, fr.distance);
    eval_stats_free(&a), eval_stats_free(&b);
    npz_array_free(&want), npz_array_free(&want_eig);
}

START_TEST(test_fid_full_rank) { check_fid_golden("fid_features.npz"); }
END_TEST

START_TEST(test_fid_rank_deficient) { check_fid_golden("fid_rankdef.npz"); }
END_TEST

// Diagonal covariances: FD = |mu1 - mu2|^2 + sum (sqrt a_i - sqrt b_i)^2 exactly; FD(x, x) = 0.
START_TEST(test_fid_closed_form) {
    int d = 40;
    EvalStats a, b;
    eval_stats_alloc(&a, d), eval_stats_alloc(&b, d);
    double want = 0;
    for (int i = 0; i < d; i++) {
        a.mu[i] = 0.1 * i, b.mu[i] = 0.1 * i + (i % 3 ? 0.05 : -0.2);
        double va = 0.5 + i * 0.37, vb = 2.0 / (1.0 + i);
        a.sigma[i * d + i] = va, b.sigma[i * d + i] = vb;
        want += (a.mu[i] - b.mu[i]) * (a.mu[i] - b.mu[i]) + (sqrt(va) - sqrt(vb)) * (sqrt(va) - sqrt(vb));
    }
    EvalFrechet fr;
    ck_assert(eval_frechet(&a, &b, &fr) == 0);
    printf("diagonal: FD %.15g closed form %.15g\n", fr.distance, want);
    ck_assert(rel(fr.distance, want) < 1e-10);
    // a rotated pair: FD is invariant under the same orthogonal change of basis of both
    ck_assert(eval_frechet(&a, &a, &fr) == 0);
    printf("FD(a, a) = %.3g (trace %.6g)\n", fr.distance, fr.trace1);
    ck_assert(fabs(fr.distance) < 1e-10 * fr.trace1);
    EvalStats c;
    eval_stats_alloc(&c, 3);
    EvalFrechet e;
    ck_assert(eval_frechet(&a, &c, &e) == -1);   // dims differ
    eval_stats_free(&a), eval_stats_free(&b), eval_stats_free(&c);
}
END_TEST

START_TEST(test_inception_score) {
    char path[1024];
    path_of(path, sizeof path, "tests/goldens", "fid_is.npz");
    NpzArray l = read_ok(path, "logits"), m = read_ok(path, "is_mean"), s = read_ok(path, "is_std");
    int n = (int)l.shape[0], K = (int)l.shape[1];
    float *lf = malloc((size_t)n * K * sizeof(float));
    for (int64_t i = 0; i < l.numel; i++) lf[i] = (float)l.data[i];
    double mean, std;
    ck_assert(eval_inception_score(lf, n, K, 10, &mean, &std) == 0);
    printf("IS %.12g +- %.12g, torch-fidelity formula %.12g +- %.12g\n", mean, std, m.data[0], s.data[0]);
    ck_assert(rel(mean, m.data[0]) < 1e-9 && rel(std, s.data[0]) < 1e-7);
    // uniform logits: every chunk scores exactly 1
    for (int64_t i = 0; i < l.numel; i++) lf[i] = 0.5f;
    ck_assert(eval_inception_score(lf, n, K, 10, &mean, &std) == 0);
    ck_assert(fabs(mean - 1.0) < 1e-12 && std < 1e-12);
    ck_assert(eval_inception_score(lf, 5, K, 10, &mean, &std) == -1);   // fewer samples than splits
    free(lf);
    npz_array_free(&l), npz_array_free(&m), npz_array_free(&s);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// InceptionV3

static Inception g_net;
static int g_net_ready;

static Inception *hash_net(void) {
    if (!g_net_ready) {
        inception_init(&g_net);
        inception_fill_hash(&g_net);
        g_net_ready = 1;
    }
    return &g_net;
}

static void check_out(const char *label, const Tensor *got, Tensor *want, double tol) {
    ck_assert_int_eq(got->numel, want->numel);
    double e = compare_rel(label, got->data, want->data, got->numel);
    double mx = 0, worst = 0;
    for (int64_t i = 0; i < got->numel; i++) mx = fmax(mx, fabs(want->data[i]));
    for (int64_t i = 0; i < got->numel; i++) worst = fmax(worst, fabs(got->data[i] - want->data[i]) / mx);
    printf("  %-28s max err / max|want| %.2e\n", label, worst);
    ck_assert_msg(e < tol && worst < tol, "%s: rel err %.3g, max err %.3g (tol %.1g)", label, e, worst, tol);
}

START_TEST(test_inception_hash_weights) {
    SafeTensors st;
    golden_open(&st, "inception_299");
    TestWork w;
    work_init(&w);
    Tensor *wsum = golden_tensor(&w.tp, &st, "wsum");
    for (int i = 0; i < INCEPTION_N_CONV; i++) {
        const InceptionConv *c = inception_conv(i);
        int64_t n = (int64_t)c->cout * c->cin * c->kh * c->kw;
        float *buf = malloc((size_t)n * sizeof(float));
        inception_hash_fill(buf, n, 8 * (uint64_t)i, (float)sqrt(6.0 / (double)(c->cin * c->kh * c->kw)));
        double s = 0;
        for (int64_t k = 0; k < n; k++) s += buf[k];
        free(buf);
        ck_assert_msg(fabs(s - wsum->data[i]) <= 1e-5 * fmax(1.0, fabs(s)), "conv %d (%s): hash sum %g vs python %g", i,
                      c->name, s, wsum->data[i]);
    }
    test_work_free(&w);
    safetensors_close(&st);
}
END_TEST

START_TEST(test_inception_299) {
    SafeTensors st;
    golden_open(&st, "inception_299");
    TestWork w;
    work_init(&w);
    Inception *net = hash_net();
    int shape[4] = {2, 3, INCEPTION_SIZE, INCEPTION_SIZE};
    Tensor *x = tensor_new(&w.tp, 4, shape, "x");
    inception_hash_fill(x->data, x->numel, 5000, 0.5f);
    for (int64_t i = 0; i < x->numel; i++) x->data[i] += 0.5f;
    Tensor *pool3, *logits;
    double t0 = core_now();
    inception_forward(&w.tp, net, inception_preprocess(&w.tp, x, EVAL_CONV_PYTORCH_FID), &pool3, &logits);
    printf("inception 2 x 299: %.2f s, arena peak %.0f MB\n", core_now() - t0, w.arena.peak / 1e6);
    check_out("pool3 (299)", pool3, golden_tensor(&w.tp, &st, "pool3"), 1e-4);
    check_out("logits (299)", logits, golden_tensor(&w.tp, &st, "logits"), 1e-4);
    test_work_free(&w);
    safetensors_close(&st);
}
END_TEST

static uint64_t splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

START_TEST(test_inception_small_u8) {
    SafeTensors st;
    golden_open(&st, "inception_small");
    TestWork w;
    work_init(&w);
    Inception *net = hash_net();
    int H = 64, W = 80;
    uint8_t *px = malloc((size_t)H * W * 3);
    for (int i = 0; i < H * W * 3; i++) px[i] = (uint8_t)(splitmix64(((uint64_t)5001 << 40) + (uint64_t)i) >> 56);
    Tensor *pool3, *logits;
    // pixels (NHWC uint8) -> pytorch-fid's preprocessing -> network
    inception_forward(&w.tp, net, inception_preprocess_u8(&w.tp, px, 1, H, W, 3, EVAL_CONV_PYTORCH_FID), &pool3, &logits);
    check_out("pool3 (64x80 u8)", pool3, golden_tensor(&w.tp, &st, "pool3"), 1e-4);
    check_out("logits (64x80 u8)", logits, golden_tensor(&w.tp, &st, "logits"), 1e-4);
    // the float entry point, [0, 1] NCHW
    int shape[4] = {1, 3, H, W};
    Tensor *x = tensor_new(&w.tp, 4, shape, "x01");
    for (int c = 0; c < 3; c++)
        for (int k = 0; k < H * W; k++) x->data[c * H * W + k] = (float)px[k * 3 + c] / 255.0f;
    inception_forward(&w.tp, net, inception_preprocess(&w.tp, x, EVAL_CONV_PYTORCH_FID), &pool3, NULL);
    check_out("pool3 (64x80 float)", pool3, golden_tensor(&w.tp, &st, "pool3"), 1e-4);
    // pMF's JAX convention: (x - 128) / 128 after the same resize
    inception_forward(&w.tp, net, inception_preprocess_u8(&w.tp, px, 1, H, W, 3, EVAL_CONV_PMF_JAX), &pool3, NULL);
    check_out("pool3 (64x80 pmf-jax)", pool3, golden_tensor(&w.tp, &st, "pool3_pmf"), 1e-4);
    free(px);
    test_work_free(&w);
    safetensors_close(&st);
}
END_TEST

// Closed forms of the preprocessing: a constant image stays constant under every resize; the
// TF1 resize maps output pixel j to input j * in / out exactly when that is an integer.
START_TEST(test_preprocess_conventions) {
    TestWork w;
    work_init(&w);
    int H = 23, W = 46;
    uint8_t *px = malloc((size_t)H * W * 3);
    memset(px, 200, (size_t)H * W * 3);
    EvalConvention cs[3] = {EVAL_CONV_PYTORCH_FID, EVAL_CONV_PMF_JAX, EVAL_CONV_TORCH_FIDELITY};
    double want[3] = {2.0 * 200.0 / 255.0 - 1.0, (200.0 - 128.0) / 128.0, (200.0 - 128.0) / 128.0};
    for (int k = 0; k < 3; k++) {
        Tensor *x = inception_preprocess_u8(&w.tp, px, 1, H, W, 3, cs[k]);
        ck_assert(x->shape[2] == INCEPTION_SIZE && x->shape[3] == INCEPTION_SIZE);
        for (int64_t i = 0; i < x->numel; i++)
            ck_assert_msg(fabs(x->data[i] - want[k]) < 1e-6, "%s: %g vs %g", eval_convention_name(cs[k]), x->data[i], want[k]);
    }
    // gray input is repeated to RGB; a horizontal ramp x = column under TF1 resizing from 299 * 2
    int W2 = 2 * INCEPTION_SIZE;
    uint8_t *g = malloc((size_t)W2);
    for (int j = 0; j < W2; j++) g[j] = (uint8_t)(j % 251);
    Tensor *x = inception_preprocess_u8(&w.tp, g, 1, 1, W2, 1, EVAL_CONV_TORCH_FIDELITY);
    for (int c = 0; c < 3; c++)
        for (int j = 0; j < INCEPTION_SIZE; j++) {
            float v = x->data[((size_t)c * INCEPTION_SIZE + 5) * INCEPTION_SIZE + j];
            ck_assert_msg(fabs(v - ((2 * j) % 251 - 128.0) / 128.0) < 1e-6, "tf1 col %d: %g", j, v);
        }
    EvalConvention c;
    ck_assert(eval_convention_parse("torch-fidelity", &c) == 0 && c == EVAL_CONV_TORCH_FIDELITY);
    ck_assert(eval_convention_parse("nope", &c) == -1);
    free(px), free(g);
    test_work_free(&w);
}
END_TEST

// pmf_eval --fid A.npz B.npz needs no network: it succeeds with every weight file missing, and its
// value is the closed form for diagonal covariances, sum (m1 - m2)^2 + s1 + s2 - 2 sqrt(s1 s2),
// printed with at least 7 significant digits.
static double write_diag_stats(const char *path, int dim, double shift) {
    EvalStats s = {dim, 0, calloc((size_t)dim, sizeof(double)), calloc((size_t)dim * dim, sizeof(double))};
    for (int i = 0; i < dim; i++) s.mu[i] = 0.01 * (i % 7) + shift, s.sigma[(size_t)i * dim + i] = 0.5 + 0.25 * (i % 5) + shift;
    ck_assert_msg(eval_stats_save_npz(path, &s) == 0, "%s", core_last_error());
    free(s.mu), free(s.sigma);
    return 0;
}

START_TEST(test_fid_of_two_npz_needs_no_network) {
    const struct { int dim; const char *flags; } cases[] = {
        {INCEPTION_FEATURE_DIM, "--weights /nonexistent/inception.safetensors"},
        {FEATNET_FEATURE_DIM, "--features featnet --featnet-weights /nonexistent/featnet.safetensors"},
    };
    for (int c = 0; c < 2; c++) {
        int dim = cases[c].dim;
        write_diag_stats("/tmp/pmf_test_a.npz", dim, 0.0);
        write_diag_stats("/tmp/pmf_test_b.npz", dim, 0.125);
        double want = 0;
        for (int i = 0; i < dim; i++) {
            double s1 = 0.5 + 0.25 * (i % 5), s2 = s1 + 0.125;
            want += 0.125 * 0.125 + s1 + s2 - 2 * sqrt(s1 * s2);
        }
        char args[512], out[8192];
        snprintf(args, sizeof args, "--fid /tmp/pmf_test_a.npz /tmp/pmf_test_b.npz %s", cases[c].flags);
        int rc = test_run_program("pmf_eval", args, out, sizeof out);
        ck_assert_msg(rc == 0, "pmf_eval %s -> %d:\n%s", args, rc, out);
        const char *v = strstr(out, ": ");
        ck_assert_msg(v, "no value in:\n%s", out);
        double got = strtod(v + 2, NULL);
        ck_assert_msg(fabs(got - want) <= 1e-7 * want, "FD %.12g, closed form %.12g\n%s", got, want, out);
    }
    unlink("/tmp/pmf_test_a.npz"), unlink("/tmp/pmf_test_b.npz");
}
END_TEST

// KID and precision/recall against numpy (tools/goldens/cases_metrics.py): KID on one subset of
// every row (exact), and again over 4 subsets that are all reorderings of the whole sets (the same
// value, spread 0); precision and recall exactly (shares of whole sets); identical sets cover each
// other entirely.
static float *floats_of(const char *path, const char *name, int64_t *n, int *dim) {
    NpzArray a = read_ok(path, name);
    float *f = malloc((size_t)a.numel * sizeof(float));
    for (int64_t i = 0; i < a.numel; i++) f[i] = (float)a.data[i];
    *n = a.shape[0], *dim = (int)a.shape[1];
    npz_array_free(&a);
    return f;
}

START_TEST(test_kid_and_precision_recall) {
    char path[1024];
    path_of(path, sizeof path, "tests/goldens", "metrics.npz");
    int64_t na, nb, nr, nf;
    int d, d2;
    float *a = floats_of(path, "kid_a", &na, &d), *b = floats_of(path, "kid_b", &nb, &d2);
    NpzArray want = read_ok(path, "kid");
    double mean, std;
    ck_assert_msg(eval_kid(a, na, b, nb, d, 1, (int)na, 5, &mean, &std) == 0, "%s", core_last_error());
    printf("  KID %.12g  numpy %.12g (rel %.2e)\n", mean, want.data[0], rel(mean, want.data[0]));
    ck_assert_msg(rel(mean, want.data[0]) < 1e-9, "KID %.12g vs numpy %.12g", mean, want.data[0]);
    ck_assert_msg(eval_kid(a, na, b, nb, d, 4, 1000, 5, &mean, &std) == 0, "%s", core_last_error());
    ck_assert_msg(rel(mean, want.data[0]) < 1e-9 && std < 1e-9 * fabs(mean), "KID over reordered subsets %.12g +- %.3g", mean, std);
    ck_assert_msg(eval_kid(a, na, b, nb, d, 8, 40, 5, &mean, &std) == 0, "%s", core_last_error());
    ck_assert_msg(std > 0 && fabs(mean - want.data[0]) < 0.5 * want.data[0], "KID on subsets of 40: %.6g +- %.3g", mean, std);
    npz_array_free(&want);
    float *real = floats_of(path, "pr_real", &nr, &d), *fake = floats_of(path, "pr_fake", &nf, &d2);
    NpzArray wp = read_ok(path, "precision"), wr = read_ok(path, "recall");
    double precision, recall;
    ck_assert_msg(eval_precision_recall(real, nr, fake, nf, d, 3, &precision, &recall) == 0, "%s", core_last_error());
    printf("  precision %.6f recall %.6f  numpy %.6f %.6f\n", precision, recall, wp.data[0], wr.data[0]);
    ck_assert_msg(fabs(precision - wp.data[0]) < 1e-12 && fabs(recall - wr.data[0]) < 1e-12, "precision/recall differ from numpy");
    ck_assert(precision > 0 && precision < 1 && recall > 0 && recall < 1);
    ck_assert(eval_precision_recall(real, nr, real, nr, d, 3, &precision, &recall) == 0 && precision == 1 && recall == 1);
    ck_assert_int_eq(eval_precision_recall(real, 3, fake, nf, d, 3, &precision, &recall), -1);
    npz_array_free(&wp), npz_array_free(&wr);
    free(a), free(b), free(real), free(fake);
}
END_TEST

START_TEST(test_missing_weights_message) {
    Inception net;
    inception_init(&net);
    ck_assert(inception_load(&net, "/nonexistent/inception.safetensors") == -1);
    ck_assert_msg(strstr(core_last_error(), "tools/convert_inception.py"), "message: %s", core_last_error());
    inception_free(&net);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Pipeline: PNG folder and HDF5 file of the same pixels

#define PIPE_N 13
#define PIPE_S 6
#define PIPE_DIM 5

// A cheap deterministic feature network: per-image channel means, a corner pixel and a product.
static int toy_fn(void *ctx, const uint8_t *px, int n, int H, int W, int C, float *feat, float *logits) {
    (void)ctx, (void)logits;
    for (int i = 0; i < n; i++) {
        const uint8_t *im = px + (size_t)i * H * W * C;
        double m[3] = {0, 0, 0};
        for (int k = 0; k < H * W; k++)
            for (int c = 0; c < C; c++) m[c] += im[k * C + c];
        for (int c = 0; c < 3; c++) feat[i * PIPE_DIM + c] = (float)(m[c < C ? c : 0] / (H * W) / 255.0);
        feat[i * PIPE_DIM + 3] = im[0] / 255.0f;
        feat[i * PIPE_DIM + 4] = feat[i * PIPE_DIM] * feat[i * PIPE_DIM + 1];
    }
    return 0;
}

// The toy network with two logits: channel-0 mean and the corner pixel.
static int toy_logits_fn(void *ctx, const uint8_t *px, int n, int H, int W, int C, float *feat, float *logits) {
    toy_fn(ctx, px, n, H, W, C, feat, NULL);
    for (int i = 0; logits && i < n; i++) logits[2 * i] = feat[i * PIPE_DIM], logits[2 * i + 1] = feat[i * PIPE_DIM + 3];
    return 0;
}

static uint8_t pipe_px(int i, int k) { return (uint8_t)(splitmix64(((uint64_t)77 << 40) + (uint64_t)(i * 1000 + k)) >> 56); }

static void write_png(const char *path, const uint8_t *rgb, int S) {
    png_image im;
    memset(&im, 0, sizeof im);
    im.version = PNG_IMAGE_VERSION;
    im.width = im.height = (png_uint_32)S;
    im.format = PNG_FORMAT_RGB;
    ck_assert(png_image_write_to_file(&im, path, 0, rgb, 0, NULL));
}

// n images (PIPE_S, PIPE_S, 3) and their labels as a shard, through dataset/'s one writer.
static void write_shard(const char *path, const uint8_t *px, const int32_t *labels, int n) {
    DsShardMeta meta = {PIPE_S, 3, 0, "test_eval", "none", 0, NULL};
    DsShardWriter *w = ds_shard_writer_open(path, &meta);
    ck_assert_msg(w != NULL, "%s", core_last_error());
    ck_assert_msg(ds_shard_writer_add(w, px, labels, n) == 0, "%s", core_last_error());
    ck_assert_msg(ds_shard_writer_finish(w) == 0, "%s", core_last_error());
}

START_TEST(test_pipeline_png_hdf5) {
    char dir[] = "/tmp/pmf_test_eval_XXXXXX";
    ck_assert(mkdtemp(dir));
    char pngdir[1100], h5[1100], f[1200];
    snprintf(pngdir, sizeof pngdir, "%s/png", dir);
    snprintf(h5, sizeof h5, "%s/samples.h5", dir);
    mkdir(pngdir, 0700);
    uint8_t *all = malloc((size_t)PIPE_N * PIPE_S * PIPE_S * 3);
    for (int i = 0; i < PIPE_N; i++) {
        for (int k = 0; k < PIPE_S * PIPE_S * 3; k++) all[(size_t)i * PIPE_S * PIPE_S * 3 + k] = pipe_px(i, k);
        snprintf(f, sizeof f, "%s/%05d.png", pngdir, i);
        write_png(f, all + (size_t)i * PIPE_S * PIPE_S * 3, PIPE_S);
    }
    int32_t lab[PIPE_N];   // labels i % 3, in the file and in the shards
    for (int i = 0; i < PIPE_N; i++) lab[i] = i % 3;
    write_shard(h5, all, lab, PIPE_N);
    // the same pixels as a pmf_prepare folder of two shards (7 + 6 images)
    char sharddir[1100];
    snprintf(sharddir, sizeof sharddir, "%s/shards", dir);
    mkdir(sharddir, 0700);
    for (int part = 0; part < 2; part++) {
        int first = part ? 7 : 0, count = part ? PIPE_N - 7 : 7;
        snprintf(f, sizeof f, "%s/shard-%05d.h5", sharddir, part);
        write_shard(f, all + (size_t)first * PIPE_S * PIPE_S * 3, lab + first, count);
    }

    // expected: the features of the pixels computed here, statistics in double by hand
    float feat[PIPE_N * PIPE_DIM];
    toy_fn(NULL, all, PIPE_N, PIPE_S, PIPE_S, 3, feat, NULL);
    double mu[PIPE_DIM] = {0}, cov[PIPE_DIM * PIPE_DIM] = {0};
    for (int i = 0; i < PIPE_N; i++)
        for (int a = 0; a < PIPE_DIM; a++) mu[a] += feat[i * PIPE_DIM + a] / (double)PIPE_N;
    for (int i = 0; i < PIPE_N; i++)
        for (int a = 0; a < PIPE_DIM; a++)
            for (int b = 0; b < PIPE_DIM; b++)
                cov[a * PIPE_DIM + b] += (feat[i * PIPE_DIM + a] - mu[a]) * (feat[i * PIPE_DIM + b] - mu[b]) / (PIPE_N - 1.0);

    EvalFeatureNet net = {"toy", PIPE_DIM, 0, toy_fn, NULL};
    const EvalReaders *readers = cli_eval_readers();   // dataset/'s, as pmf_eval gives them
    EvalRunConfig cfg;
    eval_run_config_default(&cfg);
    cfg.batch = 4;   // 13 = 4 + 4 + 4 + 1
    cfg.progress = 0;
    const char *paths[3] = {pngdir, h5, sharddir};
    const char *mu_label[3] = {"png mu", "hdf5 mu", "shard folder mu"}, *sg_label[3] = {"png sigma", "hdf5 sigma", "shard folder sigma"};
    for (int p = 0; p < 3; p++) {
        EvalRunResult r;
        ck_assert_msg(eval_stats_from_path(paths[p], readers, &net, &cfg, &r) == 0, "%s", core_last_error());
        ck_assert(r.n_images == PIPE_N && !r.from_npz);
        ck_assert(compare_rel_d(mu_label[p], r.stats.mu, mu, PIPE_DIM) < 1e-12);
        ck_assert(compare_rel_d(sg_label[p], r.stats.sigma, cov, PIPE_DIM * PIPE_DIM) < 1e-10);
        // --save-stats: the npz written and read back gives the same statistics
        snprintf(f, sizeof f, "%s/stats%d.npz", dir, p);
        ck_assert(eval_stats_save_npz(f, &r.stats) == 0);
        EvalRunResult back;
        ck_assert_msg(eval_stats_from_path(f, readers, &net, &cfg, &back) == 0, "%s", core_last_error());
        ck_assert(back.from_npz && !memcmp(back.stats.sigma, r.stats.sigma, sizeof cov));
        EvalFrechet fr;
        ck_assert(eval_frechet(&r.stats, &back.stats, &fr) == 0 && fabs(fr.distance) < 1e-12);
        eval_run_result_free(&back);
        unlink(f);
        eval_run_result_free(&r);
    }
    // keep_features: every feature vector, each image's argmax class and the set's labels (the HDF5
    // file's and the shards'; the PNG names here say none)
    EvalFeatureNet lnet = {"toy+logits", PIPE_DIM, 2, toy_logits_fn, NULL};
    cfg.keep_features = 1;
    for (int p = 0; p < 3; p++) {
        EvalRunResult r;
        ck_assert_msg(eval_stats_from_path(paths[p], readers, &lnet, &cfg, &r) == 0, "%s", core_last_error());
        ck_assert(r.features && !memcmp(r.features, feat, sizeof feat));
        for (int i = 0; i < PIPE_N; i++) ck_assert_int_eq(r.predicted[i], feat[i * PIPE_DIM + 3] > feat[i * PIPE_DIM] ? 1 : 0);
        if (p == 0) ck_assert(r.labels == NULL);
        else ck_assert_msg(r.labels && !memcmp(r.labels, lab, sizeof lab), "%s: labels not read", paths[p]);
        eval_run_result_free(&r);
    }
    cfg.keep_features = 0;
    // max_images, and errors that name the input
    cfg.max_images = 5;
    EvalRunResult r;
    ck_assert(eval_stats_from_path(h5, readers, &net, &cfg, &r) == 0 && r.n_images == 5);
    eval_run_result_free(&r);
    ck_assert(eval_stats_from_path("/nonexistent/x", readers, &net, &cfg, &r) == -1);
    ck_assert_msg(strstr(core_last_error(), "/nonexistent/x"), "message: %s", core_last_error());
    snprintf(f, sizeof f, "%s/notes.jpg", pngdir);
    FILE *j = fopen(f, "w");
    fclose(j);
    ck_assert(eval_stats_from_path(pngdir, readers, &net, &cfg, &r) == -1);
    ck_assert_msg(strstr(core_last_error(), "only PNG"), "message: %s", core_last_error());
    unlink(f);
    for (int i = 0; i < PIPE_N; i++) {
        snprintf(f, sizeof f, "%s/%05d.png", pngdir, i);
        unlink(f);
    }
    rmdir(pngdir);
    unlink(h5);
    for (int part = 0; part < 2; part++) {
        snprintf(f, sizeof f, "%s/shard-%05d.h5", sharddir, part);
        unlink(f);
    }
    rmdir(sharddir);
    rmdir(dir);
    free(all);
}
END_TEST

// A damaged shard given to pmf_eval: refused with a message naming the file (dataset/'s reader
// checks the layout before any pixel is read), whether cut short or not HDF5 at all.
START_TEST(test_damaged_shard_named_by_pmf_eval) {
    char dir[] = "/tmp/pmf_test_eval_bad_XXXXXX";
    ck_assert(mkdtemp(dir));
    char good[1100], cut[1100], junk[1100], stats[1100];
    snprintf(good, sizeof good, "%s/good.h5", dir);
    snprintf(cut, sizeof cut, "%s/cut.h5", dir);
    snprintf(junk, sizeof junk, "%s/junk.h5", dir);
    snprintf(stats, sizeof stats, "%s/ref.npz", dir);
    uint8_t px[PIPE_N * PIPE_S * PIPE_S * 3];
    int32_t lab[PIPE_N];
    for (int i = 0; i < PIPE_N; i++) {
        lab[i] = i % 3;
        for (int k = 0; k < PIPE_S * PIPE_S * 3; k++) px[(size_t)i * PIPE_S * PIPE_S * 3 + k] = pipe_px(i, k);
    }
    write_shard(good, px, lab, PIPE_N);
    size_t n;
    unsigned char *bytes = core_read_file(good, (size_t)1 << 26, &n);
    ck_assert_msg(bytes != NULL, "%s", core_last_error());
    FILE *f = fopen(cut, "wb");
    ck_assert(f && fwrite(bytes, 1, n / 2, f) == n / 2 && fclose(f) == 0);
    f = fopen(junk, "wb");
    ck_assert(f && fwrite(bytes + 8, 1, n - 8, f) == n - 8 && fclose(f) == 0);   // no signature
    free(bytes);
    write_diag_stats(stats, INCEPTION_FEATURE_DIM, 0.0);
    const char *bad[2] = {cut, junk};
    for (int b = 0; b < 2; b++) {
        char args[4000], out[8192];
        snprintf(args, sizeof args, "--fid %s %s --weights /nonexistent/inception.safetensors", bad[b], stats);
        int rc = test_run_program("pmf_eval", args, out, sizeof out);
        printf("pmf_eval on %s -> %d: %s", bad[b], rc, out);
        ck_assert_msg(rc != 0, "pmf_eval accepted the damaged shard %s:\n%s", bad[b], out);
        ck_assert_msg(strstr(out, bad[b]) && strstr(out, "shard"), "the message does not name %s:\n%s", bad[b], out);
    }
    // the undamaged shard is read (this set of 13 images needs Inception, so only as a source)
    EvalSource *src = eval_source_open(good, cli_eval_readers());
    ck_assert_msg(src && eval_source_count(src) == PIPE_N, "%s", core_last_error());
    eval_source_close(src);
    unlink(good), unlink(cut), unlink(junk), unlink(stats);
    rmdir(dir);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// PNG folders: every kind of PNG, decoded by dataset/'s one PNG reader (cli/eval_readers.c)

// A PNG of any colour type and bit depth through libpng's writer: `v` holds one sample per channel
// (palette indices for PNG_COLOR_TYPE_PALETTE; up to 65535 at 16 bits), row-major. Palettes are
// PAL with a tRNS entry; text_bytes > 0 adds a tEXt chunk whose data is that long.
static const png_color PAL[4] = {{10, 20, 30}, {200, 100, 50}, {0, 255, 128}, {77, 78, 79}};
static void write_png_kind(const char *path, int w, int h, int depth, int type, const uint16_t *v, size_t text_bytes) {
    int ch = type == PNG_COLOR_TYPE_RGB ? 3 : type == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    FILE *f = fopen(path, "wb");
    ck_assert(f);
    png_structp p = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png_create_info_struct(p);
    ck_assert(p && info);
    if (setjmp(png_jmpbuf(p))) ck_abort_msg("libpng failed to write %s", path);
    png_init_io(p, f);
    png_set_IHDR(p, info, (png_uint_32)w, (png_uint_32)h, depth, type, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
                 PNG_FILTER_TYPE_DEFAULT);
    if (type == PNG_COLOR_TYPE_PALETTE) {
        png_set_PLTE(p, info, PAL, 4);
        png_byte alpha[2] = {0, 128};   // transparent entries: tRNS is ignored, as PIL's convert("RGB")
        png_set_tRNS(p, info, alpha, 2, NULL);
    }
    char *text = NULL;
    if (text_bytes) {   // keyword "k", a NUL, then text_bytes - 2 bytes of text
        text = malloc(text_bytes);
        memset(text, 'x', text_bytes - 2);
        text[text_bytes - 2] = 0;
        png_text t = {.compression = PNG_TEXT_COMPRESSION_NONE, .key = "k", .text = text, .text_length = text_bytes - 2};
        png_set_text(p, info, &t, 1);
    }
    png_write_info(p, info);
    if (depth < 8) png_set_packing(p);   // one sample per byte in, packed in the file
    uint8_t *row = malloc((size_t)w * ch * 2);
    for (int y = 0; y < h; y++) {
        for (int k = 0; k < w * ch; k++) {
            uint16_t x = v[(size_t)y * w * ch + k];
            if (depth == 16) row[2 * k] = (uint8_t)(x >> 8), row[2 * k + 1] = (uint8_t)x;   // big-endian
            else row[k] = (uint8_t)x;
        }
        png_write_row(p, row);
    }
    png_write_end(p, NULL);
    png_destroy_write_struct(&p, &info);
    ck_assert(fclose(f) == 0);
    free(row), free(text);
}

#define KIND_W 5
#define KIND_H 4
typedef struct PngKind {
    const char *name;
    int w, h, depth, type;
    int want_c;   // what eval must hand its network: 1 for gray (and gray+alpha), 3 for the rest
} PngKind;

// The pixels eval must see for samples v of kind k, from the PNG specification and PIL's
// conversions (convert("L") / convert("RGB")): alpha dropped, never composited; palette indices
// looked up; 1/2/4-bit gray scaled to 0..255; 16-bit samples reduced to their high byte.
static void expected_pixels(const PngKind *k, const uint16_t *v, uint8_t *out) {
    int in_c = k->type == PNG_COLOR_TYPE_RGB ? 3 : k->type == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : k->type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
    for (int i = 0; i < k->w * k->h; i++)
        for (int c = 0; c < k->want_c; c++) {
            uint16_t x = v[i * in_c + (k->type == PNG_COLOR_TYPE_PALETTE ? 0 : c)];
            if (k->type == PNG_COLOR_TYPE_PALETTE) {
                const png_color *e = &PAL[x];
                out[i * 3 + c] = c == 0 ? e->red : c == 1 ? e->green : e->blue;
            } else
                out[i * k->want_c + c] = (uint8_t)(k->depth == 16 ? x >> 8 : k->depth < 8 ? x * (255 / ((1 << k->depth) - 1)) : x);
        }
}

// A folder of gray, gray+alpha, 2-bit and 16-bit gray, RGB, RGBA, palette (with tRNS) and 16-bit
// RGB PNGs, and two of another size, read by eval through cli_eval_readers(): gray ones stay one
// channel, each batch holds one geometry, and every pixel is what the PNG format and PIL say.
START_TEST(test_png_folder_of_every_kind) {
    static const PngKind kinds[] = {
        {"a_gray8.png", KIND_W, KIND_H, 8, PNG_COLOR_TYPE_GRAY, 1},
        {"b_gray_alpha.png", KIND_W, KIND_H, 8, PNG_COLOR_TYPE_GRAY_ALPHA, 1},
        {"c_gray2.png", KIND_W, KIND_H, 2, PNG_COLOR_TYPE_GRAY, 1},
        {"d_gray16.png", KIND_W, KIND_H, 16, PNG_COLOR_TYPE_GRAY, 1},
        {"e_rgb8.png", KIND_W, KIND_H, 8, PNG_COLOR_TYPE_RGB, 3},
        {"f_rgba8.png", KIND_W, KIND_H, 8, PNG_COLOR_TYPE_RGB_ALPHA, 3},
        {"g_palette.png", KIND_W, KIND_H, 8, PNG_COLOR_TYPE_PALETTE, 3},
        {"h_rgb16.png", KIND_W, KIND_H, 16, PNG_COLOR_TYPE_RGB, 3},
        {"i_rgb8_7x3.png", 7, 3, 8, PNG_COLOR_TYPE_RGB, 3},   // another size: a batch of its own
        {"j_gray8_7x3.png", 7, 3, 8, PNG_COLOR_TYPE_GRAY, 1},   // same size, another C: one more
    };
    enum { N_KINDS = sizeof kinds / sizeof *kinds };
    const int want_batches[] = {4, 4, 1, 1};   // images per batch, in name order
    char dir[] = "/tmp/pmf_test_eval_kinds_XXXXXX";
    ck_assert(mkdtemp(dir));
    char path[N_KINDS][1100];
    uint8_t *want[N_KINDS];
    for (int i = 0; i < N_KINDS; i++) {
        const PngKind *k = &kinds[i];
        int in_c = k->type == PNG_COLOR_TYPE_RGB ? 3 : k->type == PNG_COLOR_TYPE_RGB_ALPHA ? 4 : k->type == PNG_COLOR_TYPE_GRAY_ALPHA ? 2 : 1;
        int n = k->w * k->h * in_c, top = k->type == PNG_COLOR_TYPE_PALETTE ? 4 : (1 << k->depth);
        uint16_t *v = malloc((size_t)n * sizeof *v);
        for (int j = 0; j < n; j++) v[j] = (uint16_t)(splitmix64(((uint64_t)91 << 40) + (uint64_t)(i * 1000 + j)) % (uint64_t)top);
        snprintf(path[i], sizeof path[i], "%s/%s", dir, k->name);
        write_png_kind(path[i], k->w, k->h, k->depth, k->type, v, 0);
        want[i] = malloc((size_t)k->w * k->h * k->want_c);
        expected_pixels(k, v, want[i]);
        free(v);
    }
    EvalSource *src = eval_source_open(dir, cli_eval_readers());
    ck_assert_msg(src && eval_source_count(src) == N_KINDS && !strcmp(eval_source_kind(src), "png-folder"), "%s",
                  core_last_error());
    int n, H, W, C, at = 0, batches = 0;
    const uint8_t *px;
    while ((px = eval_source_next(src, 16, &n, &H, &W, &C))) {
        ck_assert_int_lt(batches, 4);
        ck_assert_int_eq(n, want_batches[batches]);
        for (int b = 0; b < n; b++, at++) {
            const PngKind *k = &kinds[at];
            ck_assert_msg(H == k->h && W == k->w && C == k->want_c, "%s read as %dx%dx%d, expected %dx%dx%d", k->name, H, W,
                          C, k->h, k->w, k->want_c);
            size_t bytes = (size_t)H * W * C;
            for (size_t j = 0; j < bytes; j++)
                ck_assert_msg(px[b * bytes + j] == want[at][j], "%s: byte %zu is %d, expected %d", k->name, j,
                              px[b * bytes + j], want[at][j]);
        }
        batches++;
    }
    ck_assert_msg(n == 0, "%s", core_last_error());
    ck_assert_int_eq(at, N_KINDS);
    eval_source_close(src);
    for (int i = 0; i < N_KINDS; i++) unlink(path[i]), free(want[i]);
    rmdir(dir);
}
END_TEST

// A decoder that claims two-channel pixels: eval refuses them, naming the file.
static uint8_t *two_channel_decoder(void *ctx, const char *path, int *h, int *w, int *c) {
    *h = 2, *w = 2, *c = 2;
    return calloc(8, 1);
}

// The PNGs of a folder are decoded by dataset/'s reader and no other: a tEXt chunk one byte over
// DS_PNG_MAX_CHUNK_BYTES (which libpng alone, and eval's former reader, skipped with a warning,
// decoding the image) is refused with dataset/'s message, by the library and by pmf_eval; the
// same image with a small caption is read. Without a decoder a PNG folder is refused, and a
// decoder's impossible answer too.
START_TEST(test_png_folder_uses_dataset_decoder) {
    char dir[] = "/tmp/pmf_test_eval_pngchunk_XXXXXX";
    ck_assert(mkdtemp(dir));
    char folder[1100], png[1200], stats[1100];
    snprintf(folder, sizeof folder, "%s/set", dir);
    snprintf(png, sizeof png, "%s/00000.png", folder);
    snprintf(stats, sizeof stats, "%s/ref.npz", dir);
    ck_assert(mkdir(folder, 0700) == 0);
    uint16_t v[PIPE_S * PIPE_S];
    for (int i = 0; i < PIPE_S * PIPE_S; i++) v[i] = pipe_px(0, i);
    EvalFeatureNet net = {"toy", PIPE_DIM, 0, toy_fn, NULL};
    EvalRunConfig cfg;
    eval_run_config_default(&cfg);
    cfg.progress = 0;
    EvalRunResult r;

    char second[1200];   // a second image, so that there are statistics (n >= 2)
    snprintf(second, sizeof second, "%s/00001.png", folder);
    write_png_kind(second, PIPE_S, PIPE_S, 8, PNG_COLOR_TYPE_GRAY, v, 0);
    write_png_kind(png, PIPE_S, PIPE_S, 8, PNG_COLOR_TYPE_GRAY, v, 1000);   // a 1000-byte caption: read
    ck_assert_msg(eval_stats_from_path(folder, cli_eval_readers(), &net, &cfg, &r) == 0, "%s", core_last_error());
    ck_assert_int_eq(r.n_images, 2);
    eval_run_result_free(&r);

    write_png_kind(png, PIPE_S, PIPE_S, 8, PNG_COLOR_TYPE_GRAY, v, (size_t)DS_PNG_MAX_CHUNK_BYTES + 1);
    ck_assert_msg(eval_stats_from_path(folder, cli_eval_readers(), &net, &cfg, &r) == -1, "the oversized chunk was accepted");
    const char *msg = core_last_error();
    printf("eval on a PNG with a %u-byte tEXt chunk: %s\n", DS_PNG_MAX_CHUNK_BYTES + 1, msg);
    ck_assert_msg(strstr(msg, png) && strstr(msg, "chunk 'tEXt'") && strstr(msg, "limit"), "not dataset/'s message: %s", msg);
    write_diag_stats(stats, INCEPTION_FEATURE_DIM, 0.0);
    char args[4000], out[8192];
    snprintf(args, sizeof args, "--fid %s %s --weights /nonexistent/inception.safetensors", folder, stats);
    int rc = test_run_program("pmf_eval", args, out, sizeof out);
    printf("pmf_eval on it -> %d: %s", rc, out);
    ck_assert_msg(rc != 0 && strstr(out, png) && strstr(out, "chunk 'tEXt'"), "pmf_eval did not refuse %s with dataset/'s "
                  "message:\n%s", png, out);

    // no decoder: the folder is refused by name, not read some other way; a decoder's nonsense too
    EvalReaders none = {cli_eval_readers()->shards, NULL};
    ck_assert(eval_source_open(folder, &none) == NULL);
    ck_assert_msg(strstr(core_last_error(), folder) && strstr(core_last_error(), "no image decoder"), "%s", core_last_error());
    EvalImageDecoder two = {NULL, two_channel_decoder};
    EvalReaders odd = {NULL, &two};
    ck_assert_msg(eval_stats_from_path(folder, &odd, &net, &cfg, &r) == -1, "2-channel pixels were accepted");
    ck_assert_msg(strstr(core_last_error(), png) && strstr(core_last_error(), "2x2x2"), "%s", core_last_error());
    unlink(png), unlink(second), unlink(stats), rmdir(folder), rmdir(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("eval");
    TCase *tc = tcase_create("eval");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, test_npz_numpy_savez);
    tcase_add_test(tc, test_npz_numpy_savez_compressed);
    tcase_add_test(tc, test_npz_c_roundtrip);
    tcase_add_test(tc, test_fid_full_rank);
    tcase_add_test(tc, test_fid_rank_deficient);
    tcase_add_test(tc, test_fid_closed_form);
    tcase_add_test(tc, test_inception_score);
    tcase_add_test(tc, test_preprocess_conventions);
    tcase_add_test(tc, test_missing_weights_message);
    tcase_add_test(tc, test_pipeline_png_hdf5);
    tcase_add_test(tc, test_damaged_shard_named_by_pmf_eval);
    tcase_add_test(tc, test_png_folder_of_every_kind);
    tcase_add_test(tc, test_png_folder_uses_dataset_decoder);
    tcase_add_test(tc, test_inception_hash_weights);
    tcase_add_test(tc, test_inception_299);
    tcase_add_test(tc, test_inception_small_u8);
    tcase_add_test(tc, test_fid_of_two_npz_needs_no_network);
    tcase_add_test(tc, test_kid_and_precision_recall);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
