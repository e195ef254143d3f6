// fuzz/fuzz_png.c: libFuzzer target for the PNG decoder alone (dataset/png_decode.c: the chunk
// length pre-check, libpng's limits, the colour conversions), so the fuzzer does not spend its
// time on JPEG signatures as fuzz_jpeg does. Each input is decoded in both channel modes, RGB
// (pmf_prepare, pmf_lpips) and native (pmf_eval's PNG folders, gray kept as c = 1). Any input must
// be refused with a message naming the source by both modes, or decoded by both to w x h pixels
// within the pixel limit, every byte readable, and the two must agree: native c is 1 for a gray
// colour type and 3 otherwise; native c = 3 gives the RGB mode's bytes, native c = 1 each gray value
// the RGB mode repeats three times (PIL's "L" to "RGB").
#include "dataset/dataset.h"

#include "core/core.h"
#include "fuzz/fuzz_common.h"

#define FUZZ_PNG_MAX_PIXELS (1 << 22)

static int fuzz_png(const uint8_t *data, size_t size) {
    DsImage rgb, native;
    int rc_rgb = ds_image_decode_png(data, size, "fuzz-input.png", FUZZ_PNG_MAX_PIXELS, &rgb);
    if (rc_rgb != 0) FUZZ_CHECK(strstr(core_last_error(), "fuzz-input.png") != NULL && rgb.px == NULL);
    int rc_native =
        ds_image_decode_png_channels(data, size, "fuzz-input.png", FUZZ_PNG_MAX_PIXELS, DS_CHANNELS_NATIVE, &native);
    if (rc_native != 0) FUZZ_CHECK(strstr(core_last_error(), "fuzz-input.png") != NULL && native.px == NULL);
    FUZZ_CHECK(rc_rgb == rc_native);   // the modes share every check: one refuses what the other does
    if (rc_rgb != 0) return 0;
    FUZZ_CHECK(rgb.w >= 1 && rgb.h >= 1 && rgb.c == 3 && rgb.px != NULL);
    FUZZ_CHECK((int64_t)rgb.w * rgb.h <= FUZZ_PNG_MAX_PIXELS);
    // Decoded, so the file begins with its signature and IHDR, whose byte 25 is the colour type:
    // native keeps one channel exactly when it has no colour bit (gray, gray+alpha).
    FUZZ_CHECK(size > 25 && native.w == rgb.w && native.h == rgb.h && native.px != NULL);
    FUZZ_CHECK(native.c == (data[25] & 2 ? 3 : 1));
    size_t np = (size_t)rgb.w * rgb.h;
    for (size_t i = 0; i < np; i++)
        for (int k = 0; k < 3; k++) FUZZ_CHECK(rgb.px[3 * i + k] == native.px[native.c * i + (native.c == 3 ? k : 0)]);
    ds_image_free(&rgb);
    ds_image_free(&native);
    return 1;
}

FUZZ_ENTRY(fuzz_png)
