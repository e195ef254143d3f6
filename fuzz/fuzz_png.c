// fuzz/fuzz_png.c: libFuzzer target for the PNG decoder alone (dataset/png_decode.c: the chunk
// length pre-check, libpng's limits, the colour conversions), so the fuzzer does not spend its
// time on JPEG signatures as fuzz_jpeg does. Any input must be refused with a message naming
// the source, or decode to w x h RGB pixels within the pixel limit, every byte readable.
#include "dataset/dataset.h"

#include "core/core.h"
#include "fuzz/fuzz_common.h"

#define FUZZ_PNG_MAX_PIXELS (1 << 22)

static int fuzz_png(const uint8_t *data, size_t size) {
    DsImage im;
    if (ds_image_decode_png(data, size, "fuzz-input.png", FUZZ_PNG_MAX_PIXELS, &im) != 0) {
        FUZZ_CHECK(strstr(core_last_error(), "fuzz-input.png") != NULL);
        FUZZ_CHECK(im.px == NULL);
        return 0;
    }
    FUZZ_CHECK(im.w >= 1 && im.h >= 1 && im.c == 3 && im.px != NULL);
    FUZZ_CHECK((int64_t)im.w * im.h <= FUZZ_PNG_MAX_PIXELS);
    unsigned sum = 0;
    for (size_t i = 0; i < (size_t)im.w * im.h * 3; i++) sum += im.px[i];
    (void)sum;
    ds_image_free(&im);
    return 1;
}

FUZZ_ENTRY(fuzz_png)
