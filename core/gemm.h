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

// The same with explicit leading dimensions (row strides in elements): sub-blocks of larger arrays.
static inline void sgemm_ld(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B,
                            int ldb, float *C, int ldc, float beta) {
    if (M == 0 || N == 0) return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M, N, K,
                1.0f, A, lda, B, ldb, beta, C, ldc);
}

// OpenBLAS called from inside an OpenMP loop must run single-threaded (each loop thread does its
// own small GEMMs; a threaded call would contend for the one BLAS thread pool). Bracket such loops.
// OpenBLAS's OpenMP build does this by itself (and its set_num_threads would change OpenMP's
// thread count for the loop too), so there both are no-ops.
static inline int blas_serial_begin(void) {
    if (openblas_get_parallel() == 2) return -1;
    int prev = openblas_get_num_threads();
    openblas_set_num_threads(1);
    return prev;
}
static inline void blas_serial_end(int prev) {
    if (prev > 0) openblas_set_num_threads(prev);
}

#endif
