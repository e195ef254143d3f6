// bench/gemm_profile.c: where a step's time goes, GEMMs against everything else. bench_step
// defines cblas_sgemm itself, so every GEMM the engine makes (core/gemm.h's wrappers and the
// attention's own calls) passes through here on its way to OpenBLAS's (found with dlsym(RTLD_NEXT)); each call's FLOPs and
// wall time are added to its thread's slot and to a size class. Timing costs two clock reads a
// call (about 40 ns), against calls of 0.1 ms and more.
#include <cblas.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/gemm_profile.h"
#include "core/core.h"

typedef void (*SgemmFn)(const enum CBLAS_ORDER, const enum CBLAS_TRANSPOSE, const enum CBLAS_TRANSPOSE, const blasint,
                        const blasint, const blasint, const float, const float *, const blasint, const float *,
                        const blasint, const float, float *, const blasint);

static SgemmFn real_sgemm;
static int profiling;
static GemmProfile prof;

void cblas_sgemm(const enum CBLAS_ORDER order, const enum CBLAS_TRANSPOSE ta, const enum CBLAS_TRANSPOSE tb,
                 const blasint M, const blasint N, const blasint K, const float alpha, const float *A, const blasint lda,
                 const float *B, const blasint ldb, const float beta, float *C, const blasint ldc) {
    if (!real_sgemm) {
        real_sgemm = (SgemmFn)dlsym(RTLD_NEXT, "cblas_sgemm");
        if (!real_sgemm) core_fatal("gemm_profile: OpenBLAS's cblas_sgemm not found (%s)", dlerror());
    }
    if (!profiling) {
        real_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
        return;
    }
    double t0 = core_now();
    real_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    double dt = core_now() - t0, flop = 2.0 * M * N * K;
    // Slots per OS thread in order of first call, not omp_get_thread_num(): inside a lane's own
    // (nested, one-thread) parallel loops that number is 0 on every lane.
    static _Thread_local int slot = -1;
    static int next_slot;
    if (slot < 0) {
#pragma omp atomic capture
        slot = next_slot++;
    }
    int t = slot < GEMM_PROFILE_THREADS ? slot : GEMM_PROFILE_THREADS - 1;
    // Size classes by FLOPs a call: attention's per-(image, head) products are the small ones.
    int c = flop < 2e6 ? 0 : flop < 2e7 ? 1 : 2;
    prof.thread[t].seconds += dt, prof.thread[t].flop += flop, prof.thread[t].calls++;
    prof.size_class[t][c].seconds += dt, prof.size_class[t][c].flop += flop, prof.size_class[t][c].calls++;
}

void gemm_profile_start(void) {
    memset(&prof, 0, sizeof prof);
    profiling = 1;
}

GemmProfile gemm_profile_stop(void) {
    profiling = 0;
    return prof;
}
