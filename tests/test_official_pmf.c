// tests/test_official_pmf.c: the authors' own pMF code against pmf. tools/goldens/
// cases_official_pmf.py built the official pixelMeanFlow (tools/reference/official_pmf/, verbatim)
// at a tiny size with seeded random non-zero weights, saved it in the official layout, converted it
// with tools/convert_weights.py pmf (tests/goldens/official_pmf_tiny.safetensors) and recorded the
// official u for given inputs and the official generate()'s 1-step and 2-step samples from given
// noise (official_pmf_noise.npy) and labels (official_pmf_labels.npy). Here the converted file goes
// through pmf_model_open / pmf_sample_run, the paths pmf_sample and pmf_eval take.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "eval/eval.h"
#include "harness.h"
#include "pmf/pmf.h"

#define TINY PMF_GOLDEN_DIR "/official_pmf_tiny.safetensors"
#define NOISE PMF_GOLDEN_DIR "/official_pmf_noise.npy"
#define LABELS PMF_GOLDEN_DIR "/official_pmf_labels.npy"

static float meta_float(const SafeTensors *st, const char *key) {
    const char *v = safetensors_meta(st, key);
    ck_assert_msg(v != NULL, "golden metadata has no '%s'", key);
    return strtof(v, NULL);
}

START_TEST(test_u_matches_official) {
    PmfModel m;
    PmfTrainConfig cfg;
    ck_assert_msg(pmf_model_open(TINY, 0, &m, &cfg) == 0, "%s", core_last_error());
    const PmfConfig *c = &m.cfg;
    // the architecture the converter inferred from the shapes
    ck_assert(c->img_size == 16 && c->patch == 4 && c->channels == 3 && c->dim == 32 && c->heads == 2);
    ck_assert(c->depth_shared == 2 && c->depth_head == 2 && c->bottleneck == 128 && c->mlp_hidden == 85);
    ck_assert(c->num_classes == 10 && c->noise_scale == 2.0f && !c->with_v_head);
    SafeTensors g;
    golden_open(&g, "official_pmf_tiny_golden");
    TestWork w;
    test_work_init(&w, 16 << 20);
    Tape *tp = &w.tp;
    Tensor *z = golden_tensor(tp, &g, "z"), *t = golden_tensor(tp, &g, "t"), *lab = golden_tensor(tp, &g, "labels");
    int B = z->shape[0], labels[8];
    for (int i = 0; i < B; i++) labels[i] = (int)lab->data[i];
    ck_assert_int_eq(labels[B - 1], 10);   // the null class is one of the rows
    PmfCond cond = {golden_tensor(tp, &g, "h"), golden_tensor(tp, &g, "omega"), golden_tensor(tp, &g, "t_min"),
                    golden_tensor(tp, &g, "t_max"), labels};
    tape_set_recording(tp, 0);
    Tensor *net = pmf_forward(tp, &m, z, &cond, 1, 0).u_out;
    Tensor *u = pmf_velocity(tp, c, net, z, t->data, 0);
    Tensor *want_net = golden_tensor(tp, &g, "net"), *want_u = golden_tensor(tp, &g, "u");
    // u = (z - net) / clamp(t) is dominated by z / t; the u-head's image is compared on its own too
    double e_net = compare_rel("official u-head image", net->data, want_net->data, net->numel);
    double e_u = compare_rel("official u = (z - net) / clamp(t, 0.05)", u->data, want_u->data, u->numel);
    ck_assert_msg(e_net < 1e-4 && e_u < 1e-4, "u differs from the official pmfDiT: %.3g (net %.3g)", e_u, e_net);
    // the test can fail: a small change of one gate (the last block's MLP gate, by 0.1 per
    // channel) moves the u-head image beyond the tolerance
    for (int64_t k = 0; k < m.u_head[1].mlp_scale->numel; k++) m.u_head[1].mlp_scale->data[k] += 0.1f;
    Tensor *net2 = pmf_forward(tp, &m, z, &cond, 1, 0).u_out;
    double e_bad = compare_rel("  (one gate perturbed)", net2->data, want_net->data, net2->numel);
    ck_assert_msg(e_bad > 5e-4, "a perturbed gate still matched (%.3g)", e_bad);
    test_work_free(&w);
    safetensors_close(&g);
    pmf_model_free(&m);
}
END_TEST

// pmf_sample's path: resolve what is left open, run, read the --npy output back. *a becomes the
// resolved arguments.
static void sample_npy(PmfSampleArgs *a, NpyArray *out) {
    char path[] = "/tmp/pmf_test_official_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    a->npy = path;
    ck_assert_msg(pmf_sample_resolve(a, a) == 0 && pmf_sample_run(a) == 0, "%s", core_last_error());
    ck_assert_msg(npy_read(path, 1 << 20, out) == 0, "%s", core_last_error());
    unlink(path);
    ck_assert(out->kind == 'f' && out->ndim == 4);
}

START_TEST(test_samples_match_official_generate) {
    SafeTensors g;
    golden_open(&g, "official_pmf_tiny_golden");
    TestWork w;
    test_work_init(&w, 1 << 20);
    const char *want_name[2] = {"sample1", "sample2"};
    for (int steps = 1; steps <= 2; steps++) {
        PmfSampleArgs a = {TINY, 0, 0, 2, steps, meta_float(&g, "omega"), meta_float(&g, "t_min"), meta_float(&g, "t_max"),
                           NULL, 0, 0, NULL, NULL, NULL, 10, NOISE, LABELS, NULL, NULL};
        NpyArray s;
        sample_npy(&a, &s);   // batch 2 over 3 images: batching must not matter
        Tensor *want = golden_tensor(&w.tp, &g, want_name[steps - 1]);
        ck_assert(s.shape[0] == 3 && s.shape[1] == 3 && s.shape[2] == 16 && s.shape[3] == 16 && a.n == 3);
        char label[64];
        snprintf(label, sizeof label, "official generate(), %d step%s", steps, steps > 1 ? "s" : "");
        double e = compare_rel(label, s.f32, want->data, want->numel);
        ck_assert_msg(e < 1e-4, "%d-step samples differ from the official generate(): %.3g", steps, e);
        npy_free(&s);
    }
    test_work_free(&w);
    safetensors_close(&g);
}
END_TEST

START_TEST(test_defaults_from_the_file) {
    // Unset settings come from the converted file's sampling section: for a shape that is none
    // of the released models, evaluate.py's defaults (omega 7.5, interval [0.1, 0.8], 1 step).
    PmfSampleArgs a = {TINY, 0, 0, 4, 0, NAN, NAN, NAN, NULL, 0, 0, NULL, NULL, NULL, 10, NOISE, NULL, NULL, NULL};
    NpyArray s;
    sample_npy(&a, &s);
    ck_assert_msg(a.steps == 1 && a.omega == 7.5f && fabsf(a.t_min - 0.1f) < 1e-7f && fabsf(a.t_max - 0.8f) < 1e-7f,
                  "resolved steps %d omega %g interval [%g, %g]", a.steps, a.omega, a.t_min, a.t_max);
    ck_assert_int_eq(a.n, 3);   // from the noise file's rows
    for (int64_t k = 0; k < s.numel; k++) ck_assert(isfinite(s.f32[k]));
    npy_free(&s);
}
END_TEST

// An .npy of int64 values, written by hand (the library writes floats only).
static void write_i64_npy(const char *path, const int64_t *v, int n) {
    char hdr[118];
    int k = snprintf(hdr, sizeof hdr, "{'descr': '<i8', 'fortran_order': False, 'shape': (%d,), }", n);
    memset(hdr + k, ' ', sizeof hdr - (size_t)k - 1);
    hdr[sizeof hdr - 1] = '\n';
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, sizeof hdr, 0};
    fwrite(pre, 1, 10, f), fwrite(hdr, 1, sizeof hdr, f), fwrite(v, 8, (size_t)n, f);
    fclose(f);
}

START_TEST(test_bad_inputs_are_named) {
    char dir[] = "/tmp/pmf_test_official_XXXXXX";
    ck_assert(mkdtemp(dir) != NULL);
    char lab_path[300], noise_path[300], out[300];
    snprintf(lab_path, sizeof lab_path, "%s/labels.npy", dir);
    snprintf(noise_path, sizeof noise_path, "%s/noise.npy", dir);
    snprintf(out, sizeof out, "%s/out.npy", dir);
    PmfSampleArgs base = {TINY, 0, 0, 4, 1, 2.0f, 0.0f, 1.0f, NULL, 0, 0, NULL, NULL, NULL, 10, NOISE, NULL, out, NULL};
    // a label outside [0, classes]
    int64_t bad[3] = {1, 11, 2};
    write_i64_npy(lab_path, bad, 3);
    PmfSampleArgs a = base;
    a.labels_npy = lab_path;
    ck_assert(pmf_sample_resolve(&a, &a) == -1 || pmf_sample_run(&a) == -1);
    printf("  %s\n", core_last_error());
    ck_assert(strstr(core_last_error(), lab_path) && strstr(core_last_error(), "label 11"));
    // labels that disagree with the noise's rows
    int64_t two[2] = {1, 2};
    write_i64_npy(lab_path, two, 2);
    ck_assert(pmf_sample_resolve(&a, &a) == -1 || pmf_sample_run(&a) == -1);
    printf("  %s\n", core_last_error());
    ck_assert(strstr(core_last_error(), lab_path) && strstr(core_last_error(), "rows"));
    // float labels, noise of the wrong image size
    float zf[2 * 3 * 8 * 8] = {0};
    int64_t zs[4] = {2, 3, 8, 8}, ls[1] = {2};
    ck_assert(npy_write_f32(lab_path, 1, ls, zf) == 0);
    ck_assert((pmf_sample_resolve(&a, &a) == -1 || pmf_sample_run(&a) == -1) && strstr(core_last_error(), "integer"));
    ck_assert(npy_write_f32(noise_path, 4, zs, zf) == 0);
    a = base;
    a.noise_npy = noise_path;
    ck_assert(pmf_sample_resolve(&a, &a) == -1 || pmf_sample_run(&a) == -1);
    printf("  %s\n", core_last_error());
    ck_assert(strstr(core_last_error(), noise_path) && strstr(core_last_error(), "(N, 3, 16, 16)"));
    // --n against the noise's rows
    a = base;
    a.n = 5;
    ck_assert((pmf_sample_resolve(&a, &a) == -1 || pmf_sample_run(&a) == -1) && strstr(core_last_error(), "rows"));
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert(system(cmd) == 0);
}
END_TEST

START_TEST(test_npy_files) {
    char path[] = "/tmp/pmf_test_npy_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    float x[24];
    for (int i = 0; i < 24; i++) x[i] = (float)i * 0.5f - 3.0f;
    int64_t shape[3] = {2, 3, 4};
    ck_assert(npy_write_f32(path, 3, shape, x) == 0);
    NpyArray a;
    ck_assert_msg(npy_read(path, 100, &a) == 0, "%s", core_last_error());
    ck_assert(a.kind == 'f' && a.ndim == 3 && a.shape[0] == 2 && a.shape[1] == 3 && a.shape[2] == 4 && a.numel == 24);
    ck_assert(memcmp(a.f32, x, sizeof x) == 0);
    npy_free(&a);
    ck_assert(npy_read(path, 23, &a) == -1 && strstr(core_last_error(), "limit"));   // over the caller's limit
    // the committed labels (numpy's own int64 file)
    ck_assert_msg(npy_read(LABELS, 100, &a) == 0, "%s", core_last_error());
    ck_assert(a.kind == 'i' && a.numel == 3 && a.i64[0] == 1 && a.i64[1] == 5 && a.i64[2] == 7);
    npy_free(&a);
    // a header whose shape claims more than the file holds, and one that overflows 64 bits
    const char *claims[2] = {"{'descr': '<f4', 'fortran_order': False, 'shape': (1000,), }",
                             "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387904, 8), }"};
    for (int k = 0; k < 2; k++) {
        FILE *f = fopen(path, "wb");
        unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)strlen(claims[k]), 0};
        fwrite(pre, 1, 10, f), fwrite(claims[k], 1, strlen(claims[k]), f), fwrite(x, 4, 4, f);
        fclose(f);
        ck_assert(npy_read(path, (int64_t)1 << 40, &a) == -1);
        printf("  %s\n", core_last_error());
        ck_assert(strstr(core_last_error(), k ? "overflows" : "data bytes"));
    }
    unlink(path);
}
END_TEST

START_TEST(test_unexpected_tensor_in_converted_file) {
    // a converted file with one tensor more than the model: another converter or version
    SafeTensors st;
    ck_assert(safetensors_open(&st, TINY) == 0);
    StWriter *w = st_writer_new();
    float **bufs = calloc((size_t)st.n_entries, sizeof(float *));
    for (int i = 0; i < st.n_entries; i++) {
        const StEntry *e = &st.entries[i];
        int shape[8];
        for (int d = 0; d < e->ndim; d++) shape[d] = (int)e->shape[d];
        bufs[i] = malloc((size_t)e->numel * sizeof(float));
        ck_assert(safetensors_read_f32(&st, e->name, e->ndim, shape, bufs[i]) == 0);
        st_writer_add(w, e->name, e->ndim, shape, bufs[i]);
    }
    float extra[2] = {1, 2};
    int es[1] = {2};
    st_writer_add(w, "model/v_final.linear.bias", 1, es, extra);
    st_writer_meta(w, "format", safetensors_meta(&st, "format"));
    st_writer_meta(w, "config", safetensors_meta(&st, "config"));
    char path[] = "/tmp/pmf_test_official_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    ck_assert(st_writer_save(w, path) == 0);
    st_writer_free(w);
    for (int i = 0; i < st.n_entries; i++) free(bufs[i]);
    free(bufs);
    safetensors_close(&st);
    PmfModel m;
    PmfTrainConfig cfg;
    ck_assert(pmf_model_open(path, 0, &m, &cfg) == -1);
    printf("  %s\n", core_last_error());
    ck_assert(strstr(core_last_error(), "model/v_final.linear.bias") != NULL);
    unlink(path);
}
END_TEST

START_TEST(test_official_fid_preprocessing) {
    // The official JAX FID input (utils/fid_util.py: uint8 -> resize_torch_grid_sample to 299 ->
    // (x - 128) / 128) is pmf_eval's --convention pmf-jax, at 256 px (up) and 512 px (down).
    SafeTensors g;
    golden_open(&g, "official_pmf_fid_resize");
    TestWork w;
    test_work_init(&w, 64 << 20);
    Tensor *rows = golden_tensor(&w.tp, &g, "rows");
    int sizes[2] = {256, 512};
    for (int k = 0; k < 2; k++) {
        int S = sizes[k], R = (int)rows->numel;
        uint8_t *px = malloc((size_t)S * S * 3);
        for (int i = 0; i < S; i++)   // the golden script's formula image (fid_test_image)
            for (int j = 0; j < S; j++)
                for (int c = 0; c < 3; c++) px[((size_t)i * S + j) * 3 + c] = (uint8_t)((i * 7 + j * 13 + c * 101 + (i * j) % 17) % 256);
        Tensor *x = inception_preprocess_u8(&w.tp, px, 1, S, S, 3, EVAL_CONV_PMF_JAX);
        char name[32];
        snprintf(name, sizeof name, "pmf_jax_%d", S);
        Tensor *want = golden_tensor(&w.tp, &g, name);
        float *got = malloc((size_t)3 * R * 299 * sizeof(float));
        for (int c = 0; c < 3; c++)
            for (int r = 0; r < R; r++)
                memcpy(got + ((size_t)c * R + r) * 299, x->data + ((size_t)c * 299 + (int)rows->data[r]) * 299, 299 * sizeof(float));
        char label[64];
        snprintf(label, sizeof label, "official FID input, %d px", S);
        double e = compare_rel(label, got, want->data, want->numel);
        ck_assert_msg(e < 1e-6, "%d px: pmf-jax preprocessing differs from the official resize: %.3g", S, e);
        free(px), free(got);
    }
    test_work_free(&w);
    safetensors_close(&g);
}
END_TEST

START_TEST(test_official_reference_statistics) {
    // The official reference statistics' layout (utils/fid_util.py: np.savez(ref_mu=float32 mean,
    // ref_sigma=float64 np.cov)), as the golden script wrote it at 16-d: the values it printed.
    EvalStats s;
    ck_assert_msg(eval_stats_load_npz(PMF_GOLDEN_DIR "/official_pmf_ref_stats.npz", &s) == 0, "%s", core_last_error());
    ck_assert_int_eq(s.dim, 16);
    double sum_mu = 0, sum_sigma = 0;
    for (int i = 0; i < 16; i++) sum_mu += s.mu[i];
    for (int i = 0; i < 256; i++) sum_sigma += s.sigma[i];
    ck_assert(s.mu[3] == 0.310820996761322 && s.sigma[2 * 16 + 5] == -0.0035878535465520183);
    ck_assert(fabs(sum_mu - 0.16481282003223896) < 1e-12 && fabs(sum_sigma - 19.09508064059935) < 1e-10);
    eval_stats_free(&s);
}
END_TEST

START_TEST(test_programs_take_the_converted_file) {
    // pmf_sample's command line against the official generate() (2 steps), and pmf_eval on the
    // converted file.
    char args[1024], out[8192];
    snprintf(args, sizeof args, "%s --noise %s --labels %s --npy /tmp/pmf_test_official_cli.npy --steps 2 --omega 4 "
             "--t-min 0.2 --t-max 0.7 --batch 2", TINY, NOISE, LABELS);
    int rc = test_run_program("pmf_sample", args, out, sizeof out);
    ck_assert_msg(rc == 0, "pmf_sample %s -> %d:\n%s", args, rc, out);
    NpyArray x;
    ck_assert_msg(npy_read("/tmp/pmf_test_official_cli.npy", 1 << 20, &x) == 0, "%s", core_last_error());
    SafeTensors g;
    golden_open(&g, "official_pmf_tiny_golden");
    TestWork w;
    test_work_init(&w, 1 << 20);
    Tensor *want = golden_tensor(&w.tp, &g, "sample2");
    ck_assert(x.numel == want->numel);
    double e = compare_rel("pmf_sample program, 2 steps", x.f32, want->data, want->numel);
    ck_assert_msg(e < 1e-4, "pmf_sample's samples differ from the official generate(): %.3g", e);
    npy_free(&x), test_work_free(&w), safetensors_close(&g);
    unlink("/tmp/pmf_test_official_cli.npy");
    // pmf_eval generates from the converted file with its stored settings (hash Inception weights:
    // the statistics mean nothing, the path is what is tested)
    snprintf(args, sizeof args, "--save-stats %s /tmp/pmf_test_official_stats.npz --n 4 --hash-weights --no-progress --batch 4",
             TINY);
    rc = test_run_program("pmf_eval", args, out, sizeof out);
    ck_assert_msg(rc == 0, "pmf_eval %s -> %d:\n%s", args, rc, out);
    ck_assert_msg(strstr(out, "4 class-balanced samples") && strstr(out, "omega 7.5, interval [0.1, 0.8]"),
                  "pmf_eval did not sample the converted file with its stored settings:\n%s", out);
    EvalStats st;
    ck_assert_msg(eval_stats_load_npz("/tmp/pmf_test_official_stats.npz", &st) == 0, "%s", core_last_error());
    ck_assert_int_eq(st.dim, 2048);
    for (int i = 0; i < st.dim; i++) ck_assert(isfinite(st.mu[i]));
    eval_stats_free(&st);
    unlink("/tmp/pmf_test_official_stats.npz");
}
END_TEST

int main(void) {
    Suite *s = suite_create("official_pmf");
    TCase *tc = tcase_create("official");
    tcase_add_test(tc, test_u_matches_official);
    tcase_add_test(tc, test_samples_match_official_generate);
    tcase_add_test(tc, test_defaults_from_the_file);
    tcase_add_test(tc, test_bad_inputs_are_named);
    tcase_add_test(tc, test_npy_files);
    tcase_add_test(tc, test_unexpected_tensor_in_converted_file);
    tcase_add_test(tc, test_official_fid_preprocessing);
    tcase_add_test(tc, test_official_reference_statistics);
    tcase_add_test(tc, test_programs_take_the_converted_file);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
