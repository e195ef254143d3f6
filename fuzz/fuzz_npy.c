// fuzz/fuzz_npy.c: libFuzzer target for the .npy reader (core/npy.c: pmf_sample --noise / --labels,
// and as float64 the members of eval's .npz files).
// Any input must either be refused with a message that names the source, or parse into an array
// whose element count matches its shape, stays under the limit and whose values can all be read.
#include "core/core.h"
#include "fuzz/fuzz_common.h"

// The float64 reading (eval's npz members) accepts exactly the float arrays, with the same shape.
static void check_f64(const uint8_t *data, size_t size, int64_t limit, const NpyArray *as_f32) {
    NpyArray d;
    int rc = npy_parse_f64(data, size, "fuzz-input", limit, &d);
    FUZZ_CHECK((rc == 0) == (as_f32 && as_f32->kind == 'f'));
    if (rc != 0) {
        FUZZ_CHECK(strstr(core_last_error(), "fuzz-input") != NULL && d.f64 == NULL);
        return;
    }
    FUZZ_CHECK(d.kind == 'd' && d.f64 && d.numel == as_f32->numel && d.ndim == as_f32->ndim);
    for (int64_t i = 0; i < d.numel; i++) {
        float f = (float)d.f64[i];
        FUZZ_CHECK(f == as_f32->f32[i] || (f != f && as_f32->f32[i] != as_f32->f32[i]));
    }
    npy_free(&d);
}

static int fuzz_npy(const uint8_t *data, size_t size) {
    NpyArray a;
    const int64_t limit = 1 << 20;
    if (npy_parse_bytes(data, size, "fuzz-input", limit, &a) != 0) {
        check_f64(data, size, limit, NULL);
        FUZZ_CHECK(strstr(core_last_error(), "fuzz-input") != NULL);
        FUZZ_CHECK(a.f32 == NULL && a.i64 == NULL);
        return 0;
    }
    int64_t numel = 1;
    for (int d = 0; d < a.ndim; d++) numel *= a.shape[d];
    FUZZ_CHECK(numel == a.numel && a.numel <= limit);
    FUZZ_CHECK((a.kind == 'f') == (a.f32 != NULL) && (a.kind == 'i') == (a.i64 != NULL));
    volatile double sum = 0;   // every element readable (ASan checks the bounds)
    for (int64_t i = 0; i < a.numel; i++) sum += a.kind == 'f' ? (double)a.f32[i] : (double)a.i64[i];
    (void)sum;
    check_f64(data, size, limit, &a);
    npy_free(&a);
    return 1;
}

FUZZ_ENTRY(fuzz_npy)
