// dataset/jpeg_decode.c: JPEG bytes -> RGB pixels with libjpeg(-turbo), decoded exactly as PIL
// decodes them (libjpeg's defaults: ISLOW DCT, fancy upsampling; CMYK stored Adobe-inverted, then
// PIL's CMYK -> RGB formula), so crops match a PIL reference. libjpeg reports errors by calling
// error_exit, which by default exits the process; here it longjmps back and the file is refused.
// Not here: PNG (png_decode.c), resizing (resize.c).
#include "dataset/dataset.h"

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <jerror.h>

#include "core/core.h"

#define MAX_SCANS 1000   // progressive files with more scans are a known decoding-time bomb

typedef struct ErrorTrap {
    struct jpeg_error_mgr mgr;
    jmp_buf jump;
    char message[JMSG_LENGTH_MAX];
} ErrorTrap;

static void trap_error_exit(j_common_ptr cinfo) {
    ErrorTrap *t = (ErrorTrap *)cinfo->err;
    t->mgr.format_message(cinfo, t->message);
    longjmp(t->jump, 1);
}

// Warnings are ignored except running out of data: libjpeg would fill the rest with grey, PIL
// refuses a truncated file ("image file is truncated"), and so do we.
static void trap_emit_message(j_common_ptr cinfo, int level) {
    ErrorTrap *t = (ErrorTrap *)cinfo->err;
    if (level < 0 && t->mgr.msg_code == JWRN_JPEG_EOF) {
        snprintf(t->message, sizeof t->message, "truncated (premature end of JPEG data)");
        longjmp(t->jump, 1);
    }
}

static void limit_scans(j_common_ptr cinfo) {
    j_decompress_ptr d = (j_decompress_ptr)cinfo;
    if (d->input_scan_number > MAX_SCANS) {
        ErrorTrap *t = (ErrorTrap *)cinfo->err;
        snprintf(t->message, sizeof t->message, "more than %d progressive scans", MAX_SCANS);
        longjmp(t->jump, 1);
    }
}

// PIL's cmyk2rgb (Convert.c): r = clip(nk - nk * c / 255) with nk = 255 - k, rounded as MULDIV255.
static uint8_t cmyk_channel(int c, int nk) {
    int t = c * nk + 128;
    int v = nk - (((t >> 8) + t) >> 8);
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

int ds_image_decode_jpeg(const unsigned char *bytes, size_t n, const char *name, int64_t max_pixels, DsImage *out) {
    memset(out, 0, sizeof *out);
    const volatile int64_t limit = max_pixels > 0 ? max_pixels : DS_MAX_PIXELS_DEFAULT;
    struct jpeg_decompress_struct cinfo;
    struct jpeg_progress_mgr progress = {.progress_monitor = limit_scans};
    ErrorTrap trap;
    // Volatile: changed between setjmp and longjmp, read after the jump.
    uint8_t *volatile px = NULL;
    unsigned char *volatile row = NULL;
    cinfo.err = jpeg_std_error(&trap.mgr);
    trap.mgr.error_exit = trap_error_exit;
    trap.mgr.emit_message = trap_emit_message;
    trap.message[0] = 0;
    if (setjmp(trap.jump)) {
        jpeg_destroy_decompress(&cinfo);
        free(px);
        free(row);
        core_set_error("%s: bad JPEG: %s", name, trap.message);
        return -1;
    }
    jpeg_create_decompress(&cinfo);
    cinfo.progress = &progress;
    if (n > (size_t)0xFFFFFFFFu) {
        snprintf(trap.message, sizeof trap.message, "file larger than 4 GB");
        longjmp(trap.jump, 1);
    }
    jpeg_mem_src(&cinfo, bytes, (unsigned long)n);
    jpeg_read_header(&cinfo, TRUE);
    int64_t w = cinfo.image_width, h = cinfo.image_height;
    if (w * h > limit) {
        snprintf(trap.message, sizeof trap.message, "%lld x %lld pixels is above the limit of %lld", (long long)w,
                 (long long)h, (long long)limit);
        longjmp(trap.jump, 1);
    }
    const char *converted = NULL;
    int cmyk = 0;
    switch (cinfo.jpeg_color_space) {
    case JCS_GRAYSCALE:
        converted = "grayscale JPEG";
        cinfo.out_color_space = JCS_RGB;   // replicates the channel, as PIL's L -> RGB
        break;
    case JCS_CMYK:
    case JCS_YCCK:
        converted = "CMYK JPEG";
        cinfo.out_color_space = JCS_CMYK;
        cmyk = 1;
        break;
    default:
        cinfo.out_color_space = JCS_RGB;
    }
    jpeg_start_decompress(&cinfo);
    int comps = cinfo.output_components;
    if (comps != (cmyk ? 4 : 3)) {
        snprintf(trap.message, sizeof trap.message, "unexpected %d output components", comps);
        longjmp(trap.jump, 1);
    }
    px = malloc((size_t)w * (size_t)h * 3);
    row = malloc((size_t)w * (size_t)comps);
    if (!px || !row) {
        snprintf(trap.message, sizeof trap.message, "out of memory for %lld x %lld pixels", (long long)w, (long long)h);
        longjmp(trap.jump, 1);
    }
    while (cinfo.output_scanline < cinfo.output_height) {
        uint8_t *dst = px + (size_t)cinfo.output_scanline * (size_t)w * 3;
        JSAMPROW rp = cmyk ? row : dst;
        jpeg_read_scanlines(&cinfo, &rp, 1);
        if (cmyk)   // PIL reads CMYK JPEGs as "CMYK;I" (Adobe's inverted convention)
            for (int64_t x = 0; x < w; x++) {
                const unsigned char *s = row + 4 * x;
                int nk = s[3];   // 255 - k, with k = 255 - s[3]
                for (int ch = 0; ch < 3; ch++) dst[3 * x + ch] = cmyk_channel(255 - s[ch], nk);
            }
    }
    jpeg_finish_decompress(&cinfo);
    jpeg_destroy_decompress(&cinfo);
    free(row);
    out->w = (int)w;
    out->h = (int)h;
    out->c = 3;
    out->px = px;
    out->converted = converted;
    return 0;
}
