// bench/gemm_profile.h: FLOPs and time of every cblas_sgemm call between start and stop, per
// thread and per size class (bench_step --gemm-profile).
#ifndef PMF_BENCH_GEMM_PROFILE_H
#define PMF_BENCH_GEMM_PROFILE_H

#define GEMM_PROFILE_THREADS 16

typedef struct {
    double seconds, flop;
    long calls;
} GemmTally;

typedef struct {
    GemmTally thread[GEMM_PROFILE_THREADS];
    GemmTally size_class[GEMM_PROFILE_THREADS][3];   // under 2 MFLOP a call, under 20, 20 and more
} GemmProfile;

void gemm_profile_start(void);
GemmProfile gemm_profile_stop(void);

#endif
