// dataset/png_decode.c: PNG bytes -> 8-bit pixels with libpng, the one PNG reader of pmf (pmf_prepare,
// pmf_lpips, and pmf_eval's PNG folders through cli/eval_readers.c). Converted as PIL does:
// palettes expanded, alpha dropped (not composited; tRNS ignored), 16-bit reduced to its high byte
// (PIL's 16-bit RGB; for 16-bit gray PIL instead clamps the value to 255, which pmf does not copy).
// DS_CHANNELS_RGB gives c = 3 for every image (PIL's convert("RGB")); DS_CHANNELS_NATIVE keeps
// gray and gray+alpha images as c = 1 (convert("L")) and gives c = 3 for the rest. Both share
// every check and limit below. libpng's errors longjmp back here and the file is refused with a
// message naming it.
#include "dataset/dataset.h"

#include <ctype.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <png.h>

#include "core/core.h"

typedef struct PngSource {
    const unsigned char *bytes;
    size_t n, pos;
} PngSource;

typedef struct PngTrap {
    jmp_buf jump;
    char message[256];
} PngTrap;

static void png_read_mem(png_structp p, png_bytep dst, png_size_t len) {
    PngSource *s = png_get_io_ptr(p);
    if (len > s->n - s->pos) png_error(p, "truncated (premature end of PNG data)");
    memcpy(dst, s->bytes + s->pos, len);
    s->pos += len;
}

static void png_trap_error(png_structp p, png_const_charp msg) {
    PngTrap *t = png_get_error_ptr(p);
    snprintf(t->message, sizeof t->message, "%s", msg);
    longjmp(t->jump, 1);
}

static void png_ignore_warning(png_structp p, png_const_charp msg) {}

// libpng reads each ancillary chunk (text, ICC profile, ...) into a buffer of the chunk's claimed
// length before reading its bytes, and its own length limit (png_set_chunk_malloc_max) is only a
// "benign" error, a warning when reading: a 67-byte file claiming a 2 GB text chunk cost 2 GB.
// So the claims are checked here first: every chunk up to IEND must lie inside the bytes we
// have, and no chunk but IDAT may be larger than DS_PNG_MAX_CHUNK_BYTES (dataset.h; any real ICC
// profile or caption is far smaller; IDAT is streamed). libpng's limits stay set for what it inflates.
#define DS_PNG_MAX_ANCILLARY_CHUNKS 1000u
#define DS_PNG_MAX_SIDE 1000000u

static uint32_t be32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

// 0 if the chunk lengths are plausible claims, else -1 with `msg` filled.
static int png_check_chunks(const unsigned char *b, size_t n, char *msg, size_t cap) {
    size_t pos = 8;   // after the signature (libpng checks that)
    // Every chunk whose length and type are in the file is checked, even one cut off before its
    // CRC: libpng allocates the claimed length before it finds the file short (fuzz_png found a
    // 2 GB tEXt claim in a file's last 9 bytes).
    while (n >= 8 && pos <= n - 8) {
        uint32_t len = be32(b + pos);
        const unsigned char *type = b + pos + 4;
        int idat = !memcmp(type, "IDAT", 4);
        size_t room = n - pos - 8 >= 4 ? n - pos - 12 : 0;   // data bytes before where its CRC must be
        if (len > room || (!idat && len > DS_PNG_MAX_CHUNK_BYTES)) {
            snprintf(msg, cap, "chunk '%c%c%c%c' at byte %zu claims %u bytes (%zu remain in the file, limit %u for "
                               "chunks but IDAT)", isprint(type[0]) ? type[0] : '?', isprint(type[1]) ? type[1] : '?',
                     isprint(type[2]) ? type[2] : '?', isprint(type[3]) ? type[3] : '?', pos, len, room,
                     DS_PNG_MAX_CHUNK_BYTES);
            return -1;
        }
        if (!memcmp(type, "IEND", 4)) break;
        pos += 12 + (size_t)len;
    }
    return 0;
}

int ds_image_decode_png(const unsigned char *bytes, size_t n, const char *name, int64_t max_pixels, DsImage *out) {
    return ds_image_decode_png_channels(bytes, n, name, max_pixels, DS_CHANNELS_RGB, out);
}

int ds_image_decode_png_channels(const unsigned char *bytes, size_t n, const char *name, int64_t max_pixels,
                                 DsChannels channels, DsImage *out) {
    memset(out, 0, sizeof *out);
    const volatile int64_t limit = max_pixels > 0 ? max_pixels : DS_MAX_PIXELS_DEFAULT;
    PngTrap trap = {.message = ""};
    if (n >= 8 && png_check_chunks(bytes, n, trap.message, sizeof trap.message)) {
        core_set_error("%s: bad PNG: %s", name, trap.message);
        return -1;
    }
    PngSource src = {bytes, n, 0};
    png_structp p = png_create_read_struct(PNG_LIBPNG_VER_STRING, &trap, png_trap_error, png_ignore_warning);
    png_infop info = p ? png_create_info_struct(p) : NULL;
    uint8_t *volatile px = NULL;
    png_bytep *volatile rows = NULL;
    if (!p || !info) {
        png_destroy_read_struct(p ? &p : NULL, NULL, NULL);
        core_set_error("%s: cannot set up libpng", name);
        return -1;
    }
    if (setjmp(trap.jump)) {
        png_destroy_read_struct(&p, &info, NULL);
        free(px);
        free(rows);
        core_set_error("%s: bad PNG: %s", name, trap.message);
        return -1;
    }
    png_set_user_limits(p, DS_PNG_MAX_SIDE, DS_PNG_MAX_SIDE);
    png_set_chunk_cache_max(p, DS_PNG_MAX_ANCILLARY_CHUNKS);
    png_set_chunk_malloc_max(p, DS_PNG_MAX_CHUNK_BYTES);
    png_set_read_fn(p, &src, png_read_mem);
    png_read_info(p, info);
    png_uint_32 w = png_get_image_width(p, info), h = png_get_image_height(p, info);
    if ((int64_t)w * (int64_t)h > limit) {
        snprintf(trap.message, sizeof trap.message, "%u x %u pixels is above the limit of %lld", w, h,
                 (long long)limit);
        longjmp(trap.jump, 1);
    }
    int type = png_get_color_type(p, info);
    int gray = !(type & PNG_COLOR_MASK_COLOR);   // gray or gray+alpha (a palette has the colour bit)
    int c = gray && channels == DS_CHANNELS_NATIVE ? 1 : 3;
    const char *converted = NULL;
    if (type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(p);
    if (gray) png_set_expand_gray_1_2_4_to_8(p);
    if (gray && c == 3) {
        png_set_gray_to_rgb(p);
        converted = "grayscale PNG";
    }
    if (type & PNG_COLOR_MASK_ALPHA || png_get_valid(p, info, PNG_INFO_tRNS)) converted = "PNG with alpha";
    png_set_strip_16(p);
    png_set_strip_alpha(p);
    png_set_interlace_handling(p);
    png_read_update_info(p, info);
    if ((int)png_get_channels(p, info) != c || png_get_bit_depth(p, info) != 8) {
        snprintf(trap.message, sizeof trap.message, "cannot convert to 8-bit %s", c == 1 ? "gray" : "RGB");
        longjmp(trap.jump, 1);
    }
    px = malloc((size_t)w * h * c);
    rows = malloc(sizeof(png_bytep) * h);
    if (!px || !rows) {
        snprintf(trap.message, sizeof trap.message, "out of memory for %u x %u pixels", w, h);
        longjmp(trap.jump, 1);
    }
    for (png_uint_32 y = 0; y < h; y++) rows[y] = px + (size_t)y * w * c;
    png_read_image(p, rows);
    png_read_end(p, NULL);
    png_destroy_read_struct(&p, &info, NULL);
    free(rows);
    out->w = (int)w;
    out->h = (int)h;
    out->c = c;
    out->px = px;
    out->converted = converted;
    return 0;
}
