// tests/harness.c: see harness.h.
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <libgen.h>
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

void golden_open(SafeTensors *st, const char *stem) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", PMF_GOLDEN_DIR, stem);
    if (safetensors_open(st, path) != 0)
        ck_abort_msg("cannot load golden file: %s (regenerate with tools/goldens/gen_goldens.py)", core_last_error());
}

void test_work_init(TestWork *w, size_t arena_bytes) {
    arena_init(&w->arena, arena_bytes);
    tape_init(&w->tp, &w->arena);
}

void test_work_free(TestWork *w) {
    tape_free(&w->tp);
    arena_free(&w->arena);
}

double test_sum(const float *x, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += x[i];
    return s;
}

unsigned char *test_read_file(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)len + 1);
    ck_assert_uint_eq(fread(b, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return b;
}

int golden_has(const SafeTensors *st, const char *name) { return safetensors_find(st, name) != NULL; }

Tensor *golden_tensor(Tape *tp, const SafeTensors *st, const char *name) {
    const StEntry *e = safetensors_find(st, name);
    ck_assert_msg(e != NULL, "%s: no tensor '%s'", st->path, name);
    ck_assert_msg(e->ndim >= 0 && e->ndim <= 4, "%s: '%s' is %d-D", st->path, name, e->ndim);
    int shape[4] = {1, 1, 1, 1}, nd = e->ndim ? e->ndim : 1;
    for (int i = 0; i < e->ndim; i++) shape[i] = (int)e->shape[i];
    Tensor *t = tensor_new(tp, nd, shape, e->name);
    ck_assert_msg(safetensors_read_f32(st, name, e->ndim, shape, t->data) == 0, "%s", core_last_error());
    return t;
}

static double compare_impl(const char *label, const float *gf, const float *wf, const double *gd,
                           const double *wd, int64_t n) {
    double num = 0, den = 0, worst = -1;
    int64_t wi = 0;
    for (int64_t i = 0; i < n; i++) {
        double g = gf ? gf[i] : gd[i], w = wf ? wf[i] : wd[i], d = g - w;
        if (!isfinite(g)) {
            printf("  %-28s non-finite value at %lld\n", label, (long long)i);
            return INFINITY;
        }
        num += d * d;
        den += w * w;
        if (fabs(d) > worst) worst = fabs(d), wi = i;
    }
    double err = den > 0 ? sqrt(num / den) : sqrt(num);
    if (n > 0) {
        double g = gf ? gf[wi] : gd[wi], w = wf ? wf[wi] : wd[wi];
        printf("  %-28s rel err %.2e  worst [%lld] got %.7g want %.7g\n", label, err, (long long)wi, g, w);
    }
    return err;
}

double compare_rel(const char *label, const float *got, const float *want, int64_t n) {
    return compare_impl(label, got, want, NULL, NULL, n);
}

double compare_rel_d(const char *label, const double *got, const double *want, int64_t n) {
    return compare_impl(label, NULL, NULL, got, want, n);
}

// ---------------------------------------------------------------------------------------------

typedef struct {
    Arena arena;
    Tape tape;
    Tensor *in[8];
} Work;

// Fresh inputs from the golden file; perturbed along `dir[i]` by `eps` when dir is given.
static Tensor *build_once(Work *w, const OpCase *c, const SafeTensors *st, int record, float *const *dir,
                          double eps, int with_tangents) {
    tape_reset(&w->tape);
    tape_set_recording(&w->tape, record);
    for (int i = 0; i < c->n_in; i++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", i);
        Tensor *t = golden_tensor(&w->tape, st, name);
        int diff = !(c->nodiff & (1u << i));
        if (diff && dir && dir[i])
            for (int64_t k = 0; k < t->numel; k++) t->data[k] += (float)(eps * dir[i][k]);
        if (diff) {
            t->requires_grad = record;
            snprintf(name, sizeof name, "tin%d", i);
            if (with_tangents && golden_has(st, name)) {
                float *tg = tensor_attach_tangent(&w->tape, t);
                ck_assert(safetensors_read_f32(st, name, t->ndim, t->shape, tg) == 0);
            }
        }
        w->in[i] = t;
    }
    Tensor *y = c->build(&w->tape, w->in, st);
    ck_assert_msg(tensor_is_contiguous(y), "%s: build returned a strided view", c->golden);
    return y;
}

static double weighted_sum(const Tensor *y, const float *g) {
    double s = 0;
    for (int64_t i = 0; i < y->numel; i++) s += (double)y->data[i] * (double)g[i];
    return s;
}

void run_op_case(const OpCase *c) {
    SafeTensors st;
    golden_open(&st, c->golden);
    printf("[%s]\n", c->golden);
    Work w;
    arena_init(&w.arena, 16 << 20);
    tape_init(&w.tape, &w.arena);
    int has_tangent = 0;
    for (int i = 0; i < c->n_in; i++) {
        char name[16];
        snprintf(name, sizeof name, "tin%d", i);
        has_tangent |= golden_has(&st, name) && !(c->nodiff & (1u << i));
    }

    // (a) forward, (c) tangent, (b) backward against the golden file.
    Tensor *y = build_once(&w, c, &st, 1, NULL, 0, 1);
    Tensor *want = golden_tensor(&w.tape, &st, "out");
    ck_assert_msg(y->numel == want->numel, "%s: output has %lld elements, golden %lld", c->golden,
                  (long long)y->numel, (long long)want->numel);
    const StEntry *we = safetensors_find(&st, "out");
    if (we->ndim > 0) {   // a 0-D torch scalar is stored as shape (); ours is (1)
        int same = we->ndim == y->ndim;
        for (int i = 0; same && i < y->ndim; i++) same = we->shape[i] == y->shape[i];
        char ys[64];
        tensor_shape_str(y, ys, sizeof ys);
        ck_assert_msg(same, "%s: output shape %s differs from the golden's %d-D shape", c->golden, ys, we->ndim);
    }
    double e = compare_rel("forward", y->data, want->data, y->numel);
    ck_assert_msg(e <= c->tol, "%s: forward rel err %.3g > %.3g", c->golden, e, c->tol);
    if (has_tangent) {
        Tensor *tw = golden_tensor(&w.tape, &st, "tout");
        ck_assert_msg(y->tangent != NULL, "%s: inputs carry tangents but the output has none", c->golden);
        e = compare_rel("tangent", y->tangent, tw->data, y->numel);
        ck_assert_msg(e <= c->tol, "%s: tangent rel err %.3g > %.3g", c->golden, e, c->tol);
    }
    Tensor *g = golden_tensor(&w.tape, &st, "g");
    int any_grad = 0;
    for (int i = 0; i < c->n_in; i++) any_grad |= !(c->nodiff & (1u << i));
    float *grads[8] = {0};
    if (any_grad) {
        ck_assert_msg(y->requires_grad, "%s: output does not require grad", c->golden);
        tape_backward(&w.tape, y, g->data);
        for (int i = 0; i < c->n_in; i++) {
            if (c->nodiff & (1u << i)) continue;
            char name[16], label[32];
            snprintf(name, sizeof name, "gin%d", i);
            snprintf(label, sizeof label, "grad in%d", i);
            Tensor *gw = golden_tensor(&w.tape, &st, name);
            float *gg = tensor_grad(&w.tape, w.in[i]);
            e = compare_rel(label, gg, gw->data, gw->numel);
            ck_assert_msg(e <= c->tol, "%s: %s rel err %.3g > %.3g", c->golden, label, e, c->tol);
            grads[i] = malloc((size_t)gw->numel * sizeof(float));
            memcpy(grads[i], gg, (size_t)gw->numel * sizeof(float));
        }
    }
    float *gcopy = malloc((size_t)g->numel * sizeof(float));
    memcpy(gcopy, g->data, (size_t)g->numel * sizeof(float));
    float *ycopy_t = NULL;
    int64_t ny = y->numel;
    if (has_tangent) {
        ycopy_t = malloc((size_t)ny * sizeof(float));
        memcpy(ycopy_t, y->tangent, (size_t)ny * sizeof(float));
    }

    // (b) gradients vs central differences of L = sum(out * g), accumulated in double.
    // Small inputs: every element; larger ones: four random directions.
    Rng rng;
    rng_init(&rng, 1234);
    for (int i = 0; i < c->n_in; i++) {
        if (c->nodiff & (1u << i)) continue;
        int64_t n = w.in[i]->numel;
        float *dirs[8] = {0};
        float *d = malloc((size_t)n * sizeof(float));
        dirs[i] = d;
        int per_element = n <= 64;
        int n_dir = per_element ? (int)n : 4;
        double *fd = malloc((size_t)n_dir * sizeof(double)), *an = malloc((size_t)n_dir * sizeof(double));
        for (int k = 0; k < n_dir; k++) {
            if (per_element) {
                memset(d, 0, (size_t)n * sizeof(float));
                d[k] = 1.0f;
            } else rng_fill_normal(&rng, d, n, 0.0f, 1.0f);
            double lp = weighted_sum(build_once(&w, c, &st, 0, dirs, c->fd_eps, 0), gcopy);
            double lm = weighted_sum(build_once(&w, c, &st, 0, dirs, -c->fd_eps, 0), gcopy);
            fd[k] = (lp - lm) / (2 * c->fd_eps);
            double a = 0;
            for (int64_t j = 0; j < n; j++) a += (double)grads[i][j] * d[j];
            an[k] = a;
        }
        char label[48];
        snprintf(label, sizeof label, "fd grad in%d (%s)", i, per_element ? "all" : "4 dirs");
        e = compare_rel_d(label, an, fd, n_dir);
        ck_assert_msg(e <= c->fd_tol, "%s: %s rel err %.3g > %.3g", c->golden, label, e, c->fd_tol);
        free(d), free(fd), free(an);
    }

    // (c) tangent vs central differences along the golden input tangents.
    if (has_tangent) {
        float *dirs[8] = {0};
        for (int i = 0; i < c->n_in; i++) {
            char name[16];
            snprintf(name, sizeof name, "tin%d", i);
            if ((c->nodiff & (1u << i)) || !golden_has(&st, name)) continue;
            const StEntry *en = safetensors_find(&st, name);
            dirs[i] = malloc((size_t)en->numel * sizeof(float));
            int shape[4];
            for (int k = 0; k < en->ndim; k++) shape[k] = (int)en->shape[k];
            ck_assert(safetensors_read_f32(&st, name, en->ndim, shape, dirs[i]) == 0);
        }
        float *yp = malloc((size_t)ny * sizeof(float));
        memcpy(yp, build_once(&w, c, &st, 0, dirs, c->fd_eps, 0)->data, (size_t)ny * sizeof(float));
        Tensor *ym = build_once(&w, c, &st, 0, dirs, -c->fd_eps, 0);
        double *fd = malloc((size_t)ny * sizeof(double)), *an = malloc((size_t)ny * sizeof(double));
        for (int64_t k = 0; k < ny; k++) {
            fd[k] = ((double)yp[k] - (double)ym->data[k]) / (2 * c->fd_eps);
            an[k] = ycopy_t[k];
        }
        e = compare_rel_d("fd tangent", an, fd, ny);
        ck_assert_msg(e <= c->fd_tol, "%s: fd tangent rel err %.3g > %.3g", c->golden, e, c->fd_tol);
        free(yp), free(fd), free(an);
        for (int i = 0; i < 8; i++) free(dirs[i]);
    }
    for (int i = 0; i < 8; i++) free(grads[i]);
    free(gcopy);
    free(ycopy_t);
    tape_free(&w.tape);
    arena_free(&w.arena);
    safetensors_close(&st);
}

static const OpCase *current_table;

static void op_table_test(int i) { run_op_case(&current_table[i]); }

START_TEST(op_table_row) { op_table_test(_i); }
END_TEST

void add_op_table(TCase *tc, const OpCase *table, int n) {
    // Check runs each loop test in a fork (or in-process with CK_FORK=no); the table pointer is
    // set before any test runs and never changes afterwards.
    if (current_table) {
        fprintf(stderr, "add_op_table: one table per test program (merge the rows into one array)\n");
        abort();
    }
    current_table = table;
    tcase_add_loop_test(tc, op_table_row, 0, n);
}

int run_suite(Suite *s) {
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int test_run_program(const char *name, const char *args, char *out, size_t n) {
    char self[PATH_MAX], bin[PATH_MAX + 64], cmd[PATH_MAX + 4096];
    ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
    ck_assert_msg(k > 0, "cannot read /proc/self/exe");
    self[k] = 0;
    snprintf(bin, sizeof bin, "%s/%s", dirname(self), name);
    ck_assert_msg(access(bin, X_OK) == 0, "%s is missing: build the %s target", bin, name);
    snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", bin, args);
    FILE *f = popen(cmd, "r");
    ck_assert_msg(f != NULL, "cannot run %s", cmd);
    size_t got = fread(out, 1, n - 1, f);
    out[got] = 0;
    int st = pclose(f);
    ck_assert_msg(st != -1 && WIFEXITED(st), "could not run: %s", cmd);
    return WEXITSTATUS(st);
}
