// core/kernels.h (internal): raw-array kernels shared by more than one op file.
#ifndef PMF_CORE_KERNELS_H
#define PMF_CORE_KERNELS_H

#include <stdint.h>

// Row-wise softmax: x (R, C) -> y (R, C). Serial: callers parallelise over their own blocks.
void softmax_rows(const float *x, float *y, int64_t R, int C);
// out (+)= y * (a - rowsum(y * a)): the softmax JVP along a, and its VJP with a = dy.
void softmax_rows_jvp(const float *y, const float *a, float *out, int64_t R, int C, int accumulate);

#endif
