// tests/test_pmf_config.c: the model presets against the paper's table (pmf-spec 6.4 and the
// independent count of 15.1): parameters with and without the v-head, and GMACs per forward;
// and the configuration checks' messages.
#include <math.h>
#include <string.h>

#include "harness.h"
#include "pmf/pmf.h"

typedef struct {
    const char *name;
    double inference_m, training_m, gmacs;   // millions of parameters, GMACs (spec 15.1)
} PaperRow;

static const PaperRow rows[] = {
    {"B/16", 118.234, 175.474, 33.33}, {"L/16", 410.321, 511.790, 116.37}, {"H/16", 955.509, 1113.905, 270.36},
    {"B/32", 120.301, 179.313, 33.86}, {"L/32", 412.977, 516.808, 117.05}, {"H/32", 959.050, 1120.397, 271.26},
};

START_TEST(paper_presets_match_table) {
    const PaperRow *r = &rows[_i];
    PmfConfig c;
    ck_assert_msg(pmf_preset(r->name, &c) == 0, "%s", core_last_error());
    ck_assert(pmf_config_check(&c) == 0);
    double inf = pmf_param_count(&c, 0) / 1e6, tr = pmf_param_count(&c, 1) / 1e6, g = pmf_forward_macs(&c) / 1e9;
    printf("%s: %.3fM inference, %.3fM training, %.2f GMACs\n", r->name, inf, tr, g);
    ck_assert_msg(fabs(inf - r->inference_m) < 0.0005, "%s inference params %.4fM, table %.3fM", r->name, inf, r->inference_m);
    ck_assert_msg(fabs(tr - r->training_m) < 0.0005, "%s training params %.4fM, table %.3fM", r->name, tr, r->training_m);
    ck_assert_msg(fabs(g - r->gmacs) < 0.005, "%s GMACs %.3f, table %.2f", r->name, g, r->gmacs);
    ck_assert_int_eq(c.img_size, r->name[2] == '1' ? 256 : 512);
}
END_TEST

START_TEST(b16_exact_counts) {
    // Exact integers from the released code (porting-notes A4): one B block is 7,081,088.
    PmfConfig c;
    pmf_preset("B/16", &c);
    ck_assert_int_eq(pmf_param_count(&c, 0), 118234240);
    ck_assert_int_eq(pmf_param_count(&c, 1), 175474304);
}
END_TEST

START_TEST(bad_configs_are_named) {
    PmfConfig c;
    ck_assert_int_eq(pmf_preset("X/7", &c), -1);
    ck_assert(strstr(core_last_error(), "X/7") != NULL);
    pmf_preset("B/32", &c);
    c.img_size = 500;
    ck_assert_int_eq(pmf_config_check(&c), -1);
    ck_assert_msg(strstr(core_last_error(), "not divisible by the patch size 32"), "%s", core_last_error());
    pmf_preset("S/4", &c);
    c.channels = 2;
    ck_assert_int_eq(pmf_config_check(&c), -1);
    ck_assert(strstr(core_last_error(), "channels") != NULL);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pmf_config");
    TCase *tc = tcase_create("presets");
    tcase_add_loop_test(tc, paper_presets_match_table, 0, 6);
    tcase_add_test(tc, b16_exact_counts);
    tcase_add_test(tc, bad_configs_are_named);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
