// tests/test_pmf_noise_stats.c: pmf_draw_noise's distributions against their closed forms, with
// fixed seeds and stated thresholds (issue 19, point 6). The closed forms are written here from
// the spec, not from objective.c:
// - t, r: two independent logit-normals LN(P_mean, P_std), ordered so that t = max, r = min, on
//   the rows that are not r = t rows: CDF(t) = F^2, CDF(r) = 1 - (1 - F)^2 with
//   F(x) = Phi((logit x - P_mean) / P_std); on the r = t rows t is one logit-normal, CDF F.
//   With tr_uniform, 10% of the (t, r) pairs are two U(0, 1): CDF(t) = 0.9 F^2 + 0.1 x^2.
//   The r0 sampler: r = 0 and t ~ F.
// - the share of r = t rows is exactly floor(B * data_proportion) per batch; r <= t always.
// - omega: density ~ omega^-beta on [1, 1 + cfg_max]: CDF (w^(1-b) - 1) / ((1+m)^(1-b) - 1),
//   log w / log(1 + m) for beta = 1.
// - guidance interval: t_min ~ U(0, 1/2), t_max ~ U(1/2, 1) on the other rows; 0 and 1 on r = t
//   rows.
// - class dropout: k ~ Binomial(B, p) per batch (chi-square over the per-batch counts), the
//   dropped rows being the first k.
// Kolmogorov-Smirnov: D * sqrt(n) must stay below 1.95 (p = 0.001); each test also shows that
// the same statistic rejects a nearby wrong distribution, so it can fail.
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pmf/pmf.h"

#define KS_CRIT 1.95   // sqrt(n) D at p = 0.001
#define BATCH 64
#define N_BATCH 250    // 16000 rows

typedef double (*Cdf)(double x, const double *p);

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// sqrt(n) * sup |F_n - F|
static double ks(double *x, int n, Cdf F, const double *p) {
    qsort(x, (size_t)n, sizeof *x, cmp_d);
    double d = 0;
    for (int i = 0; i < n; i++) {
        double f = F(x[i], p);
        d = fmax(d, fmax(fabs((i + 1.0) / n - f), fabs(f - (double)i / n)));
    }
    return d * sqrt((double)n);
}

static double phi(double z) { return 0.5 * erfc(-z / sqrt(2.0)); }
// p = {P_mean, P_std}
static double ln_cdf(double x, const double *p) {
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    return phi((log(x / (1 - x)) - p[0]) / p[1]);
}
static double max2_cdf(double x, const double *p) { return pow(ln_cdf(x, p), 2); }
static double min2_cdf(double x, const double *p) { return 1 - pow(1 - ln_cdf(x, p), 2); }
static double max2_mix_cdf(double x, const double *p) {
    double u = x <= 0 ? 0 : x >= 1 ? 1 : x;
    return 0.9 * max2_cdf(x, p) + 0.1 * u * u;
}
// p = {lo, hi}
static double unif_cdf(double x, const double *p) { return x <= p[0] ? 0 : x >= p[1] ? 1 : (x - p[0]) / (p[1] - p[0]); }
// p = {cfg_max, beta}
static double omega_cdf(double w, const double *p) {
    double m = p[0], b = p[1];
    if (w <= 1) return 0;
    if (w >= 1 + m) return 1;
    if (fabs(b - 1) < 1e-9) return log(w) / log1p(m);
    return (pow(w, 1 - b) - 1) / (pow(1 + m, 1 - b) - 1);
}

typedef struct Draws {
    int n;
    double *t_fm, *t_other, *r_other, *tmin, *tmax, *omega;
    int n_fm, n_other;
    int *k_drop;   // per batch
} Draws;

// N_BATCH batches of BATCH rows; checks the per-batch invariants on the way.
static Draws draw(const PmfObjective *o, uint64_t seed) {
    Arena a;
    arena_init(&a, 1 << 20);
    Tape tp;
    tape_init(&tp, &a);
    Rng rng;
    rng_init(&rng, seed);
    PmfConfig mc;   // only its geometry and noise scale matter here
    ck_assert(pmf_preset("tiny", &mc) == 0);
    Draws d = {0};
    int total = BATCH * N_BATCH;
    d.t_fm = calloc(total, sizeof(double)), d.t_other = calloc(total, sizeof(double));
    d.r_other = calloc(total, sizeof(double)), d.tmin = calloc(total, sizeof(double));
    d.tmax = calloc(total, sizeof(double)), d.omega = calloc(total, sizeof(double));
    d.k_drop = calloc(N_BATCH, sizeof(int));
    int want_fm = o->sampler == PMF_TR_TRIANGLE ? (int)(BATCH * o->data_proportion)
                : o->sampler == PMF_TR_FM_ONLY  ? BATCH
                : o->sampler == PMF_TR_R0_ONLY  ? 0
                                                : BATCH / 2;
    // Violations are counted and asserted once at the end (a Check assertion per row is slow).
    int bad_order = 0, bad_fm_row = 0, bad_fm_count = 0, bad_drop = 0;
    for (int b = 0; b < N_BATCH; b++) {
        tape_reset(&tp);
        PmfStepNoise n;
        pmf_draw_noise(&tp, &rng, o, &mc, BATCH, &n);
        int fm = 0, k = 0;
        for (int i = 0; i < BATCH; i++) {
            bad_order += !(n.r[i] <= n.t[i] && n.t[i] >= 0 && n.t[i] <= 1 && n.r[i] >= 0);
            if (n.fm[i]) {
                fm++;
                bad_fm_row += !(n.r[i] == n.t[i] && n.t_min[i] == 0.0f && n.t_max[i] == 1.0f);
                d.t_fm[d.n_fm++] = n.t[i];
            } else {
                d.t_other[d.n_other] = n.t[i], d.r_other[d.n_other] = n.r[i];
                d.tmin[d.n_other] = n.t_min[i], d.tmax[d.n_other] = n.t_max[i];
                d.n_other++;
            }
            d.omega[d.n++] = n.omega[i];
            if (i > 0) bad_drop += n.drop[i] > n.drop[i - 1];   // dropped rows are the first k
            k += n.drop[i];
        }
        bad_fm_count += fm != want_fm;
        d.k_drop[b] = k;
    }
    ck_assert_msg(bad_order == 0, "%d rows with r > t or t outside [0, 1]", bad_order);
    ck_assert_msg(bad_fm_row == 0, "%d r = t rows with r != t or a guidance interval other than [0, 1]", bad_fm_row);
    ck_assert_msg(bad_fm_count == 0, "%d batches without exactly %d r = t rows", bad_fm_count, want_fm);
    ck_assert_msg(bad_drop == 0, "%d batches whose dropped rows are not the first k", bad_drop);
    tape_free(&tp);
    arena_free(&a);
    return d;
}

static void draws_free(Draws *d) {
    free(d->t_fm), free(d->t_other), free(d->r_other), free(d->tmin), free(d->tmax), free(d->omega), free(d->k_drop);
}

// KS of x against F(p) passes; against F(wrong) it fails (the test has power at this n).
static void ks_pass_and_power(const char *what, double *x, int n, Cdf F, const double *p, const double *wrong) {
    double s = ks(x, n, F, p), w = ks(x, n, F, wrong);
    printf("  %-28s n = %5d  sqrt(n) D = %.3f (limit %.2f); against a wrong law %.3f\n", what, n, s, KS_CRIT, w);
    ck_assert_msg(s < KS_CRIT, "%s: sqrt(n) D = %.3f >= %.2f", what, s, KS_CRIT);
    ck_assert_msg(w > KS_CRIT, "%s: the KS test does not tell a wrong law apart (%.3f)", what, w);
}

START_TEST(t_and_r_logit_normal) {
    PmfObjective o;
    pmf_objective_default(&o);
    o.p_mean = -0.4f, o.p_std = 1.0f, o.data_proportion = 0.25f;
    Draws d = draw(&o, 1234);
    double p[2] = {-0.4, 1.0}, wrong[2] = {-0.3, 1.0};
    ck_assert_int_eq(d.n_fm, N_BATCH * 16);
    ks_pass_and_power("t on r = t rows", d.t_fm, d.n_fm, ln_cdf, p, wrong);
    ks_pass_and_power("t = max on other rows", d.t_other, d.n_other, max2_cdf, p, wrong);
    ks_pass_and_power("r = min on other rows", d.r_other, d.n_other, min2_cdf, p, wrong);
    draws_free(&d);
}
END_TEST

START_TEST(t_and_r_with_uniform_pairs) {
    PmfObjective o;
    pmf_objective_default(&o);
    o.tr_uniform = 1, o.data_proportion = 0.0f;
    Draws d = draw(&o, 99);
    double p[2] = {0.8, 0.8};
    ks_pass_and_power("t with 10% uniform pairs", d.t_other, d.n_other, max2_mix_cdf, p, (double[]){0.8, 0.8 * 1.1});
    double bad = ks(d.t_other, d.n_other, max2_cdf, p);   // without the uniform share: rejected
    printf("  without the uniform share: %.3f\n", bad);
    ck_assert(bad > KS_CRIT);
    draws_free(&d);
}
END_TEST

START_TEST(r0_and_lines_samplers) {
    PmfObjective o;
    pmf_objective_default(&o);
    o.sampler = PMF_TR_R0_ONLY;
    Draws d = draw(&o, 7);
    int nonzero = 0;
    for (int i = 0; i < d.n_other; i++) nonzero += d.r_other[i] != 0.0;
    ck_assert_int_eq(nonzero, 0);
    double p[2] = {0.8, 0.8}, wrong[2] = {0.9, 0.8};
    ks_pass_and_power("r0 sampler: t", d.t_other, d.n_other, ln_cdf, p, wrong);
    draws_free(&d);
    o.sampler = PMF_TR_BOTH_LINES;   // the fm count is checked in draw(); r = 0 on the rest
    d = draw(&o, 8);
    for (int i = 0; i < d.n_other; i++) nonzero += d.r_other[i] != 0.0;
    ck_assert_int_eq(nonzero, 0);
    ks_pass_and_power("lines sampler: t, r = 0 rows", d.t_other, d.n_other, ln_cdf, p, wrong);
    draws_free(&d);
}
END_TEST

START_TEST(omega_power_law) {
    const float betas[2] = {1.0f, 2.0f};
    for (int k = 0; k < 2; k++) {
        PmfObjective o;
        pmf_objective_default(&o);
        o.cfg_max = 7.0f, o.cfg_beta = betas[k];
        Draws d = draw(&o, 31 + k);
        double p[2] = {7.0, betas[k]}, wrong[2] = {7.0, betas[k] + 0.1};
        ks_pass_and_power(k ? "omega, beta 2" : "omega, beta 1", d.omega, d.n, omega_cdf, p, wrong);
        draws_free(&d);
    }
    PmfObjective o;   // cfg off: omega is 1
    pmf_objective_default(&o);
    o.cfg = 0;
    Draws d = draw(&o, 5);
    int not_one = 0;
    for (int i = 0; i < d.n; i++) not_one += d.omega[i] != 1.0;
    ck_assert_int_eq(not_one, 0);
    draws_free(&d);
}
END_TEST

START_TEST(guidance_interval) {
    PmfObjective o;
    pmf_objective_default(&o);
    Draws d = draw(&o, 77);
    double lo[2] = {0, 0.5}, hi[2] = {0.5, 1};
    ks_pass_and_power("t_min ~ U(0, 1/2)", d.tmin, d.n_other, unif_cdf, lo, (double[]){0, 0.55});
    ks_pass_and_power("t_max ~ U(1/2, 1)", d.tmax, d.n_other, unif_cdf, hi, (double[]){0.45, 1});
    draws_free(&d);
}
END_TEST

// Chi-square of the per-batch dropped counts against Binomial(BATCH, p), tail bins merged so each
// expects at least 5; returns the statistic and its degrees of freedom.
static double chi2_binomial(const int *k, int n, double p, int *df) {
    double pmf[BATCH + 1];
    for (int j = 0; j <= BATCH; j++)
        pmf[j] = exp(lgamma(BATCH + 1.0) - lgamma(j + 1.0) - lgamma(BATCH - j + 1.0) + j * log(p) + (BATCH - j) * log1p(-p));
    int count[BATCH + 1] = {0};
    for (int i = 0; i < n; i++) count[k[i]]++;
    double E[BATCH + 1], O[BATCH + 1], e = 0, o = 0;
    int bins = 0;
    for (int j = 0; j <= BATCH; j++) {
        e += n * pmf[j], o += count[j];
        if (e >= 5) E[bins] = e, O[bins] = o, bins++, e = o = 0;
    }
    if (bins == 0) E[0] = O[0] = 0, bins = 1;
    E[bins - 1] += e, O[bins - 1] += o;   // the upper tail joins the last bin
    double chi2 = 0;
    for (int b = 0; b < bins; b++) chi2 += (O[b] - E[b]) * (O[b] - E[b]) / E[b];
    *df = bins - 1;
    return chi2;
}

// Chi-square critical value at p = 0.001 (Wilson-Hilferty; z = 3.09).
static double chi2_crit(int df) {
    double a = 2.0 / (9.0 * df);
    return df * pow(1 - a + 3.09 * sqrt(a), 3);
}

START_TEST(class_dropout_binomial) {
    PmfObjective o;
    pmf_objective_default(&o);
    o.class_dropout = 0.1f;
    Draws d = draw(&o, 2024);
    int df;
    double c = chi2_binomial(d.k_drop, N_BATCH, 0.1, &df), crit = chi2_crit(df);
    double w = chi2_binomial(d.k_drop, N_BATCH, 0.13, &df);
    printf("  class dropout: chi2 = %.2f on %d df (limit %.2f); against p = 0.13: %.2f\n", c, df, crit, w);
    ck_assert_msg(c < crit, "chi2 %.2f >= %.2f", c, crit);
    ck_assert_msg(w > chi2_crit(df), "the chi-square test does not tell p = 0.13 apart");
    draws_free(&d);
    o.class_dropout = 0.0f;
    d = draw(&o, 3);
    int dropped = 0;
    for (int b = 0; b < N_BATCH; b++) dropped += d.k_drop[b];
    ck_assert_int_eq(dropped, 0);
    draws_free(&d);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pmf_noise_stats");
    TCase *tc = tcase_create("noise");
    tcase_add_test(tc, t_and_r_logit_normal);
    tcase_add_test(tc, t_and_r_with_uniform_pairs);
    tcase_add_test(tc, r0_and_lines_samplers);
    tcase_add_test(tc, omega_power_law);
    tcase_add_test(tc, guidance_interval);
    tcase_add_test(tc, class_dropout_binomial);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
