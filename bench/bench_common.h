// bench/bench_common.h: what several benchmarks measure the same way: the median of timings and
// the sgemm ceiling of this machine at the current thread count, measured in the same process.
#ifndef PMF_BENCH_COMMON_H
#define PMF_BENCH_COMMON_H

#include <cblas.h>
#include <stdlib.h>

#include "core/core.h"

static int bench_cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double bench_median(double *t, int n) {
    qsort(t, (size_t)n, sizeof t[0], bench_cmp_double);
    return n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
}

// Best GFLOP/s of cblas_sgemm over two shapes (a large square one and a thin one like the models').
static double bench_sgemm_ceiling(void) {
    int shapes[2][3] = {{2048, 2048, 2048}, {8192, 192, 192}};
    double best = 0;
    for (int s = 0; s < 2; s++) {
        int M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *a = core_malloc((size_t)M * K * 4, "sgemm a"), *b = core_malloc((size_t)K * N * 4, "sgemm b");
        float *c = core_malloc((size_t)M * N * 4, "sgemm c");
        Rng r;
        rng_init(&r, 1);
        rng_fill_normal(&r, a, (int64_t)M * K, 0, 1), rng_fill_normal(&r, b, (int64_t)K * N, 0, 1);
        int reps = s == 0 ? 5 : 15;
        double t[15];
        for (int i = 0; i <= reps; i++) {
            double t0 = core_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, a, K, b, N, 0.0f, c, N);
            if (i) t[i - 1] = core_now() - t0;
        }
        double g = 2.0 * M * N * K / bench_median(t, reps) * 1e-9;
        if (g > best) best = g;
        free(a), free(b), free(c);
    }
    return best;
}

#endif
