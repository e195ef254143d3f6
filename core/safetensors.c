// core/safetensors.c: read and write safetensors files (8-byte little-endian header length, a
// JSON header, then raw little-endian tensor bytes). Every header is validated before any tensor
// is used: a lying or truncated file gives an error naming the file and the field, never a crash.
#include "core.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ST_MAX_HEADER (100u << 20)   // the format's own limit on the JSON header

static const struct {
    const char *name;
    StDtype dtype;
    int size;
} st_dtypes[] = {
    {"F32", ST_F32, 4}, {"F16", ST_F16, 2}, {"BF16", ST_BF16, 2}, {"F64", ST_F64, 8},
    {"I64", ST_I64, 8}, {"I32", ST_I32, 4}, {"U8", ST_U8, 1},
};

static int dtype_size(StDtype d) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dtype == d) return st_dtypes[i].size;
    return 0;
}

static const char *dtype_name(StDtype d) {
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (st_dtypes[i].dtype == d) return st_dtypes[i].name;
    return "?";
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *c = core_malloc(n, "safetensors string");
    memcpy(c, s, n);
    return c;
}

void safetensors_close(SafeTensors *st) {
    for (int i = 0; i < st->n_entries; i++) free(st->entries[i].name);
    for (int i = 0; i < st->n_meta; i++) free(st->meta_keys[i]), free(st->meta_values[i]);
    free(st->entries);
    free(st->meta_keys);
    free(st->meta_values);
    free(st->bytes);
    free(st->path);
    memset(st, 0, sizeof *st);
}

static int cmp_begin(const void *a, const void *b) {
    const StEntry *x = *(const StEntry *const *)a, *y = *(const StEntry *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

static int parse_entry(SafeTensors *st, const char *name, json_object *v, StEntry *e) {
    const char *p = st->path;
    json_object *jd, *js, *jo;
    if (!json_object_is_type(v, json_type_object)) {
        core_set_error("%s: tensor '%s': header entry is not an object", p, name);
        return -1;
    }
    if (!json_object_object_get_ex(v, "dtype", &jd) || !json_object_is_type(jd, json_type_string)) {
        core_set_error("%s: tensor '%s': missing or non-string 'dtype'", p, name);
        return -1;
    }
    const char *ds = json_object_get_string(jd);
    int found = 0;
    for (size_t i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; i++)
        if (strcmp(ds, st_dtypes[i].name) == 0) e->dtype = st_dtypes[i].dtype, found = 1;
    if (!found) {
        core_set_error("%s: tensor '%s': unknown dtype '%.32s' (expected F32, F16, BF16, F64, I64, I32 or U8)", p, name, ds);
        return -1;
    }
    if (!json_object_object_get_ex(v, "shape", &js) || !json_object_is_type(js, json_type_array)) {
        core_set_error("%s: tensor '%s': missing or non-array 'shape'", p, name);
        return -1;
    }
    size_t nd = json_object_array_length(js);
    if (nd > 8) {
        core_set_error("%s: tensor '%s': %zu dimensions (at most 8 supported)", p, name, nd);
        return -1;
    }
    e->ndim = (int)nd;
    e->numel = 1;
    for (size_t i = 0; i < nd; i++) {
        json_object *d = json_object_array_get_idx(js, i);
        if (!json_object_is_type(d, json_type_int)) {
            core_set_error("%s: tensor '%s': shape[%zu] is not an integer", p, name, i);
            return -1;
        }
        int64_t s = json_object_get_int64(d);
        if (s < 0 || s > ((int64_t)1 << 40)) {
            core_set_error("%s: tensor '%s': shape[%zu] = %lld is out of range", p, name, i, (long long)s);
            return -1;
        }
        e->shape[i] = s;
        if (s && e->numel > ((int64_t)1 << 40) / s) {
            core_set_error("%s: tensor '%s': shape has too many elements", p, name);
            return -1;
        }
        e->numel *= s;
    }
    if (!json_object_object_get_ex(v, "data_offsets", &jo) || !json_object_is_type(jo, json_type_array) ||
        json_object_array_length(jo) != 2) {
        core_set_error("%s: tensor '%s': 'data_offsets' must be an array of two integers", p, name);
        return -1;
    }
    json_object *b0 = json_object_array_get_idx(jo, 0), *b1 = json_object_array_get_idx(jo, 1);
    if (!json_object_is_type(b0, json_type_int) || !json_object_is_type(b1, json_type_int)) {
        core_set_error("%s: tensor '%s': 'data_offsets' must be integers", p, name);
        return -1;
    }
    int64_t begin = json_object_get_int64(b0), end = json_object_get_int64(b1);
    uint64_t data_size = st->file_size - st->data_start;
    if (begin < 0 || end < begin || (uint64_t)end > data_size) {
        core_set_error("%s: tensor '%s': data_offsets [%lld, %lld] outside the data section of %llu bytes (file truncated?)",
                       p, name, (long long)begin, (long long)end, (unsigned long long)data_size);
        return -1;
    }
    e->begin = (uint64_t)begin;
    e->end = (uint64_t)end;
    uint64_t expect = (uint64_t)e->numel * (uint64_t)dtype_size(e->dtype);
    if (e->end - e->begin != expect) {
        core_set_error("%s: tensor '%s': %llu bytes in data_offsets, but dtype %s and its shape need %llu",
                       p, name, (unsigned long long)(e->end - e->begin), ds, (unsigned long long)expect);
        return -1;
    }
    e->name = dup_str(name);
    return 0;
}

// Parses the file's bytes in `owned` (malloc'd), which st takes over (freed by safetensors_close,
// also on failure): a file read from disk is held once, not copied.
static int parse_owned(SafeTensors *st, unsigned char *owned, size_t n, const char *label) {
    memset(st, 0, sizeof *st);
    st->path = dup_str(label);
    st->bytes = owned;
    st->file_size = n;
    const char *p = st->path;
    if (n < 8) {
        core_set_error("%s: %zu bytes is too short for a safetensors file (needs an 8-byte header length)", p, n);
        goto fail;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st->bytes[i];
    if (hlen > ST_MAX_HEADER) {
        core_set_error("%s: header length %llu exceeds the 100 MB limit (not a safetensors file?)", p, (unsigned long long)hlen);
        goto fail;
    }
    if (hlen > n - 8) {
        core_set_error("%s: header length %llu runs past the end of the %zu-byte file (truncated?)", p, (unsigned long long)hlen, n);
        goto fail;
    }
    st->data_start = 8 + (size_t)hlen;
    json_tokener *tok = json_tokener_new();
    json_object *root = json_tokener_parse_ex(tok, (const char *)st->bytes + 8, (int)hlen);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t consumed = json_tokener_get_parse_end(tok);
    json_tokener_free(tok);
    if (jerr != json_tokener_success) {
        // json-c reports a header that ends mid-value as "continue"; say what that means.
        core_set_error("%s: header is not valid JSON (%s)", p,
                       jerr == json_tokener_continue ? "incomplete or unterminated value" : json_tokener_error_desc(jerr));
        if (root) json_object_put(root);
        goto fail;
    }
    if (!root) {   // the JSON literal null
        core_set_error("%s: header JSON is not an object", p);
        goto fail;
    }
    // Only trailing spaces may follow the JSON (the format pads the header with them).
    for (size_t i = consumed; i < hlen; i++)
        if (st->bytes[8 + i] != ' ') {
            core_set_error("%s: header has bytes after its JSON object", p);
            json_object_put(root);
            goto fail;
        }
    if (!json_object_is_type(root, json_type_object)) {
        core_set_error("%s: header JSON is not an object", p);
        json_object_put(root);
        goto fail;
    }
    int count = json_object_object_length(root);
    st->entries = core_calloc((size_t)count + 1, sizeof(StEntry), "safetensors entries");
    json_object_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            if (!json_object_is_type(val, json_type_object)) {
                core_set_error("%s: '__metadata__' is not an object", p);
                json_object_put(root);
                goto fail;
            }
            int m = json_object_object_length(val);
            st->meta_keys = core_calloc((size_t)m + 1, sizeof(char *), "metadata");
            st->meta_values = core_calloc((size_t)m + 1, sizeof(char *), "metadata");
            json_object_object_foreach(val, mk, mv) {
                if (!json_object_is_type(mv, json_type_string)) {
                    core_set_error("%s: metadata value '%s' is not a string", p, mk);
                    json_object_put(root);
                    goto fail;
                }
                st->meta_keys[st->n_meta] = dup_str(mk);
                st->meta_values[st->n_meta++] = dup_str(json_object_get_string(mv));
            }
            continue;
        }
        if (parse_entry(st, key, val, &st->entries[st->n_entries]) != 0) {
            json_object_put(root);
            goto fail;
        }
        st->n_entries++;
    }
    json_object_put(root);
    // No two tensors may share bytes.
    if (st->n_entries > 1) {
        StEntry **order = core_malloc((size_t)st->n_entries * sizeof *order, "safetensors order");
        for (int i = 0; i < st->n_entries; i++) order[i] = &st->entries[i];
        qsort(order, (size_t)st->n_entries, sizeof *order, cmp_begin);
        // Compare each tensor with the furthest-reaching one before it, not just its neighbour: an
        // empty tensor sorted between two overlapping ones must not hide the overlap.
        const StEntry *reach = NULL;
        for (int i = 0; i < st->n_entries; i++) {
            const StEntry *e = order[i];
            if (e->end == e->begin) continue;   // empty tensors own no bytes
            if (reach && e->begin < reach->end) {
                core_set_error("%s: tensors '%s' and '%s' overlap in the data section", p, reach->name, e->name);
                free(order);
                goto fail;
            }
            if (!reach || e->end > reach->end) reach = e;
        }
        free(order);
    }
    return 0;
fail:;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", core_last_error());
    safetensors_close(st);
    core_set_error("%s", msg);
    return -1;
}

int safetensors_parse(SafeTensors *st, const unsigned char *bytes, size_t n, const char *label) {
    unsigned char *copy = core_malloc(n, "safetensors file");
    if (n) memcpy(copy, bytes, n);
    return parse_owned(st, copy, n, label);
}

int safetensors_open(SafeTensors *st, const char *path) {
    memset(st, 0, sizeof *st);
    size_t n;
    unsigned char *buf = core_read_file(path, SIZE_MAX, &n);
    return buf ? parse_owned(st, buf, n, path) : -1;
}

unsigned char *core_read_file(const char *path, size_t max_bytes, size_t *n_out) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        core_set_error("%s: cannot open (%s)", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        core_set_error("%s: not a regular file", path);
        fclose(f);
        return NULL;
    }
    if ((uint64_t)sb.st_size > (uint64_t)max_bytes) {
        core_set_error("%s: %lld bytes, more than the %zu this file can hold", path, (long long)sb.st_size, max_bytes);
        fclose(f);
        return NULL;
    }
    size_t n = (size_t)sb.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf || (n && fread(buf, 1, n, f) != n)) {
        core_set_error(buf ? "%s: read failed (%s)" : "%s: out of memory reading it (%s)", path, strerror(errno));
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    *n_out = n;
    return buf;
}

const StEntry *safetensors_find(const SafeTensors *st, const char *name) {
    for (int i = 0; i < st->n_entries; i++)
        if (strcmp(st->entries[i].name, name) == 0) return &st->entries[i];
    return NULL;
}

const char *safetensors_meta(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta_keys[i], key) == 0) return st->meta_values[i];
    return NULL;
}

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) bits = sign;
        else {   // subnormal: renormalise
            exp = 127 - 15 + 1;
            while (!(man & 0x400)) man <<= 1, exp--;
            bits = sign | (exp << 23) | ((man & 0x3ff) << 13);
        }
    } else if (exp == 31) bits = sign | 0x7f800000u | (man << 13);
    else bits = sign | ((exp - 15 + 127) << 23) | (man << 13);
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int safetensors_read_f32(const SafeTensors *st, const char *name, int ndim, const int *shape, float *dst) {
    const StEntry *e = safetensors_find(st, name);
    if (!e) {
        core_set_error("%s: no tensor named '%s'", st->path, name);
        return -1;
    }
    int ok = e->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = e->shape[i] == shape[i];
    if (!ok) {
        char want[128], got[128];
        size_t k = 0;
        want[0] = got[0] = 0;
        // k < size: snprintf returns the length it wanted, so an overlong shape must stop the loop.
        for (int i = 0; i < ndim && k < sizeof want; i++)
            k += (size_t)snprintf(want + k, sizeof want - k, i ? ", %d" : "%d", shape[i]);
        k = 0;
        for (int i = 0; i < e->ndim && k < sizeof got; i++)
            k += (size_t)snprintf(got + k, sizeof got - k, i ? ", %lld" : "%lld", (long long)e->shape[i]);
        core_set_error("%s: tensor '%s' has shape (%s), expected (%s)", st->path, name, got, want);
        return -1;
    }
    const unsigned char *src = st->bytes + st->data_start + e->begin;
    switch (e->dtype) {
    case ST_F32: memcpy(dst, src, (size_t)e->numel * 4); break;
    case ST_F16:
        for (int64_t i = 0; i < e->numel; i++) dst[i] = half_to_float((uint16_t)(src[2 * i] | (src[2 * i + 1] << 8)));
        break;
    case ST_BF16:
        for (int64_t i = 0; i < e->numel; i++) {
            uint32_t bits = (uint32_t)(src[2 * i] | (src[2 * i + 1] << 8)) << 16;
            memcpy(&dst[i], &bits, 4);
        }
        break;
    case ST_F64:
        for (int64_t i = 0; i < e->numel; i++) {
            double d;
            memcpy(&d, src + 8 * i, 8);
            dst[i] = (float)d;
        }
        break;
    default:
        core_set_error("%s: tensor '%s' has dtype %s, expected a floating type", st->path, name, dtype_name(e->dtype));
        return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Writer

typedef struct {
    char *name;
    int ndim, shape[8];
    const float *data;
    int64_t numel;
} StItem;

struct StWriter {
    StItem *items;
    int n, cap;
    json_object *meta;
};

StWriter *st_writer_new(void) {
    StWriter *w = core_calloc(1, sizeof *w, "safetensors writer");
    w->meta = json_object_new_object();
    return w;
}

void st_writer_add(StWriter *w, const char *name, int ndim, const int *shape, const float *data) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 16;
        w->items = realloc(w->items, (size_t)w->cap * sizeof *w->items);
        if (!w->items) core_fatal("safetensors writer: out of memory");
    }
    StItem *it = &w->items[w->n++];
    it->name = dup_str(name);
    it->ndim = ndim;
    it->numel = 1;
    for (int i = 0; i < ndim; i++) it->shape[i] = shape[i], it->numel *= shape[i];
    it->data = data;
}

void st_writer_add_tensor(StWriter *w, const Tensor *t) {
    tensor_require_contiguous(t, "st_writer_add_tensor");
    st_writer_add(w, t->name, t->ndim, t->shape, t->data);
}

void st_writer_meta(StWriter *w, const char *key, const char *value) {
    json_object_object_add(w->meta, key, json_object_new_string(value));
}

static int write_all(int fd, const void *buf, size_t n) {
    const char *p = buf;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

int st_writer_save(StWriter *w, const char *path) {
    json_object *root = json_object_new_object();
    if (json_object_object_length(w->meta) > 0) json_object_object_add(root, "__metadata__", json_object_get(w->meta));
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        StItem *it = &w->items[i];
        json_object *e = json_object_new_object(), *shape = json_object_new_array(), *offs = json_object_new_array();
        json_object_object_add(e, "dtype", json_object_new_string("F32"));
        for (int d = 0; d < it->ndim; d++) json_object_array_add(shape, json_object_new_int64(it->shape[d]));
        json_object_object_add(e, "shape", shape);
        json_object_array_add(offs, json_object_new_int64((int64_t)off));
        off += (uint64_t)it->numel * 4;
        json_object_array_add(offs, json_object_new_int64((int64_t)off));
        json_object_object_add(e, "data_offsets", offs);
        json_object_object_add(root, it->name, e);
    }
    const char *js = json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN);
    size_t jl = strlen(js), padded = (jl + 7) & ~(size_t)7;   // keep tensor data 8-byte aligned
    char *header = core_malloc(padded, "safetensors header");
    memcpy(header, js, jl);
    memset(header + jl, ' ', padded - jl);
    json_object_put(root);

    int n_parts = 2 + w->n;
    const void **parts = core_malloc((size_t)n_parts * sizeof *parts, "safetensors parts");
    size_t *sizes = core_malloc((size_t)n_parts * sizeof *sizes, "safetensors parts");
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)padded >> (8 * i));
    parts[0] = len8, sizes[0] = 8, parts[1] = header, sizes[1] = padded;
    for (int i = 0; i < w->n; i++) parts[2 + i] = w->items[i].data, sizes[2 + i] = (size_t)w->items[i].numel * 4;
    int rc = core_write_atomic(path, n_parts, parts, sizes);
    free(parts), free(sizes), free(header);
    return rc;
}

int core_atomic_open(CoreAtomicFile *f, const char *path) {
    size_t plen = strlen(path);
    f->path = dup_str(path);
    f->tmp = core_malloc(plen + 5, "temp path");
    memcpy(f->tmp, path, plen);
    memcpy(f->tmp + plen, ".tmp", 5);
    f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (f->fd < 0) {
        core_set_error("%s: cannot create (%s)", f->tmp, strerror(errno));
        free(f->tmp), free(f->path);
        f->tmp = f->path = NULL;
        return -1;
    }
    return 0;
}

int core_atomic_write(CoreAtomicFile *f, const void *buf, size_t n) {
    if (write_all(f->fd, buf, n)) {
        core_set_error("%s: write failed (%s)", f->tmp, strerror(errno));
        return -1;
    }
    return 0;
}

void core_atomic_abort(CoreAtomicFile *f) {
    if (!f->tmp) return;
    close(f->fd);
    unlink(f->tmp);
    free(f->tmp), free(f->path);
    f->tmp = f->path = NULL;
}

int core_atomic_commit(CoreAtomicFile *f) {
    if (fsync(f->fd)) {
        core_set_error("%s: write failed (%s)", f->tmp, strerror(errno));
        core_atomic_abort(f);
        return -1;
    }
    close(f->fd);
    if (rename(f->tmp, f->path) != 0) {
        core_set_error("%s: cannot rename to %s (%s)", f->tmp, f->path, strerror(errno));
        unlink(f->tmp);
        free(f->tmp), free(f->path);
        f->tmp = f->path = NULL;
        return -1;
    }
    // fsync the folder so the rename itself survives a crash.
    int dfd = open(dirname(f->path), O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    free(f->tmp), free(f->path);
    f->tmp = f->path = NULL;
    return 0;
}

int core_write_atomic(const char *path, int n_parts, const void *const *parts, const size_t *sizes) {
    CoreAtomicFile f;
    if (core_atomic_open(&f, path)) return -1;
    for (int i = 0; i < n_parts; i++)
        if (core_atomic_write(&f, parts[i], sizes[i])) {
            core_atomic_abort(&f);
            return -1;
        }
    return core_atomic_commit(&f);
}

void st_writer_free(StWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) free(w->items[i].name);
    free(w->items);
    json_object_put(w->meta);
    free(w);
}
