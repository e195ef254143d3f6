// dataset/idx.c: idx files (LeCun's MNIST format, also Fashion-MNIST): a big-endian header of
// magic and dimensions, then unsigned bytes. zlib's gz* reader handles both .gz and plain files.
#include "dataset/dataset.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/core.h"

static int read_u32be(gzFile f, uint32_t *v) {
    unsigned char b[4];
    if (gzread(f, b, 4) != 4) return -1;
    *v = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return 0;
}

// Reads the header: magic 0x000008<ndim> (unsigned byte data), then ndim sizes.
static gzFile open_idx(const char *path, int ndim, uint32_t *dims) {
    gzFile f = gzopen(path, "rb");
    if (!f) {
        core_set_error("%s: cannot open", path);
        return NULL;
    }
    uint32_t magic;
    if (read_u32be(f, &magic) != 0) {
        core_set_error("%s: file too short for an idx header (truncated or not gzip/idx)", path);
        gzclose(f);
        return NULL;
    }
    uint32_t want = 0x00000800u | (uint32_t)ndim;
    if (magic != want) {
        core_set_error("%s: idx magic 0x%08x, expected 0x%08x (unsigned bytes, %d dims)", path, magic, want, ndim);
        gzclose(f);
        return NULL;
    }
    for (int i = 0; i < ndim; i++)
        if (read_u32be(f, &dims[i]) != 0 || dims[i] == 0 || dims[i] > (1u << 26)) {
            core_set_error("%s: dimension %d missing or out of range", path, i);
            gzclose(f);
            return NULL;
        }
    return f;
}

// The header's sizes are claims: the buffer grows with the bytes actually read (doubling from
// 1 MiB), so a 16-byte file claiming 16 GB of pixels costs 1 MiB and a "truncated" message, not a
// 16 GB allocation. The caller has bounded n (IDX_MAX_BYTES).
#define IDX_MAX_BYTES (1ull << 34)
static uint8_t *read_body(gzFile f, const char *path, size_t n) {
    size_t done = 0, cap = n < (1u << 20) ? (n ? n : 1) : (1u << 20);
    uint8_t *dst = malloc(cap);
    while (dst && done < n) {
        if (done == cap) {
            size_t next = cap > n / 2 ? n : cap * 2;
            uint8_t *t = realloc(dst, next);
            if (!t) break;
            dst = t, cap = next;
        }
        unsigned chunk = (unsigned)((cap - done) > (1u << 30) ? (1u << 30) : (cap - done));
        int k = gzread(f, dst + done, chunk);
        if (k <= 0) {
            core_set_error("%s: truncated: %zu of %zu data bytes", path, done, n);
            free(dst);
            return NULL;
        }
        done += (size_t)k;
    }
    if (done < n) {
        core_set_error("%s: out of memory reading %zu data bytes", path, n);
        free(dst);
        return NULL;
    }
    return dst;
}

int idx_load_images(const char *path, IdxImages *out) {
    memset(out, 0, sizeof *out);
    uint32_t d[3];
    gzFile f = open_idx(path, 3, d);
    if (!f) return -1;
    if ((uint64_t)d[0] * d[1] * d[2] > IDX_MAX_BYTES || d[0] > INT32_MAX) {
        core_set_error("%s: %u x %u x %u images is implausibly large (limit %llu bytes)", path, d[0], d[1], d[2],
                       IDX_MAX_BYTES);
        gzclose(f);
        return -1;
    }
    out->pixels = read_body(f, path, (size_t)d[0] * d[1] * d[2]);
    gzclose(f);
    if (!out->pixels) return -1;
    out->n = (int)d[0];
    out->h = (int)d[1];
    out->w = (int)d[2];
    return 0;
}

int idx_load_labels(const char *path, IdxLabels *out) {
    memset(out, 0, sizeof *out);
    uint32_t d[1];
    gzFile f = open_idx(path, 1, d);
    if (!f) return -1;
    out->labels = read_body(f, path, d[0]);
    gzclose(f);
    if (!out->labels) return -1;
    out->n = (int)d[0];
    return 0;
}

void idx_free_images(IdxImages *im) {
    free(im->pixels);
    memset(im, 0, sizeof *im);
}

void idx_free_labels(IdxLabels *lb) {
    free(lb->labels);
    memset(lb, 0, sizeof *lb);
}

int fashion_mnist_load(const char *dir, const char *split, IdxImages *images, IdxLabels *labels) {
    char ip[1024], lp[1024];
    if (!dir) dir = FASHION_MNIST_DIR;
    snprintf(ip, sizeof ip, "%s/%s-images-idx3-ubyte.gz", dir, split);
    snprintf(lp, sizeof lp, "%s/%s-labels-idx1-ubyte.gz", dir, split);
    if (idx_load_images(ip, images) != 0) return -1;
    if (idx_load_labels(lp, labels) != 0) {
        idx_free_images(images);
        return -1;
    }
    if (images->n != labels->n) {
        core_set_error("%s: %d labels for %d images in %s", lp, labels->n, images->n, ip);
        goto fail;
    }
    for (int i = 0; i < labels->n; i++)
        if (labels->labels[i] >= 10) {
            core_set_error("%s: label %d of item %d is not a Fashion-MNIST class (0..9)", lp, labels->labels[i], i);
            goto fail;
        }
    return 0;
fail:
    idx_free_images(images);
    idx_free_labels(labels);
    return -1;
}
