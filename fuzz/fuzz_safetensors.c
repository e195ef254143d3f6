// fuzz/fuzz_safetensors.c: libFuzzer target for the safetensors reader. Any input must either be
// refused with a message that names the source, or parse into entries that all lie inside the
// file and read back without touching memory outside it. tests/test_fuzz_corpus.c includes this
// file to run the same checks over tests/corpus/safetensors/ without clang.
#include "core/core.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define FUZZ_MAX_READ (1 << 16)   // elements; larger tensors are checked but not read

// Invariant broken: abort so libFuzzer (or the corpus test) reports the input.
#define FUZZ_CHECK(cond) \
    do { \
        if (!(cond)) abort(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    SafeTensors st;
    if (safetensors_parse(&st, data, size, "fuzz-input") != 0) {
        FUZZ_CHECK(strstr(core_last_error(), "fuzz-input") != NULL);   // says why, names the source
        FUZZ_CHECK(st.bytes == NULL && st.n_entries == 0);
        return 0;
    }
    FUZZ_CHECK(st.data_start >= 8 && st.data_start <= st.file_size);
    for (int i = 0; i < st.n_entries; i++) {
        const StEntry *e = &st.entries[i];
        FUZZ_CHECK(e->begin <= e->end && e->end <= st.file_size - st.data_start);
        FUZZ_CHECK(e->ndim >= 0 && e->ndim <= 8 && e->numel >= 0);
        const StEntry *f = safetensors_find(&st, e->name);   // the first entry of that name
        FUZZ_CHECK(f != NULL);
        if (f->numel > FUZZ_MAX_READ) continue;
        int shape[8], fits = 1;
        for (int d = 0; d < f->ndim; d++) {
            if (f->shape[d] > INT_MAX) fits = 0;
            else shape[d] = (int)f->shape[d];
        }
        if (!fits) continue;
        float *dst = malloc((size_t)(f->numel ? f->numel : 1) * sizeof(float));
        FUZZ_CHECK(dst != NULL);
        int rc = safetensors_read_f32(&st, f->name, f->ndim, shape, dst);
        int is_float = f->dtype == ST_F32 || f->dtype == ST_F16 || f->dtype == ST_BF16 || f->dtype == ST_F64;
        FUZZ_CHECK(rc == (is_float ? 0 : -1));
        if (f->ndim > 0) {   // a wrong shape is refused, whatever the dtype
            shape[0] = shape[0] == INT_MAX ? 0 : shape[0] + 1;
            FUZZ_CHECK(safetensors_read_f32(&st, f->name, f->ndim, shape, dst) == -1);
        }
        free(dst);
    }
    for (int i = 0; i < st.n_meta; i++) FUZZ_CHECK(safetensors_meta(&st, st.meta_keys[i]) != NULL);
    safetensors_close(&st);
    return 0;
}
