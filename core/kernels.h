// core/kernels.h (internal): raw-array kernels shared by more than one op file.
#ifndef PMF_CORE_KERNELS_H
#define PMF_CORE_KERNELS_H

#include <stdint.h>

// exp(x) for x <= 88, written so loops over it vectorise (glibc's expf is a call per element).
// x = k ln2 + r with |r| <= ln2/2, e^r by a degree-6 Taylor-Horner polynomial, 2^k via exponent bits.
// Relative error below 3e-7 on [-87, 88]; inputs below -87 give 0 (softmax arguments are <= 0).
static inline float fast_expf(float xin) {
    float x = xin < -87.0f ? -87.0f : xin;
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f;   // round to nearest
    float r = x - k * 0.693145751953125f - k * 1.428606765330187e-06f;
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (0.166666672f + r * (0.0416666679f + r * (0.00833333377f + r * 0.00138888892f)))));
    union { float f; int i; } u = {p};
    u.i += (int)k * (1 << 23);   // a multiply, not a shift: k is negative for x < 0
    return xin < -87.0f ? 0.0f : u.f;
}

// sum_c a[c] b[c] (b NULL: a[c]^2) in double, in 8 interleaved partial sums combined pairwise: a
// fixed order (the same bits on every call and thread count) that vectorises, where one running
// double sum is a chain of dependent adds (RMSNorm's statistics were most of its time).
static inline double dot_f64(const float *a, const float *b, int n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int c = 0;
    if (b)
        for (; c + 8 <= n; c += 8)
            for (int k = 0; k < 8; k++) acc[k] += (double)a[c + k] * b[c + k];
    else
        for (; c + 8 <= n; c += 8)
            for (int k = 0; k < 8; k++) acc[k] += (double)a[c + k] * a[c + k];
    for (; c < n; c++) acc[0] += (double)a[c] * (b ? b[c] : a[c]);
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// sum_c w[c] g[c] x[c] (w NULL: sum_c g[c] x[c]) in dot_f64's order, w g rounded to float first
// (the RMSNorm backward's mean(dn n) with dn = w g).
static inline double wdot_f64(const float *w, const float *g, const float *x, int n) {
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int c = 0;
    for (; c + 8 <= n; c += 8)
        for (int k = 0; k < 8; k++) acc[k] += (double)(w ? w[c + k] * g[c + k] : g[c + k]) * x[c + k];
    for (; c < n; c++) acc[0] += (double)(w ? w[c] * g[c] : g[c]) * x[c];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

// 2-D RoPE's table (op_rope2d): cs (n_pos, HS/2, 2) = cos and sin of each (grid position, pair),
// position p at (p / gw, p % gw).
void rope2d_table(float *cs, int n_pos, int gw, int HS, float theta);
// Rotates the HS/2 pairs of one head's row by cs (one position's HS/2 (cos, sin)), dir +1 forward
// and -1 back. y may equal x.
static inline void rope_rotate(const float *cs, const float *x, float *y, int HS, float dir) {
    for (int j = 0; j < HS / 2; j++) {
        float c = cs[2 * j], s = dir * cs[2 * j + 1], a = x[2 * j], b = x[2 * j + 1];
        y[2 * j] = a * c - b * s, y[2 * j + 1] = a * s + b * c;
    }
}

// dw (C) += sum over the R rows of a * b (b NULL: of a), a and b (R, C); threads take interleaved
// rows into their own partials, added in thread order (deterministic for a thread count).
void add_row_sums(const float *a, const float *b, float *dw, int64_t R, int C);

// Row-wise softmax: x (R, C) -> y (R, C). Serial: callers parallelise over their own blocks.
void softmax_rows(const float *x, float *y, int64_t R, int C);
// out (+)= y * (a - rowsum(y * a)): the softmax JVP along a, and its VJP with a = dy.
void softmax_rows_jvp(const float *y, const float *a, float *out, int64_t R, int C, int accumulate);

#endif
