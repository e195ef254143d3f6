// tests/test_optim_ref.c: muon_step and adamw_step over ten steps against independent references
// (tools/reference/optim_ref.py: a float64 NumPy transcription of optax.contrib.muon as pMF calls
// it, and torch.optim.AdamW in float64). Four tensors share one store: w1 (6,4) and w2 (3,5) go to
// Muon, b (5) and the 2-D emb (2,3) to the Adam branch (the C port partitions by name, spec 15.3).
// After every step each tensor's parameters and its step (p_k - p_{k-1}) must be within 1e-5
// relative of the reference. Hyperparameters are read from the golden file's metadata.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#define STEPS 10
#define NT 4
#define TOL 1e-5

static const char *const names[NT] = {"w1", "w2", "b", "emb"};
static const int ndims[NT] = {2, 2, 1, 2};
static const int shapes[NT][2] = {{6, 4}, {3, 5}, {5, 1}, {2, 3}};

typedef struct {
    SafeTensors st;
    ParamStore ps;
    Tensor *t[NT];
    float *grads[NT], *after[NT];   // (STEPS, numel) each
    float *prev[NT];                // C parameters before the current step
} Case;

static double meta(const SafeTensors *st, const char *key) {
    const char *v = safetensors_meta(st, key);
    ck_assert_msg(v != NULL, "%s: no metadata '%s'", st->path, key);
    return strtod(v, NULL);
}

static void case_open(Case *c, const char *stem) {
    golden_open(&c->st, stem);
    params_init(&c->ps, NT);
    for (int i = 0; i < NT; i++) c->t[i] = params_declare(&c->ps, names[i], ndims[i], shapes[i]);
    params_finalize(&c->ps);
    for (int i = 0; i < NT; i++) {
        Tensor *t = c->t[i];
        int n = (int)t->numel, seq[3] = {STEPS, shapes[i][0], shapes[i][1]};
        char key[64];
        snprintf(key, sizeof key, "%s/p0", names[i]);
        ck_assert_msg(safetensors_read_f32(&c->st, key, ndims[i], shapes[i], t->data) == 0, "%s", core_last_error());
        c->grads[i] = malloc((size_t)STEPS * n * sizeof(float));
        c->after[i] = malloc((size_t)STEPS * n * sizeof(float));
        c->prev[i] = malloc((size_t)n * sizeof(float));
        snprintf(key, sizeof key, "%s/grads", names[i]);
        ck_assert_msg(safetensors_read_f32(&c->st, key, ndims[i] + 1, seq, c->grads[i]) == 0, "%s", core_last_error());
        snprintf(key, sizeof key, "%s/after", names[i]);
        ck_assert_msg(safetensors_read_f32(&c->st, key, ndims[i] + 1, seq, c->after[i]) == 0, "%s", core_last_error());
        // The parameters must move by a good fraction of their size, or comparing them would
        // say little about the steps.
        double moved = 0, size = 0;
        for (int j = 0; j < n; j++) {
            double a = c->after[i][(STEPS - 1) * n + j], d = a - t->data[j];
            moved += d * d, size += a * a;
        }
        ck_assert_msg(moved > 0.25 * size, "%s/%s: reference moves too little to test", stem, names[i]);
    }
}

static void case_close(Case *c) {
    for (int i = 0; i < NT; i++) free(c->grads[i]), free(c->after[i]), free(c->prev[i]);
    params_free(&c->ps);
    safetensors_close(&c->st);
}

// Load step k's gradients, run `step`, compare every tensor's parameters and step with the golden.
static void check_steps(Case *c, const char *label, void (*step)(void *, ParamStore *), void *opt) {
    double worst = 0;
    for (int k = 0; k < STEPS; k++) {
        for (int i = 0; i < NT; i++) {
            int64_t n = c->t[i]->numel;
            memcpy(c->t[i]->grad, c->grads[i] + k * n, (size_t)n * sizeof(float));
            memcpy(c->prev[i], c->t[i]->data, (size_t)n * sizeof(float));
        }
        step(opt, &c->ps);
        for (int i = 0; i < NT; i++) {
            int64_t n = c->t[i]->numel;
            const float *want = c->after[i] + k * n;
            const float *want_prev = k ? want - n : NULL;
            double got_d[32], want_d[32];
            ck_assert(n <= 32);
            for (int64_t j = 0; j < n; j++) {
                got_d[j] = (double)c->t[i]->data[j] - c->prev[i][j];
                // Step 1 starts from p0, which the C store holds exactly.
                want_d[j] = (double)want[j] - (want_prev ? want_prev[j] : c->prev[i][j]);
            }
            char lp[64], ls[64];
            snprintf(lp, sizeof lp, "%s %d %s params", label, k + 1, names[i]);
            snprintf(ls, sizeof ls, "%s %d %s step", label, k + 1, names[i]);
            double ep = compare_rel(lp, c->t[i]->data, want, n);
            double es = compare_rel_d(ls, got_d, want_d, n);
            ck_assert_msg(ep <= TOL, "%s step %d, %s: params rel err %.3g > %g", label, k + 1, names[i], ep, TOL);
            ck_assert_msg(es <= TOL, "%s step %d, %s: update rel err %.3g > %g", label, k + 1, names[i], es, TOL);
            if (ep > worst) worst = ep;
            if (es > worst) worst = es;
        }
    }
    printf("%s: worst rel err over %d steps %.2e (tolerance %g)\n", label, STEPS, worst, TOL);
}

static void muon_step_fn(void *opt, ParamStore *ps) { muon_step(opt, ps); }
static void adamw_step_fn(void *opt, ParamStore *ps) { adamw_step(opt, ps); }

START_TEST(muon_matches_optax_reference) {
    Case c;
    case_open(&c, "optim_muon10");
    float flags[NT];
    int fshape[1] = {NT};
    ck_assert_msg(safetensors_read_f32(&c.st, "use_muon", 1, fshape, flags) == 0, "%s", core_last_error());
    uint8_t use_muon[NT];
    for (int i = 0; i < NT; i++) use_muon[i] = flags[i] != 0;
    ck_assert(use_muon[0] && use_muon[1] && !use_muon[2] && !use_muon[3]);
    Muon opt;
    muon_init(&opt, &c.ps, use_muon, (float)meta(&c.st, "lr"), (float)meta(&c.st, "beta"),
              (float)meta(&c.st, "adam_b1"), (float)meta(&c.st, "adam_b2"), (float)meta(&c.st, "eps"));
    check_steps(&c, "muon", muon_step_fn, &opt);
    muon_free(&opt);
    case_close(&c);
}
END_TEST

START_TEST(adamw_matches_torch_multi_tensor) {
    Case c;
    case_open(&c, "optim_adamw10");
    AdamW opt;
    adamw_init(&opt, &c.ps, (float)meta(&c.st, "lr"), (float)meta(&c.st, "beta1"), (float)meta(&c.st, "beta2"),
               (float)meta(&c.st, "eps"), (float)meta(&c.st, "weight_decay"));
    check_steps(&c, "adamw", adamw_step_fn, &opt);
    adamw_free(&opt);
    case_close(&c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("optim_ref");
    TCase *tc = tcase_create("optim_ref");
    tcase_add_test(tc, muon_matches_optax_reference);
    tcase_add_test(tc, adamw_matches_torch_multi_tensor);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
