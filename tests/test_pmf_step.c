// tests/test_pmf_step.c: the step's lanes (pmf/step.c).
//  - tape_redirect_grads: a parameter's gradient (directly and through a view) lands in the
//    tape's own buffer and the store's gradient stays untouched;
//  - a step split over 2 lanes gives the same gradient as the plain step and as the micro-batched
//    step (summation order only: normalized difference below 1e-5), the same bits every time,
//    with micro-batches inside the lanes too.
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pmf/pmf.h"

START_TEST(redirected_grads_land_in_the_tapes_buffer) {
    TestWork c;
    test_work_init(&c, 1 << 16);
    ParamStore ps;
    params_init(&ps, 2);
    const int ws[2] = {2, 3}, xs[2] = {4, 3};
    Tensor *w = params_declare(&ps, "w", 2, ws);
    params_finalize(&ps);
    for (int i = 0; i < 6; i++) w->data[i] = 0.5f * (float)i - 1.0f;
    float x[12], own[6], want[6] = {0};
    for (int i = 0; i < 12; i++) x[i] = (float)(i % 5) - 2.0f;
    for (int n = 0; n < 2; n++)   // d sum(x w^T) / dw[n][k] = sum_i x[i][k]
        for (int k = 0; k < 3; k++)
            for (int i = 0; i < 4; i++) want[n * 3 + k] += x[i * 3 + k];
    memset(own, 0, sizeof own);
    tape_redirect_grads(&c.tp, ps.grad, own, ps.total);
    Tensor *y = op_linear(&c.tp, tensor_from(&c.tp, 2, xs, x, "x"), w, NULL);
    tape_backward(&c.tp, y, NULL);
    for (int i = 0; i < 6; i++) {
        ck_assert_msg(ps.grad[i] == 0.0f, "the store's gradient was written (%g at %d)", ps.grad[i], i);
        ck_assert_msg(fabsf(own[i] - want[i]) < 1e-6f, "redirected grad %d = %g, want %g", i, own[i], want[i]);
    }
    // Through a view of the parameter (reshape), the same.
    tape_reset(&c.tp);
    memset(own, 0, sizeof own);
    const int flat[1] = {6};
    Tensor *wv = op_reshape(&c.tp, w, 1, flat);
    Tensor *s = op_sum(&c.tp, op_mul(&c.tp, wv, wv), AXES_ALL, 0);
    tape_backward(&c.tp, s, NULL);
    for (int i = 0; i < 6; i++) {
        ck_assert(ps.grad[i] == 0.0f);
        ck_assert_msg(fabsf(own[i] - 2.0f * w->data[i]) < 1e-6f, "view: grad %d = %g", i, own[i]);
    }
    // Without the redirection the store's gradient is written again.
    tape_reset(&c.tp);
    tape_redirect_grads(&c.tp, NULL, NULL, 0);
    s = op_sum(&c.tp, op_mul(&c.tp, w, w), AXES_ALL, 0);
    tape_backward(&c.tp, s, NULL);
    for (int i = 0; i < 6; i++) ck_assert(fabsf(ps.grad[i] - 2.0f * w->data[i]) < 1e-6f);
    params_free(&ps);
    test_work_free(&c);
}
END_TEST

typedef struct {
    PmfModel m;
    PmfObjective o;
    float *x;
    int y[8];
    PmfStepNoise n;
    TestWork noise;
} StepCase;

static void step_case_init(StepCase *c) {
    PmfConfig cfg;
    ck_assert(pmf_preset("tiny", &cfg) == 0);
    cfg.with_v_head = 1;
    pmf_model_init(&c->m, &cfg, 3);
    Rng r;
    rng_init(&r, 4);
    for (int i = 0; i < c->m.ps.n; i++) {   // non-zero gates and final layers: every parameter gets a gradient
        Tensor *t = &c->m.ps.tensors[i];
        if (strstr(t->name, "_scale") || strstr(t->name, "_final.linear")) rng_fill_normal(&r, t->data, t->numel, 0.0f, 0.3f);
    }
    pmf_objective_default(&c->o);
    int64_t numel = 64;
    c->x = malloc(8 * numel * sizeof(float));
    rng_fill_uniform(&r, c->x, 8 * numel, -1.0f, 1.0f);
    for (int i = 0; i < 8; i++) c->y[i] = i % 3;
    test_work_init(&c->noise, 1 << 20);
    pmf_draw_noise(&c->noise.tp, &r, &c->o, &c->m.cfg, 8, &c->n);
}

static void step_case_free(StepCase *c) {
    pmf_model_free(&c->m);
    free(c->x);
    test_work_free(&c->noise);
}

// The step's gradient (a copy) and loss with the given micro-batch, lanes and chunk rows.
static float *step_grad_chunked(StepCase *c, int micro, int lanes, int chunk, double *loss) {
    PmfStepper *s = pmf_stepper_new(micro, lanes);
    pmf_stepper_set_chunk_rows(s, chunk);
    ck_assert_int_eq(pmf_stepper_lanes(s, 8), lanes);
    PmfStepStats st = pmf_step_gradient(s, &c->m, &c->o, c->x, c->y, &c->n, 8);
    float *g = malloc((size_t)c->m.ps.total * sizeof(float));
    memcpy(g, c->m.ps.grad, (size_t)c->m.ps.total * sizeof(float));
    *loss = st.loss;
    pmf_stepper_free(s);
    return g;
}

static float *step_grad(StepCase *c, int micro, int lanes, double *loss) {
    return step_grad_chunked(c, micro, lanes, 0, loss);
}

START_TEST(lanes_give_the_batch_gradient) {
    StepCase c;
    step_case_init(&c);
    int64_t n = c.m.ps.total;
    double l_plain, l_micro, l_lanes, l_again, l_lanes_micro;
    float *plain = step_grad(&c, 0, 1, &l_plain);
    float *micro = step_grad(&c, 4, 1, &l_micro);
    float *lanes = step_grad(&c, 0, 2, &l_lanes);
    float *again = step_grad(&c, 0, 2, &l_again);
    float *lanes_micro = step_grad(&c, 2, 2, &l_lanes_micro);
    // Lanes of 4 rows in chunks of 3 (3 + 1), and one lane in chunks of 3 (3 + 3 + 2); the tiny
    // model's automatic chunk covers the whole batch, so the plain step above is unchunked.
    double l_chunk2, l_chunk1;
    float *chunk2 = step_grad_chunked(&c, 0, 2, 3, &l_chunk2), *chunk1 = step_grad_chunked(&c, 0, 1, 3, &l_chunk1);
    ck_assert(compare_rel("2 lanes in chunks of 3 vs whole batch", chunk2, plain, n) < 1e-5);
    ck_assert(compare_rel("1 lane in chunks of 3 vs whole batch", chunk1, plain, n) < 1e-5);
    ck_assert_msg(memcmp(chunk1, plain, (size_t)n * sizeof(float)) != 0, "chunks of 3 gave the whole batch's bits: not chunked?");
    ck_assert_msg(fabs(l_chunk2 - l_plain) < 1e-5 * fabs(l_plain) && fabs(l_chunk1 - l_plain) < 1e-5 * fabs(l_plain),
                  "losses %.9g, %.9g (chunks of 3) vs %.9g", l_chunk2, l_chunk1, l_plain);
    free(chunk2), free(chunk1);
    int nonzero = 0;
    for (int64_t i = 0; i < n; i++) nonzero += plain[i] != 0.0f;
    ck_assert_msg(nonzero > n / 2, "only %d of %lld gradient entries are non-zero", nonzero, (long long)n);
    ck_assert_msg(memcmp(lanes, again, (size_t)n * sizeof(float)) == 0 && l_lanes == l_again,
                  "two runs on 2 lanes differ");
    ck_assert(compare_rel("2 lanes vs whole batch", lanes, plain, n) < 1e-5);
    ck_assert(compare_rel("2 lanes vs micro-batches of 4", lanes, micro, n) < 1e-5);
    ck_assert(compare_rel("2 lanes x micro-batches of 2 vs whole batch", lanes_micro, plain, n) < 1e-5);
    ck_assert_msg(fabs(l_lanes - l_plain) < 1e-5 * fabs(l_plain) && fabs(l_lanes_micro - l_plain) < 1e-5 * fabs(l_plain),
                  "losses %.9g (2 lanes), %.9g (2 lanes x micro 2) vs %.9g", l_lanes, l_lanes_micro, l_plain);
    free(plain), free(micro), free(lanes), free(again), free(lanes_micro);
    step_case_free(&c);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pmf_step");
    TCase *tc = tcase_create("step");
    tcase_add_test(tc, redirected_grads_land_in_the_tapes_buffer);
    tcase_add_test(tc, lanes_give_the_batch_gradient);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
