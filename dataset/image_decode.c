// dataset/image_decode.c: tells JPEG from PNG by the signature (never by the file name), reads a
// file into memory for the decoders (any image, or a PNG only), and frees images.
#include "dataset/dataset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define MAX_FILE_BYTES ((int64_t)1 << 30)

int ds_image_decode(const unsigned char *bytes, size_t n, const char *name, int64_t max_pixels, DsImage *out) {
    memset(out, 0, sizeof *out);
    static const unsigned char png_sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (n >= 3 && bytes[0] == 0xFF && bytes[1] == 0xD8 && bytes[2] == 0xFF)
        return ds_image_decode_jpeg(bytes, n, name, max_pixels, out);
    if (n >= 8 && memcmp(bytes, png_sig, 8) == 0) return ds_image_decode_png(bytes, n, name, max_pixels, out);
    core_set_error("%s: not an image (no JPEG or PNG signature in its first bytes)", name);
    return -1;
}

// The whole file at `path` in *bytes (malloc'd) and *n; -1 with a message naming the file.
static int read_image_file(const char *path, unsigned char **bytes, size_t *n) {
    *bytes = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        core_set_error("%s: cannot open", path);
        return -1;
    }
    int rc = -1;
    unsigned char *b = NULL;
    long len = fseek(f, 0, SEEK_END) == 0 ? ftell(f) : -1;
    if (len < 0 || len > MAX_FILE_BYTES || fseek(f, 0, SEEK_SET) != 0) {
        core_set_error("%s: cannot read (size %ld)", path, len);
        goto done;
    }
    b = malloc(len ? (size_t)len : 1);
    if (!b) {
        core_set_error("%s: out of memory for its %ld bytes", path, len);
        goto done;
    }
    if (fread(b, 1, (size_t)len, f) != (size_t)len) {
        core_set_error("%s: short read", path);
        goto done;
    }
    *bytes = b, *n = (size_t)len, b = NULL;
    rc = 0;
done:
    free(b);
    fclose(f);
    return rc;
}

// The file at `path`, decoded as any image (png_only 0: JPEG or PNG by its signature, RGB) or as a
// PNG only, with `channels`.
static int load_file(const char *path, int64_t max_pixels, int png_only, DsChannels channels, DsImage *out) {
    memset(out, 0, sizeof *out);
    unsigned char *b;
    size_t n;
    if (read_image_file(path, &b, &n)) return -1;
    int rc = png_only ? ds_image_decode_png_channels(b, n, path, max_pixels, channels, out)
                      : ds_image_decode(b, n, path, max_pixels, out);
    free(b);
    return rc;
}

int ds_image_load(const char *path, int64_t max_pixels, DsImage *out) {
    return load_file(path, max_pixels, 0, DS_CHANNELS_RGB, out);
}

int ds_image_load_png(const char *path, int64_t max_pixels, DsChannels channels, DsImage *out) {
    return load_file(path, max_pixels, 1, channels, out);
}

void ds_image_free(DsImage *im) {
    free(im->px);
    memset(im, 0, sizeof *im);
}
