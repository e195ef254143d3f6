// fuzz/fuzz_idx.c: libFuzzer target for the idx reader (dataset/idx.c), plain or gzip. Any input
// must be refused with a message naming the file, or give n items whose every byte is readable.
#include "dataset/dataset.h"

#include "core/core.h"
#include "fuzz/fuzz_common.h"

static int fuzz_idx(const uint8_t *data, size_t size) {
    char path[256];
    fuzz_write_file(path, "input.idx", data, size);
    IdxImages im;
    int accepted = 0;
    if (idx_load_images(path, &im) == 0) {
        FUZZ_CHECK(im.n >= 1 && im.h >= 1 && im.w >= 1 && im.pixels);
        unsigned sum = 0;
        for (size_t i = 0; i < (size_t)im.n * im.h * im.w; i++) sum += im.pixels[i];
        (void)sum;
        idx_free_images(&im);
        accepted = 1;
    } else {
        FUZZ_CHECK(strstr(core_last_error(), path) != NULL && im.pixels == NULL);
    }
    IdxLabels lb;
    if (idx_load_labels(path, &lb) == 0) {
        FUZZ_CHECK(lb.n >= 1 && lb.labels);
        unsigned sum = 0;
        for (int i = 0; i < lb.n; i++) sum += lb.labels[i];
        (void)sum;
        idx_free_labels(&lb);
        accepted = 1;
    } else {
        FUZZ_CHECK(strstr(core_last_error(), path) != NULL && lb.labels == NULL);
    }
    unlink(path);
    return accepted;
}

FUZZ_ENTRY(fuzz_idx)
