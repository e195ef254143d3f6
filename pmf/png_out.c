// pmf/png_out.c: PNG files through libpng (sample grids), written atomically.
#include <errno.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pmf/pmf.h"

int pmf_png_write(const char *path, const uint8_t *pixels, int width, int height, int channels) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        core_set_error("%s: cannot create (%s)", tmp, strerror(errno));
        return -1;
    }
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (!png || !info || setjmp(png_jmpbuf(png))) {
        png_destroy_write_struct(&png, &info);
        fclose(f);
        unlink(tmp);
        core_set_error("%s: libpng failed to write", path);
        return -1;
    }
    png_init_io(png, f);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB,
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    for (int y = 0; y < height; y++) png_write_row(png, (png_const_bytep)(pixels + (size_t)y * width * channels));
    png_write_end(png, NULL);
    png_destroy_write_struct(&png, &info);
    if (fflush(f) || fsync(fileno(f))) {
        fclose(f);
        unlink(tmp);
        core_set_error("%s: write failed (%s)", tmp, strerror(errno));
        return -1;
    }
    fclose(f);
    if (rename(tmp, path)) {
        core_set_error("%s: cannot rename to %s (%s)", tmp, path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

void pmf_image_to_u8(const float *img, int C, int H, int W, uint8_t *px, size_t row_bytes) {
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                // [-1, 1] -> [0, 255] with rounding, as the torch evaluation does (spec 9).
                float v = (img[((size_t)c * H + y) * W + x] + 1.0f) * 127.5f;
                v = v < 0 ? 0 : v > 255 ? 255 : v;
                px[(size_t)y * row_bytes + (size_t)x * C + c] = (uint8_t)(v + 0.5f);
            }
}

int pmf_png_grid(const char *path, const float *images, int B, int C, int H, int W, int cols) {
    const int pad = 2;
    int rows = (B + cols - 1) / cols;
    int gw = cols * (W + pad) + pad, gh = rows * (H + pad) + pad;
    uint8_t *px = core_malloc((size_t)gw * gh * C, "png grid");
    memset(px, 255, (size_t)gw * gh * C);   // white borders
    for (int b = 0; b < B; b++) {
        int ox = pad + (b % cols) * (W + pad), oy = pad + (b / cols) * (H + pad);
        pmf_image_to_u8(images + (size_t)b * C * H * W, C, H, W, px + ((size_t)oy * gw + ox) * C, (size_t)gw * C);
    }
    int rc = pmf_png_write(path, px, gw, gh, C);
    free(px);
    return rc;
}
