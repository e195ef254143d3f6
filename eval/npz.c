// eval/npz.c: .npz files (numpy.savez / savez_compressed) read and written without numpy: a zip
// archive of .npy members. Reads go through the central directory (the sizes in numpy's local
// headers may be zip64 placeholders), so stored, deflated and zip64 archives all work; deflate is
// zlib's raw inflate. Each member is an .npy file, parsed (and its header written) by core/npy.c.
// Writes are stored members with npy 1.0 headers, which numpy.load reads.
// Not here: anything but float arrays (an ADM batch's uint8 'arr_0' is skipped, never read).
#include "eval.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

// Sizes in an archive are claims. They are checked against the file's real size and these limits
// before anything is allocated. Inception's sigma is 2048^2 doubles (32 MiB); 2^31 elements
// (16 GiB of doubles) leaves room for any statistics file and keeps every product below 2^63.
#define NPZ_MAX_MEMBER_BYTES ((uint64_t)1 << 34)
#define NPZ_MAX_ELEMENTS ((int64_t)1 << 31)
// Deflate expands at most 1032:1 (a 258-byte match per 2 bits, plus block headers).
#define NPZ_MAX_INFLATE_RATIO 1032

static uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t rd32(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint64_t rd64(const unsigned char *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

static int read_at(FILE *f, int64_t off, void *buf, size_t n) {
    if (fseeko(f, (off_t)off, SEEK_SET) != 0) return -1;
    return fread(buf, 1, n, f) == n ? 0 : -1;
}

// One member found in the central directory.
typedef struct {
    uint16_t method;
    uint32_t crc;
    uint64_t csize, usize, local_off;
} ZipMember;

// Locates the central directory (zip64 aware): its offset, size and entry count.
static int zip_directory(FILE *f, const char *path, uint64_t *cd_off, uint64_t *cd_size, uint64_t *n_entries) {
    if (fseeko(f, 0, SEEK_END) != 0) return -1;
    int64_t fsize = (int64_t)ftello(f);
    int64_t tail = fsize < 65557 ? fsize : 65557;   // 22-byte EOCD + at most 65535 bytes of comment
    if (tail < 22) {
        core_set_error("npz: '%s' is too short to be a zip archive (%lld bytes)", path, (long long)fsize);
        return -1;
    }
    unsigned char *buf = malloc((size_t)tail);
    if (!buf || read_at(f, fsize - tail, buf, (size_t)tail)) {
        free(buf);
        core_set_error("npz: cannot read '%s'", path);
        return -1;
    }
    int64_t e = -1;
    for (int64_t i = tail - 22; i >= 0; i--)
        if (rd32(buf + i) == 0x06054b50u) {
            e = i;
            break;
        }
    if (e < 0) {
        free(buf);
        core_set_error("npz: '%s' is not a zip archive (no end-of-central-directory record)", path);
        return -1;
    }
    const unsigned char *p = buf + e;
    *n_entries = rd16(p + 10);
    *cd_size = rd32(p + 12);
    *cd_off = rd32(p + 16);
    int zip64 = *n_entries == 0xFFFF || *cd_size == 0xFFFFFFFFu || *cd_off == 0xFFFFFFFFu;
    int64_t eocd_pos = fsize - tail + e;
    free(buf);
    if (zip64) {
        unsigned char loc[20], rec[56];
        if (eocd_pos < 20 || read_at(f, eocd_pos - 20, loc, 20) || rd32(loc) != 0x07064b50u ||
            read_at(f, (int64_t)rd64(loc + 8), rec, 56) || rd32(rec) != 0x06064b50u) {
            core_set_error("npz: '%s' has a damaged zip64 end record", path);
            return -1;
        }
        *n_entries = rd64(rec + 32);
        *cd_size = rd64(rec + 40);
        *cd_off = rd64(rec + 48);
    }
    if (*cd_off > (uint64_t)fsize || *cd_size > (uint64_t)fsize - *cd_off) {
        core_set_error("npz: '%s' has a central directory past its end", path);
        return -1;
    }
    return 0;
}

// Finds "<name>.npy" (or exactly `name`). 1 found, 0 absent, -1 bad archive.
static int zip_find(FILE *f, const char *path, const char *name, ZipMember *m) {
    uint64_t cd_off, cd_size, n;
    if (zip_directory(f, path, &cd_off, &cd_size, &n)) return -1;
    if (cd_size > ((uint64_t)1 << 31)) {
        core_set_error("npz: '%s' has an implausible central directory (%llu bytes)", path, (unsigned long long)cd_size);
        return -1;
    }
    unsigned char *cd = malloc(cd_size ? cd_size : 1);
    if (!cd || read_at(f, (int64_t)cd_off, cd, cd_size)) {
        free(cd);
        core_set_error("npz: cannot read the central directory of '%s'", path);
        return -1;
    }
    char want[512];
    snprintf(want, sizeof want, "%s.npy", name);
    int found = 0;
    size_t pos = 0;
    for (uint64_t k = 0; k < n && !found; k++) {
        if (pos + 46 > cd_size || rd32(cd + pos) != 0x02014b50u) {
            free(cd);
            core_set_error("npz: '%s' has a damaged central directory entry %llu", path, (unsigned long long)k);
            return -1;
        }
        const unsigned char *p = cd + pos;
        size_t nlen = rd16(p + 28), xlen = rd16(p + 30), clen = rd16(p + 32);
        if (pos + 46 + nlen + xlen + clen > cd_size) {
            free(cd);
            core_set_error("npz: '%s' has a truncated central directory", path);
            return -1;
        }
        const char *fname = (const char *)p + 46;
        int match = (nlen == strlen(want) && !memcmp(fname, want, nlen)) ||
                    (nlen == strlen(name) && !memcmp(fname, name, nlen));
        if (match) {
            m->method = rd16(p + 10);
            m->crc = rd32(p + 16);
            m->csize = rd32(p + 20);
            m->usize = rd32(p + 24);
            m->local_off = rd32(p + 42);
            // zip64 extra field: the 64-bit values present for each 0xFFFFFFFF above, in this order
            const unsigned char *x = p + 46 + nlen, *xe = x + xlen;
            while (x + 4 <= xe) {
                uint16_t id = rd16(x), sz = rd16(x + 2);
                if (x + 4 + sz > xe) break;
                if (id == 0x0001) {
                    const unsigned char *q = x + 4, *qe = q + sz;
                    if (m->usize == 0xFFFFFFFFu && q + 8 <= qe) m->usize = rd64(q), q += 8;
                    if (m->csize == 0xFFFFFFFFu && q + 8 <= qe) m->csize = rd64(q), q += 8;
                    if (m->local_off == 0xFFFFFFFFu && q + 8 <= qe) m->local_off = rd64(q), q += 8;
                }
                x += 4 + sz;
            }
            found = 1;
        }
        pos += 46 + nlen + xlen + clen;
    }
    free(cd);
    return found;
}

// The member's uncompressed bytes (malloc'd), CRC-checked.
static unsigned char *zip_extract(FILE *f, const char *path, const char *name, const ZipMember *m) {
    unsigned char lh[30];
    if (fseeko(f, 0, SEEK_END) != 0) {
        core_set_error("npz: cannot seek in '%s'", path);
        return NULL;
    }
    uint64_t fsize = (uint64_t)ftello(f);
    if (m->local_off > fsize || read_at(f, (int64_t)m->local_off, lh, 30) || rd32(lh) != 0x04034b50u) {
        core_set_error("npz: '%s': member '%s' has a damaged local header", path, name);
        return NULL;
    }
    uint64_t data_off = m->local_off + 30 + rd16(lh + 26) + rd16(lh + 28);
    if (m->method != 0 && m->method != 8) {
        core_set_error("npz: '%s': member '%s' uses zip method %d (only stored and deflated are read)", path, name,
                       m->method);
        return NULL;
    }
    // Both sizes are claims: the compressed bytes must lie inside the file, and the uncompressed
    // size must be one that many compressed bytes can produce, under the stated limit.
    if (data_off > fsize || m->csize > fsize - data_off) {
        core_set_error("npz: '%s': member '%s' claims %llu compressed bytes at offset %llu, past the file's end (%llu "
                       "bytes)", path, name, (unsigned long long)m->csize, (unsigned long long)data_off,
                       (unsigned long long)fsize);
        return NULL;
    }
    uint64_t max_usize = m->method == 0 ? m->csize : m->csize * NPZ_MAX_INFLATE_RATIO + 64;
    if (m->usize > max_usize || m->usize > NPZ_MAX_MEMBER_BYTES) {
        core_set_error("npz: '%s': member '%s' claims %llu uncompressed bytes from %llu compressed (at most %llu, "
                       "limit %llu)", path, name, (unsigned long long)m->usize, (unsigned long long)m->csize,
                       (unsigned long long)max_usize, (unsigned long long)NPZ_MAX_MEMBER_BYTES);
        return NULL;
    }
    unsigned char *comp = malloc(m->csize ? m->csize : 1), *out = malloc(m->usize ? m->usize : 1);
    if (!comp || !out) {
        free(comp), free(out);
        core_set_error("npz: '%s': out of memory for member '%s' (%llu bytes)", path, name,
                       (unsigned long long)m->usize);
        return NULL;
    }
    if (read_at(f, (int64_t)data_off, comp, m->csize)) {
        free(comp), free(out);
        core_set_error("npz: '%s': cannot read member '%s' (%llu bytes)", path, name, (unsigned long long)m->csize);
        return NULL;
    }
    if (m->method == 0) {
        if (m->csize != m->usize) {
            free(comp), free(out);
            core_set_error("npz: '%s': stored member '%s' has differing sizes", path, name);
            return NULL;
        }
        memcpy(out, comp, m->usize);
    } else {
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        int zrc = inflateInit2(&zs, -MAX_WBITS);   // raw deflate: zip members carry no zlib header
        uint64_t done_in = 0, done_out = 0;
        while (zrc == Z_OK) {
            uint64_t in_left = m->csize - done_in, out_left = m->usize - done_out;
            zs.next_in = comp + done_in;
            zs.avail_in = (uInt)(in_left > 0x40000000u ? 0x40000000u : in_left);
            zs.next_out = out + done_out;
            zs.avail_out = (uInt)(out_left > 0x40000000u ? 0x40000000u : out_left);
            uInt ai = zs.avail_in, ao = zs.avail_out;
            zrc = inflate(&zs, Z_NO_FLUSH);
            done_in += ai - zs.avail_in;
            done_out += ao - zs.avail_out;
            if (zrc == Z_OK && ai == zs.avail_in && ao == zs.avail_out) zrc = Z_BUF_ERROR;   // no progress
        }
        inflateEnd(&zs);
        if (zrc != Z_STREAM_END || done_out != m->usize) {
            free(comp), free(out);
            core_set_error("npz: '%s': member '%s' does not inflate (zlib %d, %llu of %llu bytes)", path, name, zrc,
                           (unsigned long long)done_out, (unsigned long long)m->usize);
            return NULL;
        }
    }
    free(comp);
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint64_t off = 0; off < m->usize; off += 0x40000000u) {
        uint64_t len = m->usize - off > 0x40000000u ? 0x40000000u : m->usize - off;
        crc = crc32(crc, out + off, (uInt)len);
    }
    if ((uint32_t)crc != m->crc) {
        free(out);
        core_set_error("npz: '%s': member '%s' fails its CRC check", path, name);
        return NULL;
    }
    return out;
}

// Opens the archive and looks `name` up: 1 found (with *keep the still open file, if asked), 0
// absent, -1 bad archive or no file.
static int find_member(const char *path, const char *name, ZipMember *m, FILE **keep) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        core_set_error("npz: cannot open '%s': %s", path, strerror(errno));
        return -1;
    }
    int rc = zip_find(f, path, name, m);
    if (rc == 1 && keep) *keep = f;
    else fclose(f);
    return rc;
}

int npz_read(const char *path, const char *name, NpzArray *out) {
    memset(out, 0, sizeof *out);
    ZipMember m;
    FILE *f = NULL;
    int rc = find_member(path, name, &m, &f);
    if (rc == 0) core_set_error("npz: '%s' has no array '%s'", path, name);
    if (rc != 1) return -1;
    unsigned char *bytes = zip_extract(f, path, name, &m);
    fclose(f);
    if (!bytes) return -1;
    // The member is an .npy file: core's one parser reads it, with the same size checks.
    char label[4200];
    snprintf(label, sizeof label, "npz: '%s': member '%s'", path, name);
    NpyArray a;
    rc = npy_parse_f64(bytes, m.usize, label, NPZ_MAX_ELEMENTS, &a);
    free(bytes);
    if (rc) return -1;
    out->ndim = a.ndim;
    memcpy(out->shape, a.shape, sizeof out->shape);
    out->numel = a.numel;
    out->data = a.f64;
    return 0;
}

int npz_has(const char *path, const char *name) {
    ZipMember m;
    return find_member(path, name, &m, NULL);
}

void npz_array_free(NpzArray *a) {
    free(a->data);
    a->data = NULL;
}

// ---------------------------------------------------------------------------------------------
// Writing

static void wr16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8); }
static void wr32(unsigned char *p, uint32_t v) { wr16(p, (uint16_t)v), wr16(p + 2, (uint16_t)(v >> 16)); }

int npz_write(const char *path, const NpzMember *members, int n) {
    CoreAtomicFile f;   // path.tmp, fsynced and renamed over path by the commit
    if (core_atomic_open(&f, path)) return -1;
    uint32_t *crcs = calloc((size_t)n, sizeof *crcs), *sizes = calloc((size_t)n, sizeof *sizes),
             *offs = calloc((size_t)n, sizeof *offs);
    int ok = crcs && sizes && offs;
    uint64_t pos = 0;
    for (int i = 0; i < n && ok; i++) {
        const NpzMember *m = &members[i];
        int64_t numel;
        unsigned char hdr[256];
        size_t hl = (size_t)npy_header(hdr, "<f8", m->ndim, m->shape, &numel);
        uint64_t usize = hl + (uint64_t)numel * 8;
        if (pos + usize + 1000 > 0xFFFFFFF0u) {
            core_set_error("npz: '%s' would need zip64 (over 4 GiB); not supported for writing", path);
            ok = 0;
            break;
        }
        uLong crc = crc32(0L, Z_NULL, 0);
        crc = crc32(crc, hdr, (uInt)hl);
        crc = crc32(crc, (const unsigned char *)m->data, (uInt)(numel * 8));
        char fname[300];
        int nl = snprintf(fname, sizeof fname, "%s.npy", m->name);
        unsigned char lh[30];
        wr32(lh, 0x04034b50u);
        wr16(lh + 4, 20), wr16(lh + 6, 0), wr16(lh + 8, 0);   // version, flags, method stored
        wr16(lh + 10, 0), wr16(lh + 12, (0 << 9) | (1 << 5) | 1);   // 00:00, 1980-01-01
        wr32(lh + 14, (uint32_t)crc), wr32(lh + 18, (uint32_t)usize), wr32(lh + 22, (uint32_t)usize);
        wr16(lh + 26, (uint16_t)nl), wr16(lh + 28, 0);
        offs[i] = (uint32_t)pos, crcs[i] = (uint32_t)crc, sizes[i] = (uint32_t)usize;
        ok = !core_atomic_write(&f, lh, 30) && !core_atomic_write(&f, fname, (size_t)nl) &&
             !core_atomic_write(&f, hdr, hl) && !core_atomic_write(&f, m->data, (size_t)numel * 8);
        pos += 30 + (uint64_t)nl + usize;
    }
    uint64_t cd_start = pos;
    for (int i = 0; i < n && ok; i++) {
        char fname[300];
        int nl = snprintf(fname, sizeof fname, "%s.npy", members[i].name);
        unsigned char ch[46];
        memset(ch, 0, sizeof ch);
        wr32(ch, 0x02014b50u);
        wr16(ch + 4, 20), wr16(ch + 6, 20);
        wr16(ch + 14, (0 << 9) | (1 << 5) | 1);
        wr32(ch + 16, crcs[i]), wr32(ch + 20, sizes[i]), wr32(ch + 24, sizes[i]);
        wr16(ch + 28, (uint16_t)nl);
        wr32(ch + 38, 0600u << 16);   // external attributes: a regular file, rw-------
        wr32(ch + 42, offs[i]);
        ok = !core_atomic_write(&f, ch, 46) && !core_atomic_write(&f, fname, (size_t)nl);
        pos += 46 + (uint64_t)nl;
    }
    if (ok) {
        unsigned char e[22];
        memset(e, 0, sizeof e);
        wr32(e, 0x06054b50u);
        wr16(e + 8, (uint16_t)n), wr16(e + 10, (uint16_t)n);
        wr32(e + 12, (uint32_t)(pos - cd_start)), wr32(e + 16, (uint32_t)cd_start);
        ok = !core_atomic_write(&f, e, 22);
    }
    if (!crcs || !sizes || !offs) core_set_error("npz: out of memory writing '%s'", path);
    free(crcs), free(sizes), free(offs);
    if (!ok) {
        core_atomic_abort(&f);
        return -1;
    }
    return core_atomic_commit(&f);
}

// ---------------------------------------------------------------------------------------------
// Statistics files

int eval_stats_load_npz(const char *path, EvalStats *s) {
    memset(s, 0, sizeof *s);
    const char *kmu = "mu", *ksig = "sigma";
    int has = npz_has(path, "mu");
    if (has < 0) return -1;
    if (!has && npz_has(path, "ref_mu") == 1) kmu = "ref_mu", ksig = "ref_sigma";
    NpzArray mu, sig;
    if (npz_read(path, kmu, &mu)) return -1;
    if (npz_read(path, ksig, &sig)) {
        npz_array_free(&mu);
        return -1;
    }
    int rc = 0;
    if (mu.ndim != 1 || sig.ndim != 2 || sig.shape[0] != mu.shape[0] || sig.shape[1] != mu.shape[0]) {
        core_set_error("npz: '%s': '%s' must be (d) and '%s' (d, d); got %d-d and %d-d arrays", path, kmu, ksig,
                       mu.ndim, sig.ndim);
        rc = -1;
    } else {
        s->dim = (int)mu.shape[0];
        s->mu = mu.data, s->sigma = sig.data;
        mu.data = sig.data = NULL;
    }
    npz_array_free(&mu), npz_array_free(&sig);
    return rc;
}

int eval_stats_save_npz(const char *path, const EvalStats *s) {
    int64_t d = s->dim, shm[1] = {d}, shs[2] = {d, d};
    NpzMember m[2] = {{"mu", 1, shm, s->mu}, {"sigma", 2, shs, s->sigma}};
    return npz_write(path, m, 2);
}
