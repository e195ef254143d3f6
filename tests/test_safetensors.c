// tests/test_safetensors.c: safetensors I/O. A round trip through StWriter, hand-made files with
// known bit patterns for the F16/BF16/F64 conversions, and every kind of bad file, each of which
// must give -1 and a message that says what is wrong (never a crash, never a silent success).
#include "harness.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// Building files by hand

typedef struct {
    unsigned char *b;
    size_t n;
} Buf;

// 8-byte little-endian `hlen`, then `header` (its strlen bytes), then `data_len` bytes of data.
static Buf st_raw(uint64_t hlen, const char *header, size_t header_len, const void *data, size_t data_len) {
    Buf f;
    f.n = 8 + header_len + data_len;
    f.b = calloc(1, f.n ? f.n : 1);
    for (int i = 0; i < 8; i++) f.b[i] = (unsigned char)(hlen >> (8 * i));
    memcpy(f.b + 8, header, header_len);
    if (data) memcpy(f.b + 8 + header_len, data, data_len);
    return f;
}

static Buf st_bytes(const char *header, const void *data, size_t data_len) {
    return st_raw(strlen(header), header, strlen(header), data, data_len);
}

static void put_u16(unsigned char *p, uint16_t v) { p[0] = (unsigned char)v, p[1] = (unsigned char)(v >> 8); }

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void put_f64(unsigned char *p, double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    put_u64(p, u);
}

static void put_f32(unsigned char *p, float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(u >> (8 * i));
}

static char tmpdir[64];

static void make_tmpdir(void) {
    strcpy(tmpdir, "/tmp/pmf_st_XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmp_path(char *out, size_t n, const char *name) { snprintf(out, n, "%s/%s", tmpdir, name); }

static void write_file(const char *path, const void *b, size_t n) {
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static int file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

// ---------------------------------------------------------------------------------------------
// Round trip

START_TEST(writer_round_trip) {
    make_tmpdir();
    char path[256], tmp[300];
    tmp_path(path, sizeof path, "ck.safetensors");
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    const float a[6] = {1.5f, -2.0f, 3.25f, 0.0f, -0.0f, 1e-30f};
    const float b[4] = {INFINITY, -1e30f, 7.0f, 8.0f};
    const float s = 42.5f;
    const float q[2 * 1 * 3 * 2] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    const int sa[2] = {2, 3}, sb[1] = {4}, sq[4] = {2, 1, 3, 2};
    const char *odd = "blk.0/attn \"q\" \xc3\xa9";   // quotes and UTF-8 must survive the JSON
    StWriter *w = st_writer_new();
    st_writer_add(w, "a", 2, sa, a);
    st_writer_add(w, "b", 1, sb, b);
    st_writer_add(w, "s", 0, NULL, &s);
    st_writer_add(w, odd, 4, sq, q);
    st_writer_meta(w, "step", "12");
    st_writer_meta(w, "config", "model: {depth: 2}\nlr: 1e-3");
    ck_assert_int_eq(st_writer_save(w, path), 0);
    st_writer_free(w);
    ck_assert_msg(!file_exists(tmp), "%s left behind", tmp);

    SafeTensors st;
    ck_assert_msg(safetensors_open(&st, path) == 0, "%s", core_last_error());
    ck_assert_int_eq(st.n_entries, 4);
    ck_assert_uint_eq(st.data_start % 8, 0);   // data stays 8-byte aligned
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | st.bytes[i];
    ck_assert_uint_eq(hlen + 8, st.data_start);
    ck_assert_uint_eq(st.file_size, st.data_start + (6 + 4 + 1 + 12) * 4);
    const StEntry *e = safetensors_find(&st, "a");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->dtype, ST_F32);
    ck_assert_int_eq(e->ndim, 2);
    ck_assert_int_eq(e->shape[0], 2);
    ck_assert_int_eq(e->shape[1], 3);
    ck_assert_int_eq(e->numel, 6);
    e = safetensors_find(&st, "s");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->ndim, 0);
    ck_assert_int_eq(e->numel, 1);
    e = safetensors_find(&st, odd);
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->ndim, 4);
    ck_assert_int_eq(e->shape[2], 3);
    ck_assert_ptr_null(safetensors_find(&st, "blk.0"));

    float ra[6], rb[4], rs, rq[12];
    ck_assert_int_eq(safetensors_read_f32(&st, "a", 2, sa, ra), 0);
    ck_assert_int_eq(safetensors_read_f32(&st, "b", 1, sb, rb), 0);
    ck_assert_int_eq(safetensors_read_f32(&st, "s", 0, NULL, &rs), 0);
    ck_assert_int_eq(safetensors_read_f32(&st, odd, 4, sq, rq), 0);
    ck_assert_mem_eq(ra, a, sizeof a);   // bit-exact, including -0 and the denormal-ish 1e-30
    ck_assert_mem_eq(rb, b, sizeof b);
    ck_assert_mem_eq(&rs, &s, sizeof s);
    ck_assert_mem_eq(rq, q, sizeof q);
    ck_assert_str_eq(safetensors_meta(&st, "step"), "12");
    ck_assert_str_eq(safetensors_meta(&st, "config"), "model: {depth: 2}\nlr: 1e-3");
    ck_assert_ptr_null(safetensors_meta(&st, "nope"));
    safetensors_close(&st);
    ck_assert_ptr_null(st.bytes);
    ck_assert_int_eq(st.n_entries, 0);

    // Saving again replaces the file whole.
    const float a2[6] = {9, 9, 9, 9, 9, 9};
    w = st_writer_new();
    st_writer_add(w, "a", 2, sa, a2);
    ck_assert_int_eq(st_writer_save(w, path), 0);
    st_writer_free(w);
    ck_assert_int_eq(safetensors_open(&st, path), 0);
    ck_assert_int_eq(st.n_entries, 1);
    ck_assert_int_eq(st.n_meta, 0);
    ck_assert_int_eq(safetensors_read_f32(&st, "a", 2, sa, ra), 0);
    ck_assert_mem_eq(ra, a2, sizeof a2);
    safetensors_close(&st);

    // A save that cannot create its temp file fails and leaves the old file as it was.
    ck_assert_int_eq(mkdir(tmp, 0755), 0);
    w = st_writer_new();
    st_writer_add(w, "a", 2, sa, a);
    ck_assert_int_eq(st_writer_save(w, path), -1);
    ck_assert_msg(strstr(core_last_error(), "cannot create") != NULL, "message: %s", core_last_error());
    st_writer_free(w);
    ck_assert_int_eq(safetensors_open(&st, path), 0);
    ck_assert_int_eq(safetensors_read_f32(&st, "a", 2, sa, ra), 0);
    ck_assert_mem_eq(ra, a2, sizeof a2);
    safetensors_close(&st);
    rmdir(tmp);

    // Into a folder that does not exist.
    char bad[300];
    snprintf(bad, sizeof bad, "%s/no/such/dir.safetensors", tmpdir);
    w = st_writer_new();
    st_writer_add(w, "a", 2, sa, a);
    ck_assert_int_eq(st_writer_save(w, bad), -1);
    ck_assert_msg(strstr(core_last_error(), "cannot create") != NULL, "message: %s", core_last_error());
    st_writer_free(w);

    unlink(path);
    ck_assert_int_eq(rmdir(tmpdir), 0);   // nothing else was left in the folder
}
END_TEST

START_TEST(writer_tensor_and_empty) {
    make_tmpdir();
    char path[256];
    tmp_path(path, sizeof path, "t.safetensors");
    Arena arena;
    Tape tp;
    arena_init(&arena, 1 << 16);
    tape_init(&tp, &arena);
    const int sh[3] = {2, 2, 2}, s0[1] = {0};
    const float v[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    Tensor *t = tensor_from(&tp, 3, sh, v, "enc.weight");
    StWriter *w = st_writer_new();
    st_writer_add_tensor(w, t);
    st_writer_add(w, "empty", 1, s0, NULL);   // zero elements: no bytes, still listed
    ck_assert_int_eq(st_writer_save(w, path), 0);
    st_writer_free(w);
    SafeTensors st;
    ck_assert_msg(safetensors_open(&st, path) == 0, "%s", core_last_error());
    float r[8];
    ck_assert_int_eq(safetensors_read_f32(&st, "enc.weight", 3, sh, r), 0);
    ck_assert_mem_eq(r, v, sizeof v);
    const StEntry *e = safetensors_find(&st, "empty");
    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(e->numel, 0);
    ck_assert_int_eq(safetensors_read_f32(&st, "empty", 1, s0, r), 0);
    safetensors_close(&st);
    // A file with no tensors at all.
    w = st_writer_new();
    ck_assert_int_eq(st_writer_save(w, path), 0);
    st_writer_free(w);
    ck_assert_int_eq(safetensors_open(&st, path), 0);
    ck_assert_int_eq(st.n_entries, 0);
    safetensors_close(&st);
    unlink(path);
    rmdir(tmpdir);
    tape_free(&tp);
    arena_free(&arena);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Conversions from hand-made bytes

START_TEST(read_converts_dtypes) {
    // f16 (3,3) [0,18), bf16 (2,2) [18,26), f64 (3) [26,50), i64 (1) [50,58), f32 () [58,62)
    const char *h = "{\"h\":{\"dtype\":\"F16\",\"shape\":[3,3],\"data_offsets\":[0,18]},"
                    "\"bf\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[18,26]},"
                    "\"d\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[26,50]},"
                    "\"i\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[50,58]},"
                    "\"f\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[58,62]},"
                    "\"__metadata__\":{\"format\":\"pt\"}}    ";
    unsigned char data[62];
    const uint16_t f16[9] = {0x3c00, 0xc000, 0x0000, 0x8000, 0x7c00, 0x0001, 0x3555, 0x7bff, 0x7e00};
    const uint16_t bf16[4] = {0x3f80, 0xc040, 0x4049, 0x0001};
    const double f64[3] = {1.5, -0.1, 1e-3};
    for (int i = 0; i < 9; i++) put_u16(data + 2 * i, f16[i]);
    for (int i = 0; i < 4; i++) put_u16(data + 18 + 2 * i, bf16[i]);
    for (int i = 0; i < 3; i++) put_f64(data + 26 + 8 * i, f64[i]);
    put_u64(data + 50, 77);
    put_f32(data + 58, 7.25f);
    Buf f = st_bytes(h, data, sizeof data);

    make_tmpdir();
    char path[256];
    tmp_path(path, sizeof path, "mixed.safetensors");
    write_file(path, f.b, f.n);
    SafeTensors st;
    ck_assert_msg(safetensors_open(&st, path) == 0, "%s", core_last_error());
    ck_assert_int_eq(st.n_entries, 5);
    ck_assert_str_eq(safetensors_meta(&st, "format"), "pt");
    ck_assert_int_eq(safetensors_find(&st, "h")->dtype, ST_F16);
    ck_assert_int_eq(safetensors_find(&st, "bf")->dtype, ST_BF16);
    ck_assert_int_eq(safetensors_find(&st, "i")->dtype, ST_I64);

    float x[9];
    const int s33[2] = {3, 3}, s22[2] = {2, 2}, s3[1] = {3}, s1[1] = {1};
    ck_assert_int_eq(safetensors_read_f32(&st, "h", 2, s33, x), 0);
    ck_assert(x[0] == 1.0f);
    ck_assert(x[1] == -2.0f);
    ck_assert(x[2] == 0.0f && !signbit(x[2]));
    ck_assert(x[3] == 0.0f && signbit(x[3]));
    ck_assert(isinf(x[4]) && x[4] > 0);
    ck_assert(x[5] == ldexpf(1.0f, -24));   // smallest f16 subnormal
    ck_assert(x[6] == 0.333251953125f);
    ck_assert(x[7] == 65504.0f);             // largest f16
    ck_assert(isnan(x[8]));
    ck_assert_int_eq(safetensors_read_f32(&st, "bf", 2, s22, x), 0);
    ck_assert(x[0] == 1.0f);
    ck_assert(x[1] == -3.0f);
    ck_assert(x[2] == 3.140625f);
    ck_assert(x[3] == ldexpf(1.0f, -133));   // bf16 subnormal = float subnormal
    ck_assert_int_eq(safetensors_read_f32(&st, "d", 1, s3, x), 0);
    for (int i = 0; i < 3; i++) ck_assert(x[i] == (float)f64[i]);
    ck_assert_int_eq(safetensors_read_f32(&st, "f", 0, NULL, x), 0);
    ck_assert(x[0] == 7.25f);
    // Integers are not floats: refused with a message.
    ck_assert_int_eq(safetensors_read_f32(&st, "i", 1, s1, x), -1);
    ck_assert_msg(strstr(core_last_error(), "I64") && strstr(core_last_error(), "floating"), "message: %s",
                  core_last_error());
    safetensors_close(&st);
    unlink(path);
    rmdir(tmpdir);
    free(f.b);
}
END_TEST

START_TEST(read_shape_mismatch) {
    const char *h = "{\"blk.attn.w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}";
    unsigned char data[24] = {0};
    Buf f = st_bytes(h, data, sizeof data);
    SafeTensors st;
    ck_assert_int_eq(safetensors_parse(&st, f.b, f.n, "model.safetensors"), 0);
    float x[6];
    const int s32[2] = {3, 2}, s6[1] = {6}, s23[2] = {2, 3};
    ck_assert_int_eq(safetensors_read_f32(&st, "blk.attn.w", 2, s32, x), -1);
    const char *m = core_last_error();
    ck_assert_msg(strstr(m, "model.safetensors") && strstr(m, "'blk.attn.w'") && strstr(m, "(2, 3)") &&
                      strstr(m, "(3, 2)"),
                  "message: %s", m);
    ck_assert_int_eq(safetensors_read_f32(&st, "blk.attn.w", 1, s6, x), -1);
    ck_assert_msg(strstr(core_last_error(), "(6)") != NULL, "message: %s", core_last_error());
    ck_assert_int_eq(safetensors_read_f32(&st, "blk.attn", 2, s23, x), -1);
    ck_assert_msg(strstr(core_last_error(), "no tensor named 'blk.attn'") != NULL, "message: %s", core_last_error());
    // A long expected shape must not overrun the message buffer (ASan checks this in CI).
    int big[10];
    for (int i = 0; i < 10; i++) big[i] = -2000000000;
    ck_assert_int_eq(safetensors_read_f32(&st, "blk.attn.w", 10, big, x), -1);
    ck_assert_msg(strstr(core_last_error(), "'blk.attn.w'") != NULL, "message: %s", core_last_error());
    ck_assert_int_eq(safetensors_read_f32(&st, "blk.attn.w", 2, s23, x), 0);
    safetensors_close(&st);
    free(f.b);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Bad files

static void expect_bad_buf(const char *what, Buf f, const char *needle) {
    SafeTensors st;
    memset(&st, 0x5a, sizeof st);   // parse must not trust the caller's struct
    int rc = safetensors_parse(&st, f.b, f.n, "bad.safetensors");
    const char *m = core_last_error();
    ck_assert_msg(rc == -1, "%s: accepted (rc %d)", what, rc);
    ck_assert_msg(strstr(m, "bad.safetensors") != NULL, "%s: message does not name the file: %s", what, m);
    ck_assert_msg(strstr(m, needle) != NULL, "%s: message lacks \"%s\": %s", what, needle, m);
    ck_assert_ptr_null(st.bytes);   // nothing kept after a failure
    ck_assert_int_eq(st.n_entries, 0);
    safetensors_close(&st);         // and closing it again is harmless
    free(f.b);
}

typedef struct {
    const char *what, *header;
    size_t data_len;
    const char *needle;
} BadCase;

#define E1(body) "{\"a\":{" body "}}"
static const BadCase bad_headers[] = {
    {"unknown dtype", E1("\"dtype\":\"F8\",\"shape\":[1],\"data_offsets\":[0,1]"), 1, "unknown dtype 'F8'"},
    {"dtype not a string", E1("\"dtype\":4,\"shape\":[1],\"data_offsets\":[0,4]"), 4, "'dtype'"},
    {"missing dtype", E1("\"shape\":[1],\"data_offsets\":[0,4]"), 4, "'dtype'"},
    {"byte count", E1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,4]"), 4, "need 8"},
    {"byte count f16", E1("\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,4]"), 4, "need 6"},
    {"offsets past the data", E1("\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]"), 4, "outside the data section"},
    {"begin > end", E1("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,4]"), 8, "data_offsets [8, 4]"},
    {"negative begin", E1("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]"), 8, "outside the data section"},
    {"huge end", E1("\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,18446744073709551615]"), 8, "outside the data section"},
    {"missing data_offsets", E1("\"dtype\":\"F32\",\"shape\":[1]"), 4, "'data_offsets'"},
    {"three data_offsets", E1("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]"), 8, "'data_offsets'"},
    {"data_offsets not an array", E1("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":4"), 4, "'data_offsets'"},
    {"float data_offsets", E1("\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4.0]"), 4, "must be integers"},
    {"negative shape", E1("\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]"), 4, "shape[0] = -1 is out of range"},
    {"float shape", E1("\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]"), 8, "shape[0] is not an integer"},
    {"string shape", E1("\"dtype\":\"F32\",\"shape\":[1,\"2\"],\"data_offsets\":[0,8]"), 8, "shape[1] is not an integer"},
    {"shape not an array", E1("\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]"), 8, "'shape'"},
    {"missing shape", E1("\"dtype\":\"F32\",\"data_offsets\":[0,8]"), 8, "'shape'"},
    {"nine dims", E1("\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,1]"), 1, "9 dimensions"},
    {"huge dim", E1("\"dtype\":\"U8\",\"shape\":[2199023255552],\"data_offsets\":[0,1]"), 1, "out of range"},
    {"element overflow", E1("\"dtype\":\"U8\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,1]"), 1,
     "too many elements"},
    {"entry not an object", "{\"a\":[1,2]}", 0, "tensor 'a': header entry is not an object"},
    {"overlap",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
     12, "overlap"},
    {"same range",
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"I32\",\"shape\":[2],\"data_offsets\":[0,8]}}",
     8, "overlap"},
    {"overlap behind an empty tensor",   // sorted: a [0,16), z [4,4), c [8,12): c lies inside a
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
     "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
     "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
     16, "overlap"},
    {"two tensors inside one",   // a [0,32) holds both b [8,12) and c [16,20)
     "{\"a\":{\"dtype\":\"F32\",\"shape\":[8],\"data_offsets\":[0,32]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
     "\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[16,20]}}",
     32, "overlap"},
    {"metadata value not a string", "{\"__metadata__\":{\"step\":1}}", 0, "metadata value 'step' is not a string"},
    {"metadata not an object", "{\"__metadata__\":\"x\"}", 0, "'__metadata__' is not an object"},
    {"truncated data section", E1("\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]"), 8, "truncated?"},
    {"not JSON", "hello world", 0, "not valid JSON"},
    {"JSON cut short", "{\"a\":{\"dtype\":", 0, "not valid JSON"},
    {"JSON array", "[1,2,3]", 0, "not an object"},
    {"JSON string", "\"abc\"", 0, "not an object"},
    {"JSON null", "null ", 0, "not an object"},
    {"JSON null unpadded", "null", 0, "not valid JSON"},   // json-c waits for a terminator
    {"JSON number", "12 ", 0, "not an object"},
    {"bytes after the JSON", "{}  x", 0, "bytes after"},
    {"empty header", "", 0, "not valid JSON"},
};

START_TEST(bad_header) {
    const BadCase *c = &bad_headers[_i];
    unsigned char *data = calloc(1, c->data_len + 1);
    expect_bad_buf(c->what, st_bytes(c->header, data, c->data_len), c->needle);
    free(data);
}
END_TEST

START_TEST(bad_sizes) {
    const unsigned char tiny[7] = {2, 0, 0, 0, 0, 0, 0};
    for (size_t n = 0; n < 8; n++) {
        Buf f = {malloc(8), n};
        memcpy(f.b, tiny, n < 7 ? n : 7);
        expect_bad_buf("short file", f, "too short");
    }
    expect_bad_buf("header longer than the file", st_raw(100, "{}", 2, NULL, 10), "runs past the end");
    expect_bad_buf("header one byte too long", st_raw(3, "{}", 2, NULL, 0), "runs past the end");
    expect_bad_buf("header length 2^63", st_raw((uint64_t)1 << 63, "{}", 2, NULL, 0), "exceeds");
    expect_bad_buf("header length 2^64-1", st_raw(UINT64_MAX, "{}", 2, NULL, 0), "exceeds");
    expect_bad_buf("header length 100 MB + 1", st_raw((100u << 20) + 1, "{}", 2, NULL, 0), "exceeds");
    // A NUL inside the header ends json-c's input; the rest must not be ignored.
    expect_bad_buf("NUL in the header", st_raw(6, "{}\0   ", 6, NULL, 0), "header");
    expect_bad_buf("NUL inside a key", st_raw(8, "{\"a\0\":1}", 8, NULL, 0), "header");
}
END_TEST

START_TEST(good_edge_cases) {
    SafeTensors st;
    Buf f = st_bytes("{}", NULL, 0);
    ck_assert_msg(safetensors_parse(&st, f.b, f.n, "e") == 0, "%s", core_last_error());
    ck_assert_int_eq(st.n_entries, 0);
    safetensors_close(&st);
    free(f.b);
    f = st_bytes("{\"__metadata__\":{}}        ", NULL, 0);
    ck_assert_msg(safetensors_parse(&st, f.b, f.n, "e") == 0, "%s", core_last_error());
    ck_assert_int_eq(st.n_meta, 0);
    safetensors_close(&st);
    free(f.b);
    // Empty tensors may share an offset with anything; adjacent ranges touch but do not overlap.
    f = st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[4,4]},"
                 "\"y\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[8,8]},"
                 "\"b\":{\"dtype\":\"U8\",\"shape\":[2,2],\"data_offsets\":[8,12]}}",
                 (const unsigned char[12]){0}, 12);
    ck_assert_msg(safetensors_parse(&st, f.b, f.n, "e") == 0, "%s", core_last_error());
    ck_assert_int_eq(st.n_entries, 4);
    ck_assert_int_eq(safetensors_find(&st, "z")->numel, 0);
    ck_assert_int_eq(safetensors_find(&st, "b")->dtype, ST_U8);
    safetensors_close(&st);
    free(f.b);
    // Trailing bytes after the last tensor are tolerated (the format does not forbid padding).
    f = st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", (const unsigned char[8]){0}, 8);
    ck_assert_msg(safetensors_parse(&st, f.b, f.n, "e") == 0, "%s", core_last_error());
    safetensors_close(&st);
    free(f.b);
}
END_TEST

START_TEST(open_errors) {
    make_tmpdir();
    SafeTensors st;
    char path[256];
    tmp_path(path, sizeof path, "missing.safetensors");
    ck_assert_int_eq(safetensors_open(&st, path), -1);
    ck_assert_msg(strstr(core_last_error(), path) && strstr(core_last_error(), "cannot open"), "message: %s",
                  core_last_error());
    ck_assert_int_eq(safetensors_open(&st, tmpdir), -1);
    ck_assert_msg(strstr(core_last_error(), "not a regular file") != NULL, "message: %s", core_last_error());
    // A checkpoint cut short on disk.
    const float v[4] = {1, 2, 3, 4};
    const int s4[1] = {4};
    tmp_path(path, sizeof path, "cut.safetensors");
    StWriter *w = st_writer_new();
    st_writer_add(w, "v", 1, s4, v);
    ck_assert_int_eq(st_writer_save(w, path), 0);
    st_writer_free(w);
    struct stat sb;
    ck_assert_int_eq(stat(path, &sb), 0);
    ck_assert_int_eq(truncate(path, sb.st_size - 4), 0);
    ck_assert_int_eq(safetensors_open(&st, path), -1);
    ck_assert_msg(strstr(core_last_error(), path) && strstr(core_last_error(), "'v'") &&
                      strstr(core_last_error(), "truncated?"),
                  "message: %s", core_last_error());
    // Header cut short on disk.
    ck_assert_int_eq(truncate(path, 20), 0);
    ck_assert_int_eq(safetensors_open(&st, path), -1);
    ck_assert_msg(strstr(core_last_error(), "runs past the end") != NULL, "message: %s", core_last_error());
    ck_assert_int_eq(truncate(path, 0), 0);
    ck_assert_int_eq(safetensors_open(&st, path), -1);
    ck_assert_msg(strstr(core_last_error(), "too short") != NULL, "message: %s", core_last_error());
    unlink(path);
    rmdir(tmpdir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("round_trip");
    tcase_add_test(tc, writer_round_trip);
    tcase_add_test(tc, writer_tensor_and_empty);
    suite_add_tcase(s, tc);
    tc = tcase_create("read");
    tcase_add_test(tc, read_converts_dtypes);
    tcase_add_test(tc, read_shape_mismatch);
    tcase_add_test(tc, good_edge_cases);
    suite_add_tcase(s, tc);
    tc = tcase_create("bad_files");
    tcase_add_loop_test(tc, bad_header, 0, (int)(sizeof bad_headers / sizeof bad_headers[0]));
    tcase_add_test(tc, bad_sizes);
    tcase_add_test(tc, open_errors);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
