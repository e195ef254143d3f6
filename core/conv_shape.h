// core/conv_shape.h (internal): the shape record and tap arithmetic shared by the convolution
// kernels (ops_conv.c: NCHW with tape; ops_conv_cnhw.c: channel-major, inference only).
#ifndef PMF_CORE_CONV_SHAPE_H
#define PMF_CORE_CONV_SHAPE_H

#include <omp.h>
#include <stdint.h>

typedef struct {
    int N, Cin, H, W, Cout, KH, KW, OH, OW, sh, sw, ph, pw, G;
} ConvShape;

static inline int conv_is_pointwise(const ConvShape *s) {
    return s->KH == 1 && s->KW == 1 && s->sh == 1 && s->sw == 1 && s->ph == 0 && s->pw == 0;
}

static inline int conv_K(const ConvShape *s) { return s->Cin / s->G * s->KH * s->KW; }

// First and one-past-last output index o with 0 <= o*s - p + k < n (the taps that land inside).
static inline void tap_range(int out, int n, int s, int p, int k, int *lo, int *hi) {
    int a = p - k, l = a > 0 ? (a + s - 1) / s : 0;
    int b = n - 1 + p - k, h = b >= 0 ? b / s + 1 : 0;
    *lo = l < out ? l : out;
    *hi = h < out ? h : out;
    if (*hi < *lo) *hi = *lo;
}

// Threads for a loop over `units` independent pieces of work: 1 when already inside a parallel
// region or when there are fewer units than threads (then sgemm itself runs threaded).
static inline int conv_threads(int64_t units) {
    if (omp_in_parallel()) return 1;
    int t = omp_get_max_threads();
    return units >= t ? t : 1;
}

#endif
