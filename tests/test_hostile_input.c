// tests/test_hostile_input.c: regression tests for issue 19's defects in the readers of a user's
// files. Each input is a small crafted file whose header claims far more than it holds; each test
// failed (crashed, aborted, or was refused for the wrong reason) before its fix:
// - npz: an element count that overflows (heap overflow), the same with Fortran order (second
//   out-of-bounds write), and a member whose sizes claim more than the file holds (allocated
//   before the check);
// - the training config writer: a string with a quote (and other special characters) written
//   without escaping, so the run's own config.yaml did not load back;
// - PNG: a tiny file claiming a 2 GB text chunk (libpng allocated the claimed length);
// - pmf_lpips: a PNG header of 1e6 x 1e6 pixels (unchecked malloc, then a NULL offset);
// - idx: a 16-byte file claiming 16 GB of pixels (allocated from the header);
// - HDF5 shard: a small shard claiming 2^36 images (core_malloc of 256 GB aborted the process);
//   and pmf_prepare --verify, which checks each shard in a child process.
// The allocation tests run in a child under RLIMIT_AS (except under ASan, which reserves far more
// address space than any limit we could set), so an allocation sized from a claim makes the old
// code abort there, while the fixed reader returns an error naming the file.
#include "harness.h"

#include <hdf5.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include "dataset/dataset.h"
#include "eval/eval.h"
#include "pmf/pmf.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

static void tmp_path(char *buf, size_t n, const char *stem) {
    snprintf(buf, n, "/tmp/pmf_hostile_%d_%s", (int)getpid(), stem);
}

static void write_bytes(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    ck_assert(fwrite(b, 1, n, f) == n);
    fclose(f);
}

// Runs fn(arg) in a child whose address space is limited to 2 GiB (no limit under ASan). Returns
// the child's exit status: fn's return value, or 128 + signal when it died (an abort).
static int in_limited_child(int (*fn)(const char *), const char *arg) {
    fflush(stdout);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (!UNDER_ASAN) {
            struct rlimit rl = {(rlim_t)2 << 30, (rlim_t)2 << 30};
            setrlimit(RLIMIT_AS, &rl);
        }
        int rc = fn(arg);
        fflush(stdout);
        _exit(rc);
    }
    int st;
    ck_assert(waitpid(pid, &st, 0) == pid);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// ---------------------------------------------------------------------------------------------
// npz

static void put16(unsigned char *p, unsigned v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8); }
static void put32(unsigned char *p, uint32_t v) { put16(p, v & 0xFFFF), put16(p + 2, v >> 16); }

// A zip with one stored member `name` holding `data`. The central directory states the sizes
// csize and usize (0: the real size) and the method.
static void write_zip(const char *path, const char *name, const unsigned char *data, uint32_t n, uint32_t csize,
                      uint32_t usize, unsigned method) {
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), data, n);
    size_t nl = strlen(name);
    unsigned char lh[30] = {0}, ch[46] = {0}, e[22] = {0};
    put32(lh, 0x04034b50u), put16(lh + 4, 20), put16(lh + 8, method), put32(lh + 14, crc);
    put32(lh + 18, n), put32(lh + 22, n), put16(lh + 26, (unsigned)nl);
    put32(ch, 0x02014b50u), put16(ch + 4, 20), put16(ch + 6, 20), put16(ch + 10, method), put32(ch + 16, crc);
    put32(ch + 20, csize ? csize : n), put32(ch + 24, usize ? usize : n), put16(ch + 28, (unsigned)nl);
    put32(e, 0x06054b50u), put16(e + 8, 1), put16(e + 10, 1), put32(e + 12, (uint32_t)(46 + nl));
    put32(e + 16, (uint32_t)(30 + nl + n));
    FILE *f = fopen(path, "wb");
    ck_assert(f != NULL);
    fwrite(lh, 1, 30, f), fwrite(name, 1, nl, f), fwrite(data, 1, n, f);
    fwrite(ch, 1, 46, f), fwrite(name, 1, nl, f), fwrite(e, 1, 22, f);
    fclose(f);
}

// An npy 1.0 member: header dict `dict`, then n_data bytes of 0x3f.
static uint32_t npy_bytes(unsigned char *b, const char *dict, uint32_t n_data) {
    size_t dl = strlen(dict), total = (10 + dl + 1 + 63) / 64 * 64;
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    put16(b + 8, (unsigned)(total - 10));
    memcpy(b + 10, dict, dl);
    memset(b + 10 + dl, ' ', total - 10 - dl - 1);
    b[total - 1] = '\n';
    memset(b + total, 0x3f, n_data);
    return (uint32_t)(total + n_data);
}

static void check_npz_refused(const char *stem, const char *dict, uint32_t n_data) {
    char path[256];
    tmp_path(path, sizeof path, stem);
    unsigned char b[512];
    uint32_t n = npy_bytes(b, dict, n_data);
    write_zip(path, "mu.npy", b, n, 0, 0, 0);
    NpzArray a;
    int rc = npz_read(path, "mu", &a);
    printf("%s: %s\n", stem, core_last_error());
    ck_assert_msg(rc == -1, "%s: a shape that overflows was accepted", stem);
    ck_assert_msg(strstr(core_last_error(), path) != NULL, "message does not name the file: %s", core_last_error());
    EvalStats s;
    ck_assert(eval_stats_load_npz(path, &s) == -1);
    unlink(path);
}

// (2^61 + 1,) doubles: 8 * (2^61 + 1) wraps to 8, so the old size check passed with 8 data bytes
// and the copy loop wrote far past malloc(8).
START_TEST(npz_element_count_overflow) {
    check_npz_refused("overflow.npz", "{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693953,), }", 8);
}
END_TEST

// (2^62 + 1, 4) in Fortran order: the count wraps to 4 (32 bytes) and the reordering wrote C index
// 4 * i into a 4-element array.
START_TEST(npz_fortran_order_overflow) {
    check_npz_refused("fortran.npz", "{'descr': '<f8', 'fortran_order': True, 'shape': (4611686018427387905, 4), }",
                      32);
}
END_TEST

// A legal shape in Fortran order still reads (the overflow checks refuse nothing real).
START_TEST(npz_fortran_order_ok) {
    char path[256];
    tmp_path(path, sizeof path, "fortran_ok.npz");
    unsigned char b[512];
    uint32_t n = npy_bytes(b, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 3), }", 0);
    double v[6] = {0, 3, 1, 4, 2, 5};   // F order of [[0, 1, 2], [3, 4, 5]]
    memcpy(b + n, v, sizeof v);
    write_zip(path, "x.npy", b, n + (uint32_t)sizeof v, 0, 0, 0);
    NpzArray a;
    ck_assert_msg(npz_read(path, "x", &a) == 0, "%s", core_last_error());
    ck_assert(a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3);
    for (int i = 0; i < 6; i++) ck_assert(a.data[i] == i);
    npz_array_free(&a);
    unlink(path);
}
END_TEST

// (2^62 + 1,) float32 under a caller's limit of INT64_MAX: 4 * (2^62 + 1) wraps to 4, so a size
// check by multiplication passed with 4 data bytes and the buffer of count * 4 bytes wrapped too.
// The float64 reading (npz members) must refuse it as well.
START_TEST(npy_size_check_does_not_wrap) {
    unsigned char b[512];
    uint32_t n = npy_bytes(b, "{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387905,), }", 4);
    NpyArray a;
    ck_assert(npy_parse_bytes(b, n, "wrap.npy", INT64_MAX, &a) == -1);
    printf("npy wrap: %s\n", core_last_error());
    ck_assert_msg(strstr(core_last_error(), "wrap.npy") && strstr(core_last_error(), "data bytes"), "message: %s",
                  core_last_error());
    ck_assert(npy_parse_f64(b, n, "wrap.npy", INT64_MAX, &a) == -1 && a.f64 == NULL);
}
END_TEST

static int read_npz_member(const char *path) {
    NpzArray a;
    if (npz_read(path, "mu", &a) == 0) return 2;
    printf("  child: %s\n", core_last_error());
    return strstr(core_last_error(), path) && strstr(core_last_error(), "claims") ? 0 : 3;
}

// The central directory claims 3 GiB (stored) and then 3 GiB from 200 deflated bytes: both are
// refused from the claim, before any allocation (the old reader allocated both buffers first).
START_TEST(npz_member_sizes_are_claims) {
    char path[256];
    tmp_path(path, sizeof path, "sizes.npz");
    unsigned char b[512];
    uint32_t n = npy_bytes(b, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }", 8);
    write_zip(path, "mu.npy", b, n, 3u << 30, 3u << 30, 0);
    int rc = in_limited_child(read_npz_member, path);
    ck_assert_msg(rc == 0, "stored member claiming 3 GiB: child status %d", rc);
    write_zip(path, "mu.npy", b, n, 0, 3u << 30, 8);
    rc = in_limited_child(read_npz_member, path);
    ck_assert_msg(rc == 0, "deflated member claiming 3 GiB from %u bytes: child status %d", n, rc);
    unlink(path);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// The training config: strings written back must load back.

START_TEST(config_strings_round_trip) {
    static const char *outs[] = {"bob's run", "say \"hi\"", "back\\slash", "tab\there", "new\nline",
                                 "  spaces  ", "caf\xc3\xa9 \xe2\x80\xa8 nel\xc2\x85", "#not a comment: [x]",
                                 "4 bytes \xf3\xa3\x83\xa9 \xf0\x9f\x98\x80 cr\r\r"};
    for (size_t i = 0; i < sizeof outs / sizeof outs[0]; i++) {
        PmfTrainConfig c, r;
        pmf_train_config_default(&c);
        ck_assert_msg(pmf_train_config_set(&c, "out", outs[i]) == 0, "%s", core_last_error());
        ck_assert_msg(pmf_train_config_set(&c, "dataset.root", outs[i]) == 0, "%s", core_last_error());
        ck_assert_msg(pmf_train_config_set(&c, "training.ema_val", "0.12345678, 2000.5") == 0, "%s", core_last_error());
        ck_assert_msg(pmf_train_config_finish(&c) == 0, "%s", core_last_error());
        char *y = pmf_train_config_yaml(&c);
        char path[256];
        tmp_path(path, sizeof path, "config.yaml");
        write_bytes(path, y, strlen(y));
        pmf_train_config_default(&r);
        int rc = pmf_train_config_load(&r, path);
        ck_assert_msg(rc == 0, "out = '%s': the written config does not load back: %s\n%s", outs[i], core_last_error(), y);
        ck_assert_msg(pmf_train_config_finish(&r) == 0, "%s", core_last_error());
        ck_assert_str_eq(r.out, c.out);
        ck_assert_str_eq(r.data, c.data);
        ck_assert(r.n_ema == 2 && r.ema_val[0] == c.ema_val[0] && r.ema_val[1] == c.ema_val[1]);
        char *y2 = pmf_train_config_yaml(&r);
        ck_assert_str_eq(y2, y);
        free(y), free(y2);
        unlink(path);
    }
}
END_TEST

// ---------------------------------------------------------------------------------------------
// PNG

static void put_chunk(unsigned char **p, const char *type, const unsigned char *data, uint32_t len_claim,
                      uint32_t len) {
    unsigned char *q = *p;
    q[0] = (unsigned char)(len_claim >> 24), q[1] = (unsigned char)(len_claim >> 16);
    q[2] = (unsigned char)(len_claim >> 8), q[3] = (unsigned char)len_claim;
    memcpy(q + 4, type, 4);
    if (len) memcpy(q + 8, data, len);
    uint32_t crc = (uint32_t)crc32(crc32(0L, Z_NULL, 0), q + 4, 4 + len);
    q[8 + len] = (unsigned char)(crc >> 24), q[9 + len] = (unsigned char)(crc >> 16);
    q[10 + len] = (unsigned char)(crc >> 8), q[11 + len] = (unsigned char)crc;
    *p = q + 12 + len;
}

// Signature, IHDR (w x h, 8-bit RGB), then `rest` (up to 64 bytes) as given.
static size_t png_with(unsigned char *b, uint32_t w, uint32_t h, const unsigned char *rest, size_t n_rest) {
    unsigned char *p = b, ihdr[13] = {0};
    memcpy(p, "\x89PNG\r\n\x1a\n", 8);
    p += 8;
    ihdr[0] = (unsigned char)(w >> 24), ihdr[1] = (unsigned char)(w >> 16), ihdr[2] = (unsigned char)(w >> 8);
    ihdr[3] = (unsigned char)w, ihdr[4] = (unsigned char)(h >> 24), ihdr[5] = (unsigned char)(h >> 16);
    ihdr[6] = (unsigned char)(h >> 8), ihdr[7] = (unsigned char)h, ihdr[8] = 8, ihdr[9] = 2;
    put_chunk(&p, "IHDR", ihdr, 13, 13);
    memcpy(p, rest, n_rest);
    return (size_t)(p - b) + n_rest;
}

// 1 x 1 pixel, then a tEXt chunk whose length field claims 2^31 - 1 bytes: libpng allocated the
// claimed length before reading it. Now the claim is checked against the bytes there are.
START_TEST(png_chunk_length_is_a_claim) {
    unsigned char b[256], rest[24] = {0x7f, 0xff, 0xff, 0xff, 't', 'E', 'X', 't', 'k', 0, 'v', 'v'};
    size_t n = png_with(b, 1, 1, rest, sizeof rest);
    DsImage im;
    ck_assert_int_eq(ds_image_decode_png(b, n, "huge-text.png", 0, &im), -1);
    printf("png, 2 GB text chunk (%zu bytes): %s\n", n, core_last_error());
    ck_assert_msg(strstr(core_last_error(), "huge-text.png") && strstr(core_last_error(), "claims"), "%s",
                  core_last_error());
    // The same claim in the file's last bytes, with no room left for the chunk's CRC (fuzz_png's
    // finding): the check skipped a chunk that did not fit 12 bytes, and libpng asked for 2 GB.
    n = png_with(b, 1, 1, rest, 9);
    ck_assert_int_eq(ds_image_decode_png(b, n, "huge-text-at-end.png", 0, &im), -1);
    printf("png, 2 GB text chunk in the last 9 bytes (%zu bytes): %s\n", n, core_last_error());
    ck_assert_msg(strstr(core_last_error(), "huge-text-at-end.png") && strstr(core_last_error(), "claims"), "%s",
                  core_last_error());
}
END_TEST

// pmf_lpips on a PNG whose header claims 1e6 x 1e6 pixels: the old reader's malloc returned NULL
// and the next line offset it (a crash); now dataset's decoder refuses it from the header.
START_TEST(pmf_lpips_huge_png_header) {
    char a[256], args[600], out[4096];
    tmp_path(a, sizeof a, "huge.png");
    unsigned char b[256], rest[28], idat[4] = {0};
    unsigned char *p = rest;
    put_chunk(&p, "IDAT", idat, 4, 4);
    put_chunk(&p, "IEND", NULL, 0, 0);
    size_t n = png_with(b, 1000000, 1000000, rest, sizeof rest);
    write_bytes(a, b, n);
    snprintf(args, sizeof args, "--net featnet '%s' '%s'", a, a);
    int rc = test_run_program("pmf_lpips", args, out, sizeof out);   // a crash fails the test
    printf("pmf_lpips, 1e6 x 1e6 header: %s", out);
    ck_assert_msg(rc != 0, "pmf_lpips exited 0");
    ck_assert_msg(strstr(out, a) && strstr(out, "limit"), "the message does not name the file and the limit: %s", out);
    unlink(a);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// idx

static int read_idx_images(const char *path) {
    IdxImages im;
    if (idx_load_images(path, &im) == 0) return 2;
    return strstr(core_last_error(), path) && strstr(core_last_error(), "truncated") ? 0 : 3;
}

// A 16-byte header claiming 2^26 images of 16 x 16 (16 GiB, inside the old plausibility limit):
// the old reader allocated it all before reading a byte (and core_malloc aborted when it could not).
START_TEST(idx_header_is_a_claim) {
    char path[256];
    tmp_path(path, sizeof path, "header.idx");
    unsigned char h[16 + 100] = {0, 0, 8, 3, 0x04, 0, 0, 0, 0, 0, 0, 16, 0, 0, 0, 16};
    write_bytes(path, h, sizeof h);
    int rc = in_limited_child(read_idx_images, path);
    printf("idx claiming 16 GiB: child status %d\n", rc);
    ck_assert_msg(rc == 0, "child status %d (134 = abort)", rc);
    unlink(path);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// HDF5 shard

static void attr(hid_t f, const char *name, int64_t v) {
    hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a), H5Sclose(sp);
}

// A well-formed shard layout that declares `count` images of 8 x 8 x 1 but stores none of them:
// chunked datasets that were never written take no space.
static void write_claim_shard(const char *path, hsize_t count) {
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    ck_assert(f >= 0);
    hsize_t dims[4] = {count, 8, 8, 1}, chunk[4] = {1, 8, 8, 1}, lchunk = 1024;
    hid_t sp = H5Screate_simple(4, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 4, chunk);
    H5Dclose(H5Dcreate2(f, "images", H5T_STD_U8LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5Pclose(dcpl), H5Sclose(sp);
    sp = H5Screate_simple(1, &count, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 1, &lchunk);
    H5Dclose(H5Dcreate2(f, "labels", H5T_STD_I32LE, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT));
    H5Pclose(dcpl), H5Sclose(sp);
    attr(f, "format_version", DS_SHARD_FORMAT_VERSION), attr(f, "resolution", 8), attr(f, "channels", 1);
    attr(f, "count", (int64_t)count), attr(f, "first_index", 0);
    H5Fclose(f);
}

static int open_shard(const char *path) {
    DsShard s;
    if (ds_shard_open(path, &s) == 0) {
        ds_shard_close(&s);
        return 2;
    }
    return strstr(core_last_error(), path) && strstr(core_last_error(), "count") ? 0 : 3;
}

START_TEST(shard_count_is_a_claim) {
    char path[256];
    tmp_path(path, sizeof path, "count.h5");
    write_claim_shard(path, (hsize_t)1 << 36);
    FILE *f = fopen(path, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    int rc = in_limited_child(open_shard, path);
    open_shard(path);
    printf("shard of %ld bytes claiming 2^36 images: child status %d: %s\n", size, rc, core_last_error());
    ck_assert_msg(rc == 0, "child status %d (134 = abort)", rc);
    unlink(path);
}
END_TEST

// pmf_prepare --verify's engine: a good shard, a truncated copy, a copy with garbled bytes, the
// count-claim shard above, and a "shard" that hangs (a FIFO: opening it blocks forever, as
// libhdf5 does on some corrupt files). Each bad file is reported, the caller carries on, and the
// hang is cut at the deadline.
START_TEST(verify_shard_folder) {
    char dir[256], p[512], q[512];
    tmp_path(dir, sizeof dir, "verify");
    mkdir(dir, 0755);
    static const char *names[] = {"a", "b"};
    DsShardMeta m = {8, 1, 0, "test", "none", 2, names};
    snprintf(p, sizeof p, "%s/shard-00000.h5", dir);
    DsShardWriter *w = ds_shard_writer_open(p, &m);
    uint8_t px[4 * 64];
    int32_t lab[4] = {0, 1, 1, 0};
    for (int i = 0; i < 4 * 64; i++) px[i] = (uint8_t)i;
    ck_assert(w && ds_shard_writer_add(w, px, lab, 4) == 0 && ds_shard_writer_finish(w) == 0);
    size_t n;
    unsigned char *b = test_read_file(p, &n);
    snprintf(q, sizeof q, "%s/shard-00001.h5", dir);
    write_bytes(q, b, n / 2);   // truncated
    for (size_t i = 96; i < 600 && i < n; i++) b[i] ^= 0xA5;   // the root group and its attributes
    snprintf(q, sizeof q, "%s/shard-00002.h5", dir);
    write_bytes(q, b, n);   // garbled in the middle
    free(b);
    snprintf(q, sizeof q, "%s/shard-00003.h5", dir);
    write_claim_shard(q, (hsize_t)1 << 36);
    snprintf(q, sizeof q, "%s/shard-00004.h5", dir);
    ck_assert(mkfifo(q, 0600) == 0);
    char msg[1024];
    ck_assert_int_eq(ds_shard_verify(p, 10, msg, sizeof msg), DS_VERIFY_OK);
    ck_assert_int_eq(ds_shard_verify(q, 1, msg, sizeof msg), DS_VERIFY_HUNG);
    ck_assert_msg(strstr(msg, q) != NULL, "%s", msg);
    char report[8192] = "";
    FILE *f = fmemopen(report, sizeof report - 1, "w");
    int files = 0, bad = ds_shard_verify_dir(dir, 2, f, &files);
    fclose(f);
    printf("verify:\n%s", report);
    ck_assert_int_eq(files, 5);
    ck_assert_int_eq(bad, 4);
    ck_assert_msg(strncmp(report, "ok ", 3) == 0, "%s", report);
    ck_assert_msg(strstr(report, "hung") && strstr(report, "shard-00004.h5"), "%s", report);
    ck_assert_msg(strstr(report, "shard-00001.h5") && strstr(report, "shard-00002.h5") &&
                      strstr(report, "shard-00003.h5"), "%s", report);
    // The CLI: exit status 1, one line per file.
    char args[600];
    snprintf(args, sizeof args, "--verify '%s' --timeout 2", dir);
    int st = test_run_program("pmf_prepare", args, report, sizeof report);
    ck_assert_msg(st == 1 && strstr(report, "hung") && strstr(report, "4 damaged"), "pmf_prepare --verify: status %d: %s",
                  st, report);
    for (int i = 0; i < 5; i++) {
        snprintf(q, sizeof q, "%s/shard-%05d.h5", dir, i);
        unlink(q);
    }
    rmdir(dir);
}
END_TEST

// Shards found by fuzz/fuzz_shard that break libhdf5 itself (tests/data/libhdf5/): a heap
// overflow and a wild read in H5Aexists's attribute decoding (under ASan: caught; natively: an
// HDF5 error or a silent overread), and an endless loop in H5C_protect under H5HG_read. Checked
// in a child, each is reported as not OK, the hang is cut at the deadline, and this process
// goes on.
START_TEST(verify_survives_libhdf5_defects) {
    static const char *files[] = {"heap_overflow_in_H5Aexists.h5", "segv_in_H5Aexists_under_asan.h5",
                                  "hang_in_H5HG_read.h5"};
    for (int i = 0; i < 3; i++) {
        char p[1024], msg[1024];
        snprintf(p, sizeof p, "%s/tests/data/libhdf5/%s", PMF_SOURCE_DIR, files[i]);
        DsVerifyResult r = ds_shard_verify(p, 1.5, msg, sizeof msg);
        printf("  %s: %d: %s\n", files[i], (int)r, msg);
        ck_assert_msg(r != DS_VERIFY_OK && r != DS_VERIFY_ERROR, "%s was not reported as damaged", files[i]);
        ck_assert_msg(strstr(msg, files[i]) != NULL, "the message does not name the file: %s", msg);
        if (i == 2) ck_assert_int_eq(r, DS_VERIFY_HUNG);
    }
}
END_TEST

int main(void) {
    Suite *s = suite_create("hostile_input");
    TCase *tc = tcase_create("readers");
    tcase_add_test(tc, npz_element_count_overflow);
    tcase_add_test(tc, npz_fortran_order_overflow);
    tcase_add_test(tc, npz_fortran_order_ok);
    tcase_add_test(tc, npz_member_sizes_are_claims);
    tcase_add_test(tc, npy_size_check_does_not_wrap);
    tcase_add_test(tc, config_strings_round_trip);
    tcase_add_test(tc, png_chunk_length_is_a_claim);
    tcase_add_test(tc, pmf_lpips_huge_png_header);
    tcase_add_test(tc, idx_header_is_a_claim);
    tcase_add_test(tc, shard_count_is_a_claim);
    tcase_add_test(tc, verify_shard_folder);
    tcase_add_test(tc, verify_survives_libhdf5_defects);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
