// core/npy.c: single .npy arrays (numpy.save), the exchange format of sample inputs and outputs
// (pmf_sample --noise / --labels / --npy). Everything in the header is a claim: the shape's
// element count is computed in 64 bits with an overflow check and must match the file's size
// exactly, and stay under the caller's limit, before anything is allocated.
#include "core.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NPY_MAX_HEADER 65536

// The text after "'key':" in the header dict, blanks skipped; NULL if absent.
static const char *field(const char *hdr, const char *key) {
    char k[32];
    snprintf(k, sizeof k, "'%s':", key);
    const char *p = strstr(hdr, k);
    if (!p) return NULL;
    p += strlen(k);
    while (*p == ' ') p++;
    return p;
}

static int64_t load_int(const unsigned char *p, int size, int is_signed) {
    uint64_t u = 0;
    for (int i = 0; i < size; i++) u |= (uint64_t)p[i] << (8 * i);
    if (is_signed && size < 8 && (u >> (8 * size - 1)) & 1) u |= ~(uint64_t)0 << (8 * size);   // sign-extend
    return (int64_t)u;
}

// Reads floats as float32 (f32) or, with as_f64, as float64 (f64, and integers are refused).
static int parse(const unsigned char *b, size_t n, const char *path, int64_t max_numel, int as_f64, NpyArray *out) {
    memset(out, 0, sizeof *out);
    if (n < 10 || memcmp(b, "\x93NUMPY", 6)) {
        core_set_error("%s: not an .npy file (no \\x93NUMPY magic)", path);
        return -1;
    }
    size_t hlen, hstart;
    if (b[6] == 1) hlen = (size_t)b[8] | (size_t)b[9] << 8, hstart = 10;
    else if ((b[6] == 2 || b[6] == 3) && n >= 12) hlen = (size_t)load_int(b + 8, 4, 0), hstart = 12;
    else {
        core_set_error("%s: npy format version %d (1, 2 and 3 are read)", path, b[6]);
        return -1;
    }
    if (hlen > NPY_MAX_HEADER || hstart + hlen > n) {
        core_set_error("%s: npy header of %zu bytes does not fit the file (%zu bytes)", path, hlen, n);
        return -1;
    }
    char hdr[NPY_MAX_HEADER + 1];
    memcpy(hdr, b + hstart, hlen);
    hdr[hlen] = 0;
    const char *d = field(hdr, "descr"), *fo = field(hdr, "fortran_order"), *sh = field(hdr, "shape");
    if (!d || !fo || !sh || *d != '\'' || *sh != '(') {
        core_set_error("%s: malformed npy header (descr, fortran_order and shape expected)", path);
        return -1;
    }
    char dt[8] = {0};
    if (sscanf(d, "'%7[^']'", dt) != 1 || strlen(dt) < 3) {
        core_set_error("%s: malformed npy 'descr'", path);
        return -1;
    }
    char order = dt[0], kind = dt[1];
    int esize = atoi(dt + 2);
    int ok = (kind == 'f' && (esize == 4 || esize == 8)) || ((kind == 'i' || kind == 'u') && (esize == 1 || esize == 2 || esize == 4 || esize == 8));
    if (!ok || (order != '<' && order != '|' && !(order == '=' && esize == 1)) || (order == '|' && esize != 1)) {
        core_set_error("%s: npy dtype '%s' (little-endian float32/64 or integers are read)", path, dt);
        return -1;
    }
    if (as_f64 && kind != 'f') {
        core_set_error("%s: npy dtype '%s' (float64 '<f8' or float32 '<f4' is read here)", path, dt);
        return -1;
    }
    memset(out, 0, sizeof *out);
    out->numel = 1;
    for (const char *p = sh + 1;;) {
        while (*p == ' ' || *p == ',') p++;
        if (*p == ')') break;
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || v < 0 || out->ndim == 8) {
            core_set_error("%s: malformed npy shape (at most 8 non-negative sizes)", path);
            return -1;
        }
        if (v && out->numel > INT64_MAX / v) {
            core_set_error("%s: npy shape overflows 64 bits", path);
            return -1;
        }
        out->shape[out->ndim++] = v;
        out->numel *= v;
        p = end;
    }
    if (out->numel > max_numel) {
        core_set_error("%s: %lld elements, more than the limit of %lld", path, (long long)out->numel, (long long)max_numel);
        return -1;
    }
    size_t data = hstart + hlen;
    // by division: numel * esize could wrap past 2^64 when the caller's limit is large
    if ((n - data) % (size_t)esize || (uint64_t)out->numel != (n - data) / (size_t)esize) {
        core_set_error("%s: %zu data bytes for %lld elements of %d bytes", path, n - data, (long long)out->numel, esize);
        return -1;
    }
    const unsigned char *src = b + data;
    int64_t count = out->numel ? out->numel : 1;
    out->kind = as_f64 ? 'd' : kind == 'f' ? 'f' : 'i';
    if (out->kind == 'd') out->f64 = malloc((size_t)count * sizeof(double));
    else if (out->kind == 'f') out->f32 = malloc((size_t)count * sizeof(float));
    else out->i64 = malloc((size_t)count * sizeof(int64_t));
    if (!out->f32 && !out->i64 && !out->f64) {
        core_set_error("%s: out of memory for %lld elements", path, (long long)out->numel);
        return -1;
    }
    int fortran = !strncmp(fo, "True", 4);
    int64_t idx[8] = {0};
    for (int64_t s = 0; s < out->numel; s++) {
        int64_t dst = s;
        if (fortran) {   // storage index s counts the first axis fastest
            dst = 0;
            for (int a = 0; a < out->ndim; a++) dst = dst * out->shape[a] + idx[a];
            for (int a = 0; a < out->ndim; a++) {
                if (++idx[a] < out->shape[a]) break;
                idx[a] = 0;
            }
        }
        const unsigned char *e = src + (size_t)s * esize;
        if (kind == 'f') {
            float v4;
            double v8;
            if (esize == 4) memcpy(&v4, e, 4), v8 = v4;
            else memcpy(&v8, e, 8), v4 = (float)v8;
            if (as_f64) out->f64[dst] = v8;
            else out->f32[dst] = v4;
        } else {
            if (kind == 'u' && esize == 8 && (e[7] & 0x80)) {
                npy_free(out);
                core_set_error("%s: element %lld does not fit int64", path, (long long)s);
                return -1;
            }
            out->i64[dst] = load_int(e, esize, kind == 'i');
        }
    }
    return 0;
}

int npy_parse_bytes(const unsigned char *b, size_t n, const char *label, int64_t max_numel, NpyArray *out) {
    return parse(b, n, label, max_numel, 0, out);
}

int npy_parse_f64(const unsigned char *b, size_t n, const char *label, int64_t max_numel, NpyArray *out) {
    return parse(b, n, label, max_numel, 1, out);
}

int npy_read(const char *path, int64_t max_numel, NpyArray *out) {
    memset(out, 0, sizeof *out);
    // The file may hold at most max_numel 8-byte elements plus a header.
    int64_t cap = max_numel < ((int64_t)1 << 40) ? max_numel : ((int64_t)1 << 40);
    size_t n;
    unsigned char *buf = core_read_file(path, (size_t)cap * 8 + 12 + NPY_MAX_HEADER, &n);
    if (!buf) return -1;
    int rc = npy_parse_bytes(buf, n, path, max_numel, out);
    free(buf);
    return rc;
}

void npy_free(NpyArray *a) {
    free(a->f32), free(a->i64), free(a->f64);
    memset(a, 0, sizeof *a);
}

int npy_header(unsigned char *out, const char *descr, int ndim, const int64_t *shape, int64_t *numel) {
    // 8 sizes of up to 19 digits keep the header under 246 bytes, so magic + header <= 256
    if (ndim < 0 || ndim > 8 || strlen(descr) > 4) core_fatal("npy_header: %d dims of '%s'", ndim, descr);
    char hdr[256];
    *numel = 1;
    int k = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (", descr);
    for (int i = 0; i < ndim; i++) {
        k += snprintf(hdr + k, sizeof hdr - (size_t)k, "%lld%s", (long long)shape[i], ndim == 1 ? "," : (i + 1 < ndim ? ", " : ""));
        *numel *= shape[i];
    }
    k += snprintf(hdr + k, sizeof hdr - (size_t)k, "), }");
    int total = (10 + k + 1 + 63) / 64 * 64;
    while (10 + k + 1 < total) hdr[k++] = ' ';
    hdr[k++] = '\n';
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, (unsigned char)(k & 0xff), (unsigned char)(k >> 8)};
    memcpy(out, pre, 10);
    memcpy(out + 10, hdr, (size_t)k);
    return 10 + k;
}

int npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data) {
    unsigned char hdr[256];
    int64_t numel;
    int h = npy_header(hdr, "<f4", ndim, shape, &numel);
    const void *parts[2] = {hdr, data};
    size_t sizes[2] = {(size_t)h, (size_t)numel * sizeof(float)};
    return core_write_atomic(path, 2, parts, sizes);
}

int npy_writer_open(NpyWriter *w, const char *path, int ndim, const int64_t *shape) {
    unsigned char hdr[256];
    memset(w, 0, sizeof *w);
    int h = npy_header(hdr, "<f4", ndim, shape, &w->numel);
    if (core_atomic_open(&w->file, path)) return -1;
    if (core_atomic_write(&w->file, hdr, (size_t)h)) {
        core_atomic_abort(&w->file);
        return -1;
    }
    return 0;
}

int npy_writer_add(NpyWriter *w, const float *data, int64_t count) {
    if (count < 0 || w->added + count > w->numel) core_fatal("npy_writer_add: %lld + %lld elements for %lld", (long long)w->added, (long long)count, (long long)w->numel);
    w->added += count;
    return core_atomic_write(&w->file, data, (size_t)count * sizeof(float));
}

int npy_writer_finish(NpyWriter *w) {
    if (w->added != w->numel) core_fatal("npy_writer_finish: %lld of %lld elements written", (long long)w->added, (long long)w->numel);
    return core_atomic_commit(&w->file);
}

void npy_writer_abort(NpyWriter *w) { core_atomic_abort(&w->file); }
