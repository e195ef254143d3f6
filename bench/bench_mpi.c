// bench/bench_mpi.c: data parallel training (pmf/dist.c) on this machine. Reports
//   the gradient all-reduce (pmf_dist_sum_f32, the call pmf_train makes) over 2 ranks: time and
//   GB/s for a buffer of --floats floats (default 16M = 64 MB; B/16's 175M-float gradient would
//   not leave room on a small machine, so its time is extrapolated from this rate);
//   images/s of pmf_train's step (pmf_train, Fashion-MNIST) for 1 rank x 1 thread,
//   1 rank x 2 threads and 2 ranks x 1 thread, and the 2-rank / 1-rank ratio.
// Step rates come from two runs of different length (K more steps in the second), so data
// loading, the first step and the final samples cancel: rate = K * batch / (t2 - t1).
// A benchmark, not a test: nothing here fails on timing. It starts its 2-rank parts itself:
//   bench_mpi [--model XS/4] [--batch 32] [--steps 6] [--floats 16777216]
// runs `mpirun -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 bench_mpi --worker ...`
// (PMF_MPIRUN overrides the mpirun path). On a cluster, measure N ranks directly:
//   mpirun -np N -x OMP_NUM_THREADS=T bench_mpi --worker allreduce 16777216
//   mpirun -np N -x OMP_NUM_THREADS=T bench_mpi --worker train XS/4 32 6
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pmf/pmf.h"

static int config(PmfTrainConfig *c, const char *model, int batch, int steps, const char *out) {
    char b[32], s[32];
    snprintf(b, sizeof b, "%d", batch);
    snprintf(s, sizeof s, "%d", steps);
    const char *kv[][2] = {
        {"model.model_str", model}, {"dataset.root", "fashion-mnist"}, {"dataset.image_size", "32"},
        {"training.steps", s}, {"training.batch_size", b}, {"training.checkpoint_per_step", "0"},
        {"training.sample_per_step", "0"}, {"training.log_per_step", "100000"}, {"out", out},
    };
    pmf_train_config_default(c);
    for (size_t i = 0; i < sizeof kv / sizeof kv[0]; i++)
        if (pmf_train_config_set(c, kv[i][0], kv[i][1])) return -1;
    return pmf_train_config_finish(c);
}

// Seconds of one pmf_train of `steps` steps (every rank runs it; rank 0's clock). stdout is
// silenced during the run.
static double timed_run(const char *model, int batch, int steps, const char *out) {
    PmfTrainConfig c;
    if (config(&c, model, batch, steps, out)) core_fatal("bench_mpi: %s", core_last_error());
    fflush(stdout);
    int saved = dup(1);
    FILE *null = freopen("/dev/null", "w", stdout);
    (void)null;
    pmf_dist_barrier("the bench's start");
    double t0 = core_now();
    int rc = pmf_train(&c);
    pmf_dist_barrier("the bench's end");
    double t = core_now() - t0;
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    if (rc) core_fatal("bench_mpi: pmf_train failed: %s", core_last_error());
    return t;
}

// images/s of the step: K more steps cost t2 - t1.
static double step_rate(const char *model, int batch, int steps) {
    char out[] = "/tmp/pmf_bench_mpi_XXXXXX", cmd[128];
    if (pmf_dist_rank() == 0 && !mkdtemp(out)) core_fatal("bench_mpi: no temp folder");
    double t1 = timed_run(model, batch, 2, out), t2 = timed_run(model, batch, 2 + steps, out);
    if (pmf_dist_rank() == 0) {
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
        if (system(cmd)) fprintf(stderr, "bench_mpi: could not remove %s\n", out);
    }
    return steps * (double)batch / fmax(t2 - t1, 1e-9);
}

static int worker(int argc, char **argv) {
    if (pmf_dist_init(&argc, &argv)) {
        fprintf(stderr, "bench_mpi: %s\n", core_last_error());
        return 2;
    }
    int lead = pmf_dist_rank() == 0, world = pmf_dist_world();
    if (argc == 4 && !strcmp(argv[2], "allreduce")) {
        int64_t n = atoll(argv[3]);
        float *x = core_malloc((size_t)n * sizeof(float), "all-reduce buffer");
        for (int64_t i = 0; i < n; i++) x[i] = (float)(i % 1000) * 1e-3f;
        pmf_dist_sum_f32(x, n, "warm-up");
        double best = 1e30, sum = 0;
        int reps = 5;
        for (int r = 0; r < reps; r++) {
            pmf_dist_barrier("the bench");
            double t0 = core_now();
            pmf_dist_sum_f32(x, n, "the bench's all-reduce");
            double t = core_now() - t0;
            best = fmin(best, t), sum += t;
        }
        if (lead) {
            double gb = n * 4.0 / 1e9, bus = 2.0 * (world - 1) / world;
            printf("allreduce: %d ranks, %lld floats (%.0f MB): best %.1f ms, mean %.1f ms; %.2f GB/s algorithm bandwidth "
                   "(%.0f MB/s), %.2f GB/s bus bandwidth\n",
                   world, (long long)n, n * 4.0 / 1048576.0, best * 1e3, sum / reps * 1e3, gb / best, gb / best * 1e3,
                   gb / best * bus);
            printf("allreduce_gbps %.4f\n", gb / best);
        }
        free(x);
    } else if (argc == 6 && !strcmp(argv[2], "train")) {
        double rate = step_rate(argv[3], atoi(argv[4]), atoi(argv[5]));
        if (lead) printf("train_ips %.3f\n", rate);
    } else {
        if (lead) fprintf(stderr, "bench_mpi: bad worker arguments\n");
        pmf_dist_finalize();
        return 2;
    }
    pmf_dist_finalize();
    return 0;
}

// Runs `mpirun -np 2 ... self --worker args` and returns the number after `key` in its output.
static double mpirun2(const char *self, const char *args, const char *key, int echo) {
    const char *mpirun = getenv("PMF_MPIRUN");
    if (!mpirun || !*mpirun) mpirun = "mpirun";
    char cmd[2048], line[1024];
    snprintf(cmd, sizeof cmd,
             "%s -np 2 --oversubscribe --allow-run-as-root -x OMP_NUM_THREADS=1 -x OMP_WAIT_POLICY=PASSIVE '%s' --worker %s 2>&1",
             mpirun, self, args);
    FILE *p = popen(cmd, "r");
    if (!p) core_fatal("bench_mpi: cannot run %s", mpirun);
    double v = NAN;
    size_t klen = strlen(key);
    while (fgets(line, sizeof line, p)) {
        if (!strncmp(line, key, klen) && line[klen] == ' ') v = atof(line + klen + 1);
        else if (echo || !strstr(line, "pmf_train:")) fputs(line, stdout);
    }
    int st = pclose(p);
    if (st) fprintf(stderr, "bench_mpi: mpirun exited with status %d\n", st);
    return v;
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--worker")) return worker(argc, argv);
    core_prefer_passive_threads(argv);
    const char *model = "XS/4";
    int batch = 32, steps = 6;
    long long floats = 1 << 24;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--model")) model = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--steps")) steps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--floats")) floats = atoll(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_mpi [--model XS/4] [--batch 32] [--steps 6] [--floats 16777216]\n");
            return 2;
        }
    }
    if (batch < 2 || batch % 2 || steps < 1 || floats < 1) {
        fprintf(stderr, "bench_mpi: need an even batch >= 2, steps >= 1, floats >= 1\n");
        return 2;
    }
    if (!pmf_dist_built()) {
        printf("bench_mpi: MPI not built (CMake found no MPI): nothing to measure\n");
        return 0;
    }
    char self[1024];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0) return 1;
    self[n] = 0;
    PmfConfig b16;
    pmf_preset("B/16", &b16);
    int64_t grad_b16 = pmf_param_count(&b16, 1);
    PmfTrainConfig c;
    if (config(&c, model, batch, 1, "/tmp")) core_fatal("bench_mpi: %s", core_last_error());
    int64_t grad_model = pmf_param_count(&c.model, 1);

    printf("bench_mpi: all-reduce of the gradient, 2 ranks on this machine (%ld cores)\n", sysconf(_SC_NPROCESSORS_ONLN));
    char args[256];
    snprintf(args, sizeof args, "allreduce %lld", floats);
    double gbps = mpirun2(self, args, "allreduce_gbps", 1);
    if (isfinite(gbps))
        printf("  at that rate one step's all-reduce takes %.1f ms for %s (%.2fM floats), %.0f ms for B/16 (%.0fM floats)\n",
               grad_model * 4e-9 / gbps * 1e3, model, grad_model / 1e6, grad_b16 * 4e-9 / gbps * 1e3, grad_b16 / 1e6);

    printf("bench_mpi: pmf_train's step, %s, global batch %d, %d timed steps (rate = extra steps / extra time)\n", model, batch,
           steps);
    core_set_threads(1);
    double r11 = step_rate(model, batch, steps);
    printf("  1 rank  x 1 thread : %7.2f img/s\n", r11);
    core_set_threads(2);
    double r12 = step_rate(model, batch, steps);
    printf("  1 rank  x 2 threads: %7.2f img/s\n", r12);
    snprintf(args, sizeof args, "train '%s' %d %d", model, batch, steps);
    double r21 = mpirun2(self, args, "train_ips", 0);
    printf("  2 ranks x 1 thread : %7.2f img/s   (mpirun -np 2, batch %d per rank)\n", r21, batch / 2);
    printf("  ratio 2 ranks / 1 rank (1 thread each): %.2fx; 2 ranks / 1 rank x 2 threads: %.2fx\n", r21 / r11, r21 / r12);
    return 0;
}
