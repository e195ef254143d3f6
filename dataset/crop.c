// dataset/crop.c: the ADM centre crop (guided-diffusion's center_crop_arr, spec section 7.3):
//   while min(size) >= 2 * target: resize BOX to (w // 2, h // 2)
//   scale = target / min(size); resize BICUBIC to (round(w * scale), round(h * scale))
//   crop target x target at ((h - target) // 2, (w - target) // 2)
// round() is Python's: half to even, which nearbyint gives in the default rounding mode.
#include "dataset/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define MAX_RESIZED_PIXELS ((int64_t)1 << 28)

int ds_center_crop(const DsImage *im, int size, uint8_t *dst, const char *name) {
    int w = im->w, h = im->h, c = im->c;
    if (w < 1 || h < 1 || size < 1) {
        core_set_error("%s: cannot crop a %d x %d image to %d", name, w, h, size);
        return -1;
    }
    double s0 = (double)size / (w < h ? w : h);
    if ((double)w * s0 * (double)h * s0 > (double)MAX_RESIZED_PIXELS) {
        core_set_error("%s: %d x %d: aspect ratio too extreme for a %d px centre crop", name, w, h, size);
        return -1;
    }
    uint8_t *cur = NULL;   // owned current image; NULL while it is still im->px
    const uint8_t *src = im->px;
    while ((w < h ? w : h) >= 2 * size) {
        int nw = w / 2, nh = h / 2;
        uint8_t *next = core_malloc((size_t)nw * nh * c, "centre crop");
        ds_resize(src, w, h, c, next, nw, nh, DS_FILTER_BOX);
        free(cur);
        src = cur = next;
        w = nw;
        h = nh;
    }
    double scale = (double)size / (w < h ? w : h);
    int nw = (int)nearbyint(w * scale), nh = (int)nearbyint(h * scale);
    if (nw != w || nh != h) {
        uint8_t *next = core_malloc((size_t)nw * nh * c, "centre crop");
        ds_resize(src, w, h, c, next, nw, nh, DS_FILTER_BICUBIC);
        free(cur);
        src = cur = next;
        w = nw;
        h = nh;
    }
    int y0 = (h - size) / 2, x0 = (w - size) / 2;
    for (int y = 0; y < size; y++)
        memcpy(dst + (size_t)y * size * c, src + ((size_t)(y0 + y) * w + x0) * c, (size_t)size * c);
    free(cur);
    return 0;
}
