// cli/eval_readers.c: the glue between eval/ and dataset/ that the house plan allows only in cli/:
// - EvalShardReader's four functions over ds_shard_open / ds_shard_read_range / ds_shard_close, so
//   the shards pmf_eval scores get dataset/'s layout checks and size limits, and the messages of
//   that reader (which name the file);
// - EvalImageDecoder over ds_image_load_png in its native-channel mode, so each image of a PNG
//   folder gets dataset/'s chunk-length checks, libpng limits and pixel limit (fuzzed, in both
//   modes, by fuzz/fuzz_png.c).
// Not here: any reading of HDF5 or PNG (dataset/shard_read.c, dataset/png_decode.c), or the
// listing of folders (eval/pipeline.c).
#include "cli/eval_readers.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "dataset/dataset.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n > k && strcasecmp(s + n - k, suffix) == 0;
}

// A file named as a shard is claimed even without the HDF5 signature, so that a damaged one gets
// dataset/'s message ("not an HDF5 file") rather than eval's "not an image set".
static int shard_claims(void *ctx, const char *path) {
    return ds_is_hdf5_file(path) || ends_with(path, ".h5") || ends_with(path, ".hdf5");
}

static void *shard_open(void *ctx, const char *path, EvalShardInfo *info) {
    DsShard *s = calloc(1, sizeof *s);
    if (!s) {
        core_set_error("eval: out of memory opening shard '%s'", path);
        return NULL;
    }
    if (ds_shard_open(path, s)) {   // ds_shard_open closes what it opened on failure
        free(s);
        return NULL;
    }
    info->n = s->n, info->h = s->h, info->w = s->w, info->c = s->c;
    info->labels = s->labels;   // every shard has them: dataset/ checked their count and range
    return s;
}

static int shard_read(void *shard, int64_t first, int64_t n, uint8_t *dst) {
    return ds_shard_read_range(shard, first, n, dst);
}

static void shard_close(void *shard) {
    ds_shard_close(shard);
    free(shard);
}

// Gray (and gray+alpha) stays C = 1 and everything else is C = 3, as PIL's convert("L") and
// convert("RGB") give them, with alpha dropped (not composited), palettes expanded and the
// default pixel limit (DS_MAX_PIXELS_DEFAULT). Where this differs from the reader eval had before
// (libpng's simplified API), it now agrees with PIL: 16-bit channels are reduced to their high
// byte (the simplified API took them as linear light and re-encoded them to sRGB: 0x4A6F gave
// 145, not 74), and a gAMA chunk is ignored (the simplified API applied it). For 16-bit gray,
// Pillow (9.4) instead clamps the value to 255; neither reader does that.
static uint8_t *png_decode_file(void *ctx, const char *path, int *h, int *w, int *c) {
    DsImage im;
    if (ds_image_load_png(path, 0, DS_CHANNELS_NATIVE, &im)) return NULL;   // the message names the file
    *h = im.h, *w = im.w, *c = im.c;
    return im.px;   // malloc'd by dataset/; eval frees it
}

const EvalReaders *cli_eval_readers(void) {
    static const EvalShardReader shards = {NULL, shard_claims, shard_open, shard_read, shard_close};
    static const EvalImageDecoder images = {NULL, png_decode_file};
    static const EvalReaders readers = {&shards, &images};
    return &readers;
}
