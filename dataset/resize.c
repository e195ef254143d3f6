// dataset/resize.c: PIL's Image.resize for 8-bit images (Pillow libImaging/Resample.c), bit for
// bit: per output pixel a filter window centred on (i + 0.5) * scale, weights normalised to sum 1
// and rounded to 22-bit fixed point, a horizontal pass into an 8-bit buffer, then a vertical pass.
// Matching PIL exactly is the point: the training data must be the data the paper trained on.
#include "dataset/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define PRECISION_BITS (32 - 8 - 2)

static double box_filter(double x) { return x > -0.5 && x <= 0.5 ? 1.0 : 0.0; }

static double bicubic_filter(double x) {   // Keys' cubic with a = -0.5
    const double a = -0.5;
    if (x < 0.0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// Pillow's precompute_coeffs + normalize_coeffs_8bpc. bounds[2i] = first input index, bounds[2i+1]
// = count; kk (out, ksize) fixed-point weights. Returns ksize.
static int coeffs(int in_size, int out_size, DsFilter f, int **boundsp, int32_t **kkp) {
    double (*filter)(double) = f == DS_FILTER_BOX ? box_filter : bicubic_filter;
    double support0 = f == DS_FILTER_BOX ? 0.5 : 2.0;
    double scale = (double)in_size / out_size, filterscale = scale < 1.0 ? 1.0 : scale;
    double support = support0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *pre = core_malloc(sizeof(double) * (size_t)out_size * ksize, "resize weights");
    int32_t *kk = core_malloc(sizeof(int32_t) * (size_t)out_size * ksize, "resize weights");
    int *bounds = core_malloc(sizeof(int) * 2 * (size_t)out_size, "resize bounds");
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale, ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5), xmax = (int)(center + support + 0.5);
        if (xmin < 0) xmin = 0;
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *k = pre + (size_t)xx * ksize;
        int x;
        for (x = 0; x < xmax; x++) {
            double w = filter((x + xmin - center + 0.5) * ss);
            k[x] = w;
            ww += w;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) k[x] /= ww;
        for (; x < ksize; x++) k[x] = 0;
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * ksize; i++)
        kk[i] = pre[i] < 0 ? (int32_t)(-0.5 + pre[i] * (1 << PRECISION_BITS))
                           : (int32_t)(0.5 + pre[i] * (1 << PRECISION_BITS));
    free(pre);
    *boundsp = bounds;
    *kkp = kk;
    return ksize;
}

static uint8_t clip8(int32_t v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

// src (h, w, c) -> dst (h, ow, c)
static void pass_horizontal(const uint8_t *src, int w, int h, int c, uint8_t *dst, int ow, DsFilter f) {
    int *b;
    int32_t *kk;
    int ks = coeffs(w, ow, f, &b, &kk);
    for (int y = 0; y < h; y++) {
        const uint8_t *s = src + (size_t)y * w * c;
        uint8_t *d = dst + (size_t)y * ow * c;
        for (int xx = 0; xx < ow; xx++) {
            const int32_t *k = kk + (size_t)xx * ks;
            int xmin = b[2 * xx], xmax = b[2 * xx + 1];
            for (int ch = 0; ch < c; ch++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (int x = 0; x < xmax; x++) ss += s[(size_t)(x + xmin) * c + ch] * k[x];
                d[(size_t)xx * c + ch] = clip8(ss);
            }
        }
    }
    free(b);
    free(kk);
}

// src (h, w, c) -> dst (oh, w, c)
static void pass_vertical(const uint8_t *src, int w, int h, int c, uint8_t *dst, int oh, DsFilter f) {
    int *b;
    int32_t *kk;
    int ks = coeffs(h, oh, f, &b, &kk);
    size_t row = (size_t)w * c;
    for (int yy = 0; yy < oh; yy++) {
        const int32_t *k = kk + (size_t)yy * ks;
        int ymin = b[2 * yy], ymax = b[2 * yy + 1];
        uint8_t *d = dst + (size_t)yy * row;
        for (size_t i = 0; i < row; i++) {
            int32_t ss = 1 << (PRECISION_BITS - 1);
            for (int y = 0; y < ymax; y++) ss += src[(size_t)(y + ymin) * row + i] * k[y];
            d[i] = clip8(ss);
        }
    }
    free(b);
    free(kk);
}

void ds_resize(const uint8_t *src, int w, int h, int c, uint8_t *dst, int ow, int oh, DsFilter f) {
    if (ow == w && oh == h) {   // PIL returns a copy
        memcpy(dst, src, (size_t)w * h * c);
        return;
    }
    if (ow == w) {
        pass_vertical(src, w, h, c, dst, oh, f);
        return;
    }
    if (oh == h) {
        pass_horizontal(src, w, h, c, dst, ow, f);
        return;
    }
    uint8_t *tmp = core_malloc((size_t)ow * h * c, "resize buffer");
    pass_horizontal(src, w, h, c, tmp, ow, f);
    pass_vertical(tmp, ow, h, c, dst, oh, f);
    free(tmp);
}
