// tests/test_pmf_train_config.c: training configuration files and overrides: the shipped configs
// carry spec section 8's values, bad keys and values are rejected with the key's name, and the
// YAML written into checkpoints reads back to the same configuration.
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "pmf/pmf.h"

static void load_ok(PmfTrainConfig *c, const char *file) {
    char path[1024];
    snprintf(path, sizeof path, "%s/configs/%s", PMF_SOURCE_DIR, file);
    pmf_train_config_default(c);
    ck_assert_msg(pmf_train_config_load(c, path) == 0, "%s", core_last_error());
    ck_assert_msg(pmf_train_config_finish(c) == 0, "%s: %s", file, core_last_error());
}

START_TEST(shipped_configs_match_spec_section_8) {
    PmfTrainConfig c;
    load_ok(&c, "pMF_B_16.yml");
    ck_assert_int_eq(c.model.img_size, 256);
    ck_assert_int_eq(c.model.patch, 16);
    ck_assert_int_eq(c.model.dim, 768);
    ck_assert(c.objective.p_mean == 0.8f && c.model.noise_scale == 1.0f && !c.objective.tr_uniform);
    ck_assert_str_eq(c.perceptual, "lpips+convnext");
    ck_assert_int_eq(c.n_ema, 3);
    ck_assert(c.ema_val[2] == 2000.0f);
    load_ok(&c, "pMF_H_16.yml");
    ck_assert_int_eq(c.model.dim, 1280);
    ck_assert(c.objective.p_mean == 0.0f && c.model.noise_scale == 2.0f && c.objective.tr_uniform);
    ck_assert(c.perceptual_max_t == 0.6f);
    load_ok(&c, "pMF_L_32.yml");
    ck_assert_int_eq(c.model.img_size, 512);
    ck_assert(c.model.noise_scale == 4.0f);
    load_ok(&c, "pMF_L_16.yml");
    ck_assert(c.objective.cfg_beta == 2.0f);
    load_ok(&c, "fmnist_S4.yml");
    ck_assert_int_eq(c.model.channels, 1);
    ck_assert_int_eq(c.model.num_classes, 10);
}
END_TEST

static int write_tmp(char *path, const char *text) {
    strcpy(path, "/tmp/pmf_cfg_XXXXXX");
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    ck_assert(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    return 0;
}

START_TEST(bad_files_and_values_name_the_key) {
    PmfTrainConfig c;
    char path[64];
    write_tmp(path, "model:\n  P_mean: 0.5\n  P_sdt: 0.8\n");
    pmf_train_config_default(&c);
    ck_assert_int_eq(pmf_train_config_load(&c, path), -1);
    ck_assert_msg(strstr(core_last_error(), "model.P_sdt") && strstr(core_last_error(), path), "%s", core_last_error());
    write_tmp(path, "training:\n  batch_size: lots\n");
    pmf_train_config_default(&c);
    ck_assert_int_eq(pmf_train_config_load(&c, path), -1);
    ck_assert_msg(strstr(core_last_error(), "training.batch_size") && strstr(core_last_error(), "integer"), "%s", core_last_error());
    write_tmp(path, "model: [1, 2\n");
    ck_assert_int_eq(pmf_train_config_load(&c, path), -1);
    ck_assert_msg(strstr(core_last_error(), "YAML"), "%s", core_last_error());
    unlink(path);
    ck_assert_int_eq(pmf_train_config_load(&c, "/nonexistent/x.yml"), -1);
    pmf_train_config_default(&c);
    ck_assert_int_eq(pmf_train_config_set(&c, "training.optimizer", "sgd"), -1);
    ck_assert_msg(strstr(core_last_error(), "muon|adamw"), "%s", core_last_error());
    // norm_p: any positive power (the official adp_wt_fn), not zero or below.
    ck_assert_int_eq(pmf_train_config_set(&c, "model.norm_p", "0.5"), 0);
    ck_assert(c.objective.norm_p == 0.5f);
    ck_assert_int_eq(pmf_train_config_set(&c, "model.norm_p", "0"), 0);
    ck_assert_int_eq(pmf_train_config_finish(&c), -1);
    ck_assert_msg(strstr(core_last_error(), "model.norm_p"), "%s", core_last_error());
    // A resolution that the patch does not divide.
    pmf_train_config_default(&c);
    ck_assert(pmf_train_config_set(&c, "model.model_str", "B/32") == 0);
    ck_assert(pmf_train_config_set(&c, "dataset.image_size", "500") == 0);
    ck_assert_int_eq(pmf_train_config_finish(&c), -1);
    ck_assert_msg(strstr(core_last_error(), "dataset.image_size"), "%s", core_last_error());
    pmf_train_config_default(&c);
    pmf_train_config_set(&c, "training.micro_batch", "3");
    pmf_train_config_set(&c, "training.batch_size", "64");
    ck_assert_int_eq(pmf_train_config_finish(&c), -1);
    ck_assert_msg(strstr(core_last_error(), "micro_batch"), "%s", core_last_error());
}
END_TEST

START_TEST(res_and_patch_pick_the_paper_model) {
    PmfTrainConfig c;
    pmf_train_config_default(&c);
    pmf_train_config_set(&c, "dataset.image_size", "512");
    pmf_train_config_set(&c, "model.patch", "32");
    pmf_train_config_set(&c, "dataset.root", "data/imagenet512");
    ck_assert_msg(pmf_train_config_finish(&c) == 0, "%s", core_last_error());
    ck_assert_str_eq(c.model_str, "B/32");
    ck_assert(fabs(pmf_param_count(&c.model, 0) / 1e6 - 120.301) < 0.0005);
    // The released B/32 draws its noise at scale 2 (pmf.py); the objective's defaults must not
    // override the preset's scale, and the run's config.yaml must say 2.
    ck_assert_msg(c.model.noise_scale == 2.0f, "noise_scale %g", c.model.noise_scale);
    char *yaml = pmf_train_config_yaml(&c);
    ck_assert_msg(strstr(yaml, "  noise_scale: 2\n"), "%s", yaml);
    free(yaml);
    // An explicit key still wins over the preset.
    pmf_train_config_default(&c);
    pmf_train_config_set(&c, "model.model_str", "H/16");
    pmf_train_config_set(&c, "model.noise_scale", "3");
    ck_assert_msg(pmf_train_config_finish(&c) == 0, "%s", core_last_error());
    ck_assert(c.model.noise_scale == 3.0f);
    pmf_train_config_default(&c);
    pmf_train_config_set(&c, "model.model_str", "H/16");
    ck_assert_msg(pmf_train_config_finish(&c) == 0, "%s", core_last_error());
    ck_assert(c.model.noise_scale == 2.0f);
}
END_TEST

START_TEST(yaml_round_trip) {
    PmfTrainConfig a, b;
    load_ok(&a, "pMF_H_32.yml");
    pmf_train_config_set(&a, "model.pred", "u");
    pmf_train_config_finish(&a);
    char *yaml = pmf_train_config_yaml(&a);
    char path[64];
    write_tmp(path, yaml);
    pmf_train_config_default(&b);
    ck_assert_msg(pmf_train_config_load(&b, path) == 0, "%s\n%s", core_last_error(), yaml);
    ck_assert_msg(pmf_train_config_finish(&b) == 0, "%s", core_last_error());
    char *yaml2 = pmf_train_config_yaml(&b);
    ck_assert_str_eq(yaml, yaml2);
    ck_assert_int_eq(b.model.pred, PMF_PRED_U);
    free(yaml), free(yaml2);
    unlink(path);
}
END_TEST

// The learning-rate schedules against the official optax ones written out by hand: lr 1e-3, 2
// warm-up epochs of 10 steps (warm = 20), 100 steps in all.
START_TEST(learning_rate_schedules_match_the_official_ones) {
    PmfTrainConfig c;
    pmf_train_config_default(&c);
    c.learning_rate = 1e-3f, c.warmup_epochs = 2;
    const double lr = 1e-3, warm = 20, decay = (100 - warm) - warm;   // optax's cosine span
    struct { const char *schedule; int64_t step; double want; } cases[] = {
        {"const", 0, lr}, {"const", 57, lr},
        {"warmup_const", 0, 0}, {"warmup_const", 5, lr * 5 / warm}, {"warmup_const", 19, lr * 19 / warm},
        {"warmup_const", 20, lr}, {"warmup_const", 99, lr},
        {"warmup_cosine", 0, 0}, {"warmup_cosine", 10, lr * 10 / warm}, {"warmup_cosine", 20, lr},
        {"warmup_cosine", 50, lr * 0.5 * (1 + cos(M_PI * 30 / decay))}, {"warmup_cosine", 80, 0}, {"warmup_cosine", 99, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(c.lr_schedule, sizeof c.lr_schedule, "%s", cases[i].schedule);
        double got = pmf_learning_rate(&c, cases[i].step, 100, 10);
        ck_assert_msg(fabs(got - cases[i].want) <= 1e-6 * lr, "%s step %lld: lr %.9g, expected %.9g", cases[i].schedule,
                      (long long)cases[i].step, got, cases[i].want);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("pmf_train_config");
    TCase *tc = tcase_create("config");
    tcase_add_test(tc, shipped_configs_match_spec_section_8);
    tcase_add_test(tc, bad_files_and_values_name_the_key);
    tcase_add_test(tc, res_and_patch_pick_the_paper_model);
    tcase_add_test(tc, yaml_round_trip);
    tcase_add_test(tc, learning_rate_schedules_match_the_official_ones);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
