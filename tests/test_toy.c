// tests/test_toy.c: the promises of cli/pmf_toy (the pMF paper's 2-D Swiss roll toy), by running
// the program that sits next to this test in the build folder:
//  - x-prediction at D = 2 learns in 1000 steps: the raw v-loss falls by 3x or more from its first
//    20 steps to its last 100, and the one-step samples are closer to the data (Chamfer distance)
//    than the untrained generator (the projected noise) is; every sample is finite and off-plane 0;
//  - bad arguments exit with status 2 and write nothing.
#include "harness.h"

#include <json-c/json.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

// The pmf_toy binary beside this test (both are built into the same folder).
static void toy_path(char *buf, size_t n) {
    char self[PATH_MAX];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_msg(k > 0, "cannot read /proc/self/exe");
    self[k] = 0;
    snprintf(buf, n, "%s/pmf_toy", dirname(self));
    ck_assert_msg(access(buf, X_OK) == 0, "%s is missing: build the pmf_toy target", buf);
}

static int run(const char *args) {
    char bin[PATH_MAX], cmd[PATH_MAX + 1024];
    toy_path(bin, sizeof bin);
    snprintf(cmd, sizeof cmd, "'%s' %s", bin, args);
    int st = system(cmd);
    ck_assert_msg(st != -1 && WIFEXITED(st), "could not run: %s", cmd);
    return WEXITSTATUS(st);
}

static double field(json_object *o, const char *key) {
    json_object *v;
    ck_assert_msg(json_object_object_get_ex(o, key, &v), "summary.json has no '%s'", key);
    return json_object_get_double(v);
}

START_TEST(x_pred_learns_the_roll_at_d2) {
    char dir[] = "/tmp/pmf_toy_XXXXXX", args[512], path[300];
    ck_assert(mkdtemp(dir) != NULL);
    snprintf(args, sizeof args, "--dim 2 --arm x --steps 1000 --n-gen 1000 --threads 2 --seed 3 --out '%s' 2>/dev/null", dir);
    ck_assert_int_eq(run(args), 0);

    snprintf(path, sizeof path, "%s/loss.tsv", dir);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    char line[256];
    double first = 0, last = 0;
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        int step;
        double loss;
        if (line[0] == '#') continue;
        ck_assert_int_eq(sscanf(line, "%d %lf", &step, &loss), 2);
        ck_assert_msg(isfinite(loss), "loss at step %d is %g", step, loss);
        if (step <= 20) first += loss / 20;
        if (step > 900) last += loss / 100;
        n++;
    }
    fclose(f);
    ck_assert_int_eq(n, 1000);
    printf("  raw v-loss: first 20 steps %.3f, last 100 steps %.3f (ratio %.1f)\n", first, last, first / last);
    ck_assert_msg(first > 3.0 * last, "the loss fell only from %.3f to %.3f", first, last);

    snprintf(path, sizeof path, "%s/points.tsv", dir);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL, "no %s", path);
    n = 0;
    while (fgets(line, sizeof line, f)) {
        double x, y;
        if (line[0] == '#') continue;
        ck_assert_int_eq(sscanf(line, "%lf %lf", &x, &y), 2);
        ck_assert_msg(isfinite(x) && isfinite(y) && fabs(x) < 100 && fabs(y) < 100, "sample %d is (%g, %g)", n, x, y);
        n++;
    }
    fclose(f);
    ck_assert_int_eq(n, 1000);

    snprintf(path, sizeof path, "%s/summary.json", dir);
    json_object *s = json_object_from_file(path);
    ck_assert_msg(s != NULL, "cannot parse %s", path);
    double ch = field(s, "chamfer"), ch0 = field(s, "chamfer_noise"), off = field(s, "off_plane");
    printf("  Chamfer: samples %.3f, untrained generator %.3f, held-out data %.4f\n", ch, ch0, field(s, "chamfer_floor"));
    ck_assert_msg(ch < 0.85 * ch0, "samples (Chamfer %.3f) are not clearly better than noise (%.3f)", ch, ch0);
    ck_assert_msg(off < 1e-4, "at D = 2 nothing can be off the plane, got %g", off);
    json_object_put(s);

    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert(system(cmd) == 0);
}
END_TEST

START_TEST(bad_arguments_exit_2_and_write_nothing) {
    char dir[] = "/tmp/pmf_toy_XXXXXX", args[512];
    ck_assert(mkdtemp(dir) != NULL);
    const char *bad[] = {"--dim 1 --arm x", "--dim 8 --arm v", "--dim 8 --arm x --steps 0", "--dim 8 --arm x --lr -1",
                         "--dim 8 --arm x --t-sampler beta", "--dim 8 --arm x --bogus 1", "--dim 8 --arm x --seed"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(args, sizeof args, "%s --out '%s/out' 2>/dev/null", bad[i], dir);
        int rc = run(args);
        printf("  pmf_toy %s -> exit %d\n", bad[i], rc);
        ck_assert_msg(rc == 2, "'%s' exited %d, expected 2", bad[i], rc);
    }
    snprintf(args, sizeof args, "--dim 8 --arm x 2>/dev/null");   // no --out
    ck_assert_int_eq(run(args), 2);
    char out[300];
    snprintf(out, sizeof out, "%s/out", dir);
    ck_assert_msg(access(out, F_OK) != 0, "a rejected run created %s", out);
    ck_assert(rmdir(dir) == 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("toy");
    TCase *tc = tcase_create("toy");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, bad_arguments_exit_2_and_write_nothing);
    tcase_add_test(tc, x_pred_learns_the_roll_at_d2);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
