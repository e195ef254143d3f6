// fuzz/fuzz_npz.c: libFuzzer target for the .npz reader (eval/npz.c): zip directory, zip64,
// stored and deflated members, npy headers. Any input must be refused with a message naming the
// file, or give arrays whose shape multiplies out to the element count and whose every element
// can be read; the statistics loader must agree with the array reader.
#include "eval/eval.h"

#include "core/core.h"
#include "fuzz/fuzz_common.h"

static int fuzz_npz(const uint8_t *data, size_t size) {
    char path[256];
    fuzz_write_file(path, "input.npz", data, size);
    static const char *names[] = {"mu", "sigma", "ref_mu", "arr_0"};
    int accepted = 0;
    for (int k = 0; k < 4; k++) {
        NpzArray a;
        if (npz_read(path, names[k], &a) != 0) {
            FUZZ_CHECK(strstr(core_last_error(), path) != NULL);
            FUZZ_CHECK(a.data == NULL);
            continue;
        }
        FUZZ_CHECK(a.ndim >= 0 && a.ndim <= 8);
        int64_t n = 1;
        for (int d = 0; d < a.ndim; d++) {
            FUZZ_CHECK(a.shape[d] >= 0);
            n *= a.shape[d];
        }
        FUZZ_CHECK(n == a.numel);
        accepted = 1;
        double sum = 0;   // touch every element so ASan sees the whole buffer
        for (int64_t i = 0; i < a.numel; i++) sum += a.data[i];
        (void)sum;
        npz_array_free(&a);
    }
    EvalStats s;
    if (eval_stats_load_npz(path, &s) == 0) {
        FUZZ_CHECK(s.dim >= 0 && s.mu && s.sigma);
        double sum = 0;
        for (int64_t i = 0; i < (int64_t)s.dim * s.dim; i++) sum += s.sigma[i];
        for (int i = 0; i < s.dim; i++) sum += s.mu[i];
        (void)sum;
        eval_stats_free(&s);
    } else {
        FUZZ_CHECK(strstr(core_last_error(), path) != NULL);
    }
    unlink(path);
    return accepted;
}

FUZZ_ENTRY(fuzz_npz)
