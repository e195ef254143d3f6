// cli/eval_shards.c: the glue between eval/ and dataset/ that the house plan allows only in cli/:
// EvalShardReader's four functions over ds_shard_open / ds_shard_read_range / ds_shard_close, so
// the shards pmf_eval scores get dataset/'s layout checks and size limits, and the messages of
// that reader (which name the file).
// Not here: any reading of HDF5 (dataset/shard_read.c) or of images (eval/pipeline.c).
#include "cli/eval_shards.h"

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

const EvalShardReader *cli_eval_shard_reader(void) {
    static const EvalShardReader reader = {NULL, shard_claims, shard_open, shard_read, shard_close};
    return &reader;
}
