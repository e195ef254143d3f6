// core/gemm.h (internal): row-major sgemm with the storage convention the ops use.
#ifndef PMF_CORE_GEMM_H
#define PMF_CORE_GEMM_H

#include <cblas.h>

// C (M, N) = beta * C + op(A) op(B); A is stored (M, K), or (K, M) when ta; B is stored (K, N),
// or (N, K) when tb.
static inline void sgemm_rm(int ta, int tb, int M, int N, int K, const float *A, const float *B,
                            float *C, float beta) {
    if (M == 0 || N == 0) return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
                1.0f, A, ta ? M : K, B, tb ? K : N, beta, C, N);
}

#endif
