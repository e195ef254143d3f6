// fuzz/fuzz_jpeg.c: libFuzzer target for the image decoders (JPEG via libjpeg-turbo, PNG via
// libpng) and the centre crop behind them. Any input must either be refused with a message that
// names the source, or decode to a sane RGB image that crops without touching memory outside it.
// libjpeg/libpng errors must come back through the setjmp traps, never exit(). tests/
// test_dataset_prepare.c includes this file to run the same checks over tests/corpus/jpeg/.
#include "dataset/dataset.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define FUZZ_MAX_PIXELS (1 << 12)   // 64x64: keeps each run fast (the instrumented resize dominates, ~100 exec/s at 4M pixels); the limit is under test too
#define FUZZ_CROP 16

#define FUZZ_CHECK(cond) \
    do { \
        if (!(cond)) abort(); \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    DsImage im;
    if (ds_image_decode(data, size, "fuzz-input", FUZZ_MAX_PIXELS, &im) != 0) {
        FUZZ_CHECK(strstr(core_last_error(), "fuzz-input") != NULL);
        FUZZ_CHECK(im.px == NULL);
        return 0;
    }
    FUZZ_CHECK(im.w >= 1 && im.h >= 1 && im.c == 3 && im.px != NULL);
    FUZZ_CHECK((int64_t)im.w * im.h <= FUZZ_MAX_PIXELS);
    unsigned sum = 0;   // touch every pixel so ASan sees the whole buffer
    for (size_t i = 0; i < (size_t)im.w * im.h * 3; i++) sum += im.px[i];
    uint8_t *out = malloc(FUZZ_CROP * FUZZ_CROP * 3);
    FUZZ_CHECK(out != NULL);
    if (ds_center_crop(&im, FUZZ_CROP, out, "fuzz-input") != 0) FUZZ_CHECK(strstr(core_last_error(), "fuzz-input"));
    free(out);
    ds_image_free(&im);
    return (int)(sum & 0);
}
