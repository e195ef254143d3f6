// core/rng.c: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", 2011).
// Counter based: value i of a fill is a pure function of (seed, offset + i), so a fill gives the
// same numbers whatever the thread count, and a checkpoint needs only (seed, offset).
#include "core.h"

#include <math.h>

void rng_init(Rng *r, uint64_t seed) {
    r->seed = seed;
    r->offset = 0;
}

void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]) {
    uint32_t c0 = ctr[0], c1 = ctr[1], c2 = ctr[2], c3 = ctr[3];
    uint32_t k0 = key[0], k1 = key[1];
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * c0;
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c2;
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1 ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c3 ^ k1;
        c1 = (uint32_t)p1;
        c3 = (uint32_t)p0;
        c0 = n0;
        c2 = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void philox4x32(uint64_t counter, uint64_t key, uint32_t out[4]) {
    const uint32_t c[4] = {(uint32_t)counter, (uint32_t)(counter >> 32), 0, 0};
    const uint32_t k[2] = {(uint32_t)key, (uint32_t)(key >> 32)};
    philox4x32_10(c, k, out);
}

static double u01(uint32_t x) { return (double)(x >> 8) / 16777216.0; }

static double normal_at(uint64_t seed, uint64_t index) {
    uint32_t o[4];
    philox4x32(index, seed, o);
    // Box-Muller on 2 x 32 bits (53-bit uniforms would be finer; 32 bits each is ample here).
    double u1 = ((double)o[0] + 1.0) / 4294967296.0;
    double u2 = (double)o[1] / 4294967296.0;
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

void rng_fill_normal(Rng *r, float *x, int64_t n, float mean, float std) {
    uint64_t seed = r->seed, base = r->offset;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = mean + std * (float)normal_at(seed, base + (uint64_t)i);
    r->offset += (uint64_t)n;
}

void rng_fill_uniform(Rng *r, float *x, int64_t n, float lo, float hi) {
    uint64_t seed = r->seed, base = r->offset;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        uint32_t o[4];
        philox4x32(base + (uint64_t)i, seed, o);
        float v = lo + (hi - lo) * (float)u01(o[0]);
        x[i] = v < hi ? v : lo;   // rounding must not reach hi
    }
    r->offset += (uint64_t)n;
}

double rng_uniform(Rng *r) {
    uint32_t o[4];
    philox4x32(r->offset++, r->seed, o);
    return u01(o[0]);
}

double rng_normal(Rng *r) { return normal_at(r->seed, r->offset++); }
