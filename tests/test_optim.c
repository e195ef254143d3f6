// tests/test_optim.c: AdamW over ten steps against torch.optim.AdamW (float64 reference, same
// gradients), within 1e-5 relative at every step.
#include <stdio.h>
#include <stdlib.h>

#include "harness.h"

START_TEST(adamw_matches_torch) {
    SafeTensors st;
    golden_open(&st, "optim_adamw");
    ParamStore ps;
    params_init(&ps, 1);
    int shape[2] = {3, 5};
    Tensor *p = params_declare(&ps, "p", 2, shape);
    params_finalize(&ps);
    ck_assert(safetensors_read_f32(&st, "p0", 2, shape, p->data) == 0);
    int gshape[3] = {10, 3, 5};
    float grads[150], after[150];
    ck_assert(safetensors_read_f32(&st, "grads", 3, gshape, grads) == 0);
    ck_assert(safetensors_read_f32(&st, "after", 3, gshape, after) == 0);
    AdamW opt;
    adamw_init(&opt, &ps, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.1f);
    for (int k = 0; k < 10; k++) {
        for (int i = 0; i < 15; i++) p->grad[i] = grads[k * 15 + i];
        adamw_step(&opt, &ps);
        char label[32];
        snprintf(label, sizeof label, "adamw step %d", k + 1);
        double e = compare_rel(label, p->data, after + k * 15, 15);
        ck_assert_msg(e < 1e-5, "step %d: rel err %.3g", k + 1, e);
    }
    adamw_free(&opt);
    params_free(&ps);
    safetensors_close(&st);
}
END_TEST

int main(void) {
    Suite *s = suite_create("optim");
    TCase *tc = tcase_create("adamw");
    tcase_add_test(tc, adamw_matches_torch);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
