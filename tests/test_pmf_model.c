// tests/test_pmf_model.c: the C generator and pMF loss against the independent PyTorch reference
// (tools/reference/pmf_ref.py --goldens tests/goldens, preset "tiny", float64 reference of float32
// inputs). Checked: the parameter set (names and shapes, both ways), a forward with tangent
// (x_u, x_v, u, x_u', du/dt), one loss evaluation with explicit randomness (loss, per-sample
// L_u and L_v, v_g, du/dt, V) and the gradient of the loss for every parameter, for x-prediction
// with CFG (pmf_tiny_step), u-prediction with CFG (pmf_tiny_upred) and x-prediction without CFG
// (pmf_tiny_nocfg); the variant files carry metadata pred = x|u and cfg = 1|0.
// Tolerances: 1e-4 relative (the bar for a full network; float32 against float64).
// Plus the sanity facts of spec 6.2/5.3 on the C side alone: at init X = 0 so u = z / clip(t),
// and on r = t rows V = u, so the u-loss equals the flow-matching loss on those rows.
#include "harness.h"
#include "pmf/pmf.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const double TOL = 1e-4;

static void load_reference_params(PmfModel *m, const SafeTensors *st) {
    // every C parameter must be in the file with the same shape ...
    for (int i = 0; i < m->ps.n; i++) {
        Tensor *p = &m->ps.tensors[i];
        char name[256];
        snprintf(name, sizeof name, "model/%s", p->name);
        ck_assert_msg(safetensors_find(st, name) != NULL, "reference has no parameter '%s'", p->name);
        ck_assert_msg(safetensors_read_f32(st, name, p->ndim, p->shape, p->data) == 0, "%s", core_last_error());
    }
    // ... and every reference parameter must exist in C
    for (int i = 0; i < st->n_entries; i++) {
        const char *n = st->entries[i].name;
        if (strncmp(n, "model/", 6)) continue;
        ck_assert_msg(params_find(&m->ps, n + 6) != NULL, "C model lacks the reference's parameter '%s'", n + 6);
    }
}

static float *read_all(const SafeTensors *st, const char *name, int64_t *numel) {
    const StEntry *e = safetensors_find(st, name);
    ck_assert_msg(e != NULL, "golden lacks '%s'", name);
    int shape[8];
    for (int i = 0; i < e->ndim; i++) shape[i] = (int)e->shape[i];
    float *d = malloc((size_t)(e->numel ? e->numel : 1) * sizeof(float));
    ck_assert(safetensors_read_f32(st, name, e->ndim, shape, d) == 0);
    if (numel) *numel = e->numel;
    return d;
}

static int *read_ints(const SafeTensors *st, const char *name, int64_t *numel) {
    float *f = read_all(st, name, numel);
    int *v = malloc((size_t)(*numel ? *numel : 1) * sizeof(int));
    for (int64_t i = 0; i < *numel; i++) v[i] = (int)lrintf(f[i]);
    free(f);
    return v;
}

static void check(const char *label, const float *got, const SafeTensors *st, const char *name, int64_t n) {
    int64_t nw;
    float *want = read_all(st, name, &nw);
    ck_assert_msg(nw == n, "%s: %lld values, reference %lld", label, (long long)n, (long long)nw);
    double e = compare_rel(label, got, want, n);
    free(want);
    ck_assert_msg(e <= TOL, "%s: rel err %.3g > %.3g", label, e, TOL);
}

static Tensor *vec_from(Tape *tp, const float *v, int B, const char *name) {
    int s[1] = {B};
    return tensor_from(tp, 1, s, v, name);
}

START_TEST(forward_with_tangent_matches_reference) {
    SafeTensors st;
    golden_open(&st, "pmf_tiny_step");
    PmfConfig cfg;
    ck_assert(pmf_preset("tiny", &cfg) == 0);
    PmfModel m;
    pmf_model_init(&m, &cfg, 0);
    load_reference_params(&m, &st);
    Arena arena;
    arena_init(&arena, 16 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    tape_set_recording(&tp, 0);

    int64_t n, B;
    float *z = read_all(&st, "fwd/z", &n), *zd = read_all(&st, "fwd/z_dot", NULL);
    float *t = read_all(&st, "fwd/t", &B), *h = read_all(&st, "fwd/h", NULL);
    float *om = read_all(&st, "fwd/omega", NULL), *t0 = read_all(&st, "fwd/t_min", NULL);
    float *t1 = read_all(&st, "fwd/t_max", NULL);
    int64_t nl;
    int *labels = read_ints(&st, "fwd/labels", &nl);
    int shape[4] = {(int)B, cfg.channels, cfg.img_size, cfg.img_size};
    Tensor *zt = tensor_from(&tp, 4, shape, z, "z");
    memcpy(tensor_attach_tangent(&tp, zt), zd, (size_t)n * sizeof(float));
    Tensor *ht = vec_from(&tp, h, (int)B, "h");
    float *hd = tensor_attach_tangent(&tp, ht);
    for (int i = 0; i < B; i++) hd[i] = 1.0f;
    PmfCond cond = {ht, vec_from(&tp, om, (int)B, "omega"), vec_from(&tp, t0, (int)B, "t_min"),
                    vec_from(&tp, t1, (int)B, "t_max"), labels};
    PmfHeads out = pmf_forward(&tp, &m, zt, &cond, 1, 1);
    check("x_u", out.u_out->data, &st, "fwd/x_u", n);
    check("x_v", out.v_out->data, &st, "fwd/x_v", n);
    ck_assert(out.u_out->tangent != NULL);
    check("x_u tangent", out.u_out->tangent, &st, "fwd/x_u_dot", n);
    Tensor *u = pmf_velocity(&tp, &cfg, out.u_out, zt, t, 1);
    check("u", u->data, &st, "fwd/u", n);
    check("du/dt (incl. clipped row)", u->tangent, &st, "fwd/du_dt", n);
    Tensor *v = pmf_velocity(&tp, &cfg, op_drop_tangent(&tp, out.v_out), zt, t, 0);
    check("v", v->data, &st, "fwd/v", n);

    free(z), free(zd), free(t), free(h), free(om), free(t0), free(t1), free(labels);
    tape_free(&tp);
    arena_free(&arena);
    pmf_model_free(&m);
    safetensors_close(&st);
}
END_TEST

// One loss evaluation and its parameter gradients against the golden `stem`; the prediction space
// and CFG switch come from its metadata (absent: x-prediction, CFG on).
static void check_loss_and_gradients(const char *stem) {
    SafeTensors st;
    golden_open(&st, stem);
    PmfConfig cfg;
    ck_assert(pmf_preset("tiny", &cfg) == 0);
    const char *pred = safetensors_meta(&st, "pred"), *cfg_on = safetensors_meta(&st, "cfg");
    ck_assert_msg(!pred || !strcmp(pred, "x") || !strcmp(pred, "u"), "%s: unknown pred '%s'", stem, pred);
    cfg.pred = pred && !strcmp(pred, "u") ? PMF_PRED_U : PMF_PRED_X;
    PmfModel m;
    pmf_model_init(&m, &cfg, 0);
    load_reference_params(&m, &st);
    const char *eps = safetensors_meta(&st, "norm_eps");
    PmfObjective obj;
    pmf_objective_default(&obj);
    obj.norm_eps = eps ? (float)atof(eps) : 0.01f;
    obj.cfg = cfg_on ? atoi(cfg_on) != 0 : 1;
    printf("  %s: pred %s, cfg %s\n", stem, cfg.pred == PMF_PRED_U ? "u" : "x", obj.cfg ? "on" : "off");
    Arena arena;
    arena_init(&arena, 16 << 20);
    Tape tp;
    tape_init(&tp, &arena);

    int64_t n, B, nl;
    float *x = read_all(&st, "loss/x", &n);
    int *labels = read_ints(&st, "loss/labels", &nl);
    PmfStepNoise noise = {0};
    noise.e = read_all(&st, "noise/e", NULL);
    noise.t = read_all(&st, "noise/t", &B);
    noise.B = (int)B;
    noise.r = read_all(&st, "noise/r", NULL);
    noise.t_min = read_all(&st, "noise/t_min", NULL);
    noise.t_max = read_all(&st, "noise/t_max", NULL);
    noise.omega = read_all(&st, "noise/omega", NULL);
    float *fm = read_all(&st, "noise/fm", NULL), *drop = read_all(&st, "noise/drop", NULL);
    noise.fm = malloc((size_t)B), noise.drop = malloc((size_t)B);
    for (int i = 0; i < B; i++) noise.fm[i] = fm[i] != 0, noise.drop[i] = drop[i] != 0;

    PmfLoss out = pmf_loss(&tp, &m, &obj, x, labels, &noise);
    check("loss", out.loss->data, &st, "loss/loss", 1);
    check("L_u (per sample)", out.L_u, &st, "loss/L_u", B);
    check("L_v (per sample)", out.L_v, &st, "loss/L_v", B);
    check("v_g", out.v_g, &st, "loss/v_g", n);
    check("du/dt", out.du_dt, &st, "loss/du_dt", n);
    check("V", out.V, &st, "loss/V", n);
    check("u", out.u->data, &st, "loss/u", n);

    params_zero_grad(&m.ps);
    tape_backward(&tp, out.loss, NULL);
    int checked = 0;
    for (int i = 0; i < m.ps.n; i++) {
        Tensor *p = &m.ps.tensors[i];
        char name[256];
        snprintf(name, sizeof name, "grad/%s", p->name);
        check(p->name, m.ps.grad + (p->data - m.ps.data), &st, name, p->numel);
        checked++;
    }
    printf("  %s: %d parameter gradients within %.0e\n", stem, checked, TOL);

    free(x), free(labels), free(noise.e), free(noise.t), free(noise.r), free(noise.t_min), free(noise.t_max);
    free(noise.omega), free(fm), free(drop), free(noise.fm), free(noise.drop);
    tape_free(&tp);
    arena_free(&arena);
    pmf_model_free(&m);
    safetensors_close(&st);
}

START_TEST(loss_and_gradients_match_reference) { check_loss_and_gradients("pmf_tiny_step"); }
END_TEST

START_TEST(loss_and_gradients_match_reference_u_prediction) { check_loss_and_gradients("pmf_tiny_upred"); }
END_TEST

START_TEST(loss_and_gradients_match_reference_cfg_off) { check_loss_and_gradients("pmf_tiny_nocfg"); }
END_TEST

// At initialisation the final layers are zero, so X = 0 and u = z / clip(t, 0.05, 1) exactly; on
// rows with r = t the JVP correction (t - r) du/dt vanishes, so V = u there.
START_TEST(init_and_fm_rows_sanity) {
    PmfConfig cfg;
    ck_assert(pmf_preset("tiny", &cfg) == 0);
    PmfModel m;
    pmf_model_init(&m, &cfg, 7);
    Arena arena;
    arena_init(&arena, 16 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    PmfObjective obj;
    pmf_objective_default(&obj);
    int B = 8;
    int64_t N = (int64_t)cfg.channels * cfg.img_size * cfg.img_size;
    Rng rng;
    rng_init(&rng, 5);
    float *x = malloc((size_t)(B * N) * sizeof(float));
    rng_fill_uniform(&rng, x, B * N, -1.0f, 1.0f);
    int labels[8] = {0, 1, 2, 0, 1, 2, 0, 1};
    PmfStepNoise noise;
    pmf_draw_noise(&tp, &rng, &obj, &cfg, B, &noise);
    int fm_rows = 0;
    for (int i = 0; i < B; i++) fm_rows += noise.fm[i];
    ck_assert_msg(fm_rows == B / 2, "data_proportion 0.5 should give %d r = t rows, got %d", B / 2, fm_rows);
    PmfLoss out = pmf_loss(&tp, &m, &obj, x, labels, &noise);
    double worst_u = 0, worst_v = 0;
    for (int i = 0; i < B; i++) {
        float T = noise.t[i] < 0.05f ? 0.05f : (noise.t[i] > 1.0f ? 1.0f : noise.t[i]);
        for (int64_t k = 0; k < N; k++) {
            int64_t j = i * N + k;
            float z = (1 - noise.t[i]) * x[j] + noise.t[i] * noise.e[j];
            worst_u = fmax(worst_u, fabs(out.u->data[j] - z / T) / (fabs(z / T) + 1e-6));
            if (noise.fm[i]) worst_v = fmax(worst_v, fabs(out.V[j] - out.u->data[j]));
        }
    }
    // The loss is mean_b(L_u / sg((L_u + eps)^p) + L_v / sg((L_v + eps)^p)), for p = 1 and any p > 0
    // (the official adp_wt_fn), with the same draws.
    for (int k = 0; k < 2; k++) {
        double want = 0;
        for (int i = 0; i < B; i++)
            want += out.L_u[i] / pow(out.L_u[i] + obj.norm_eps, obj.norm_p) + out.L_v[i] / pow(out.L_v[i] + obj.norm_eps, obj.norm_p);
        want /= B;
        ck_assert_msg(fabs(out.loss->data[0] - want) <= 1e-5 * fabs(want), "p %g: loss %.9g, closed form %.9g", obj.norm_p,
                      out.loss->data[0], want);
        obj.norm_p = 0.5f;
        out = pmf_loss(&tp, &m, &obj, x, labels, &noise);
    }
    printf("  init: max rel |u - z/clip(t)| %.2e; r = t rows: max |V - u| %.2e\n", worst_u, worst_v);
    ck_assert_msg(worst_u < 1e-5, "u != z / clip(t) at init (%.3g)", worst_u);
    ck_assert_msg(worst_v == 0.0, "V != u on r = t rows (%.3g)", worst_v);
    free(x);
    tape_free(&tp);
    arena_free(&arena);
    pmf_model_free(&m);
}
END_TEST


// The preconditioner coefficients against closed forms reached another way (pmf/README.md):
// linear by definition; EDM through its sigma = t / (1 - t) form (Karras et al. 2022, Table 1) on
// z / (1 - t) = x + sigma e; sCM through TrigFlow's angle (Lu & Song 2024): x_trig = z / den,
// X = cos(a) x_trig - sin(a) sigma_d F, tan(a) = t / ((1 - t) sigma_d). sigma_d = 0.5.
START_TEST(preconditioner_coefficients_match_closed_forms) {
    const double sd = 0.5;
    double worst = 0;
    for (int k = 1; k < 20; k++) {
        double t = k / 20.0;
        float cs, co, dcs, dco;
        pmf_precond_coeffs(PMF_PRECOND_LINEAR, (float)t, &cs, &co, &dcs, &dco);
        worst = fmax(worst, fmax(fabs(cs - (1 - t)), fabs(co - t)));
        double sigma = t / (1 - t);
        pmf_precond_coeffs(PMF_PRECOND_EDM, (float)t, &cs, &co, &dcs, &dco);
        double edm_skip = sd * sd / (sigma * sigma + sd * sd) / (1 - t);   // c_skip acts on z / (1 - t)
        double edm_out = sigma * sd / sqrt(sigma * sigma + sd * sd);
        worst = fmax(worst, fmax(fabs(cs - edm_skip) / edm_skip, fabs(co - edm_out) / edm_out));
        pmf_precond_coeffs(PMF_PRECOND_SCM, (float)t, &cs, &co, &dcs, &dco);
        double a = atan2(t, (1 - t) * sd), den = sqrt((1 - t) * (1 - t) + t * t / (sd * sd));
        double trig_skip = cos(a) / den, trig_out = -sin(a) * sd;
        worst = fmax(worst, fmax(fabs(cs - trig_skip) / trig_skip, fabs(co - trig_out) / fabs(trig_out)));
        // TrigFlow's x_trig has unit-variance noise scaled by sigma_d: var(x_trig) = sigma_d^2 for data
        // of std sigma_d, i.e. (cos^2 + sin^2) sigma_d^2.
        double var = ((1 - t) * (1 - t) * sd * sd + t * t) / (den * den);
        worst = fmax(worst, fabs(var - sd * sd) / (sd * sd));
    }
    printf("  preconditioners vs EDM / TrigFlow closed forms: worst relative error %.2e\n", worst);
    ck_assert_msg(worst < 1e-5, "preconditioner coefficients differ from the closed forms by %.3g", worst);
    ck_assert(pmf_adaptive_weight(3.0f, 0.01f, 1.0f) == 1.0f / 3.01f);
    ck_assert(fabs(pmf_adaptive_weight(3.0f, 0.01f, 0.5f) - 1 / sqrt(3.01)) < 1e-7);
}
END_TEST

// Preconditioned x-prediction (spec 5.6): X = c_skip(t) z + c_out(t) net. The hand-written
// derivatives of the coefficients must agree with central differences of u in t (z, net fixed).
START_TEST(preconditioner_t_derivatives_match_differences) {
    PmfConfig cfg;
    ck_assert(pmf_preset("tiny", &cfg) == 0);
    Arena arena;
    arena_init(&arena, 1 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    tape_set_recording(&tp, 0);
    int B = 3, shape[4] = {B, 1, 8, 8};
    int64_t n = (int64_t)B * 64;
    float t0[3] = {0.2f, 0.55f, 0.9f};
    const PmfPrecond kinds[4] = {PMF_PRECOND_NONE, PMF_PRECOND_LINEAR, PMF_PRECOND_EDM, PMF_PRECOND_SCM};
    const char *names[4] = {"none", "linear", "edm", "scm"};
    for (int k = 0; k < 4; k++) {
        cfg.precond = kinds[k];
        tape_reset(&tp);
        Rng r;
        rng_init(&r, 9);
        Tensor *z = tensor_new(&tp, 4, shape, "z"), *net = tensor_new(&tp, 4, shape, "net");
        rng_fill_normal(&r, z->data, n, 0, 1);
        rng_fill_normal(&r, net->data, n, 0, 1);
        Tensor *u = pmf_velocity(&tp, &cfg, net, z, t0, 1);
        ck_assert(u->tangent != NULL);
        double h = 1e-3, num = 0, den = 0, uu = 0;
        float tp_[3], tm_[3];
        for (int i = 0; i < B; i++) tp_[i] = t0[i] + (float)h, tm_[i] = t0[i] - (float)h;
        Tensor *up = pmf_velocity(&tp, &cfg, net, z, tp_, 0), *um = pmf_velocity(&tp, &cfg, net, z, tm_, 0);
        for (int64_t j = 0; j < n; j++) {
            int i = (int)(j / 64);
            double fd = ((double)up->data[j] - um->data[j]) / ((double)tp_[i] - tm_[i]);
            num += (u->tangent[j] - fd) * (u->tangent[j] - fd), den += fd * fd, uu += (double)u->data[j] * u->data[j];
        }
        // linear preconditioning makes u = z - net exactly, so du/dt = 0: measure against |u| then
        double e = sqrt(num / fmax(den, 1e-2 * uu));
        printf("  precond %-6s du/dt vs central difference: rel err %.2e\n", names[k], e);
        ck_assert_msg(e < 2e-3, "precond %s: du/dt rel err %.3g", names[k], e);
    }
    tape_free(&tp);
    arena_free(&arena);
}
END_TEST

// Pixels out (sample grids, pmf_sample's PNGs and HDF5): x in [-1, 1] -> round((x + 1) 127.5),
// clipped, channels interleaved; rows row_bytes apart, nothing written between them.
START_TEST(image_to_u8_rounds_clips_and_interleaves) {
    enum { C = 2, H = 2, W = 3, ROW = W * C + 5 };
    // channel 0: the ends, the midpoint and the clipping; channel 1: both sides of a rounding step
    float img[C * H * W] = {-1.0f, 1.0f, 0.0f, -2.0f, 2.0f, -0.5f,
                            10.4f / 127.5f - 1.0f, 10.6f / 127.5f - 1.0f, 0.999f, -0.999f, 0.25f, -0.25f};
    uint8_t px[H * ROW];
    memset(px, 7, sizeof px);
    pmf_image_to_u8(img, C, H, W, px, ROW);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double v = ((double)img[(c * H + y) * W + x] + 1.0) * 127.5;
                long want = v < 0 ? 0 : v > 255 ? 255 : lround(v);
                ck_assert_int_eq(px[y * ROW + x * C + c], want);
            }
    ck_assert_int_eq(px[0], 0);
    ck_assert_int_eq(px[2], 255);
    ck_assert_int_eq(px[4], 128);
    ck_assert_int_eq(px[1], 10);
    ck_assert_int_eq(px[3], 11);
    for (int y = 0; y < H; y++)
        for (int k = W * C; k < ROW; k++) ck_assert_int_eq(px[y * ROW + k], 7);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pmf_model");
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, forward_with_tangent_matches_reference);
    tcase_add_test(tc, loss_and_gradients_match_reference);
    tcase_add_test(tc, loss_and_gradients_match_reference_u_prediction);
    tcase_add_test(tc, loss_and_gradients_match_reference_cfg_off);
    tcase_add_test(tc, init_and_fm_rows_sanity);
    tcase_add_test(tc, preconditioner_t_derivatives_match_differences);
    tcase_add_test(tc, preconditioner_coefficients_match_closed_forms);
    tcase_add_test(tc, image_to_u8_rounds_clips_and_interleaves);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
