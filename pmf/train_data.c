// pmf/train_data.c: the training images of a run: the built-in Fashion-MNIST in memory (shuffled
// per epoch with a seeded Fisher-Yates), or a folder of HDF5 shards (pmf_prepare) streamed by
// dataset/. Either way a step's batch is a function of (seed, step), so a resumed run repeats an
// unbroken one.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataset/dataset.h"
#include "pmf/train_internal.h"

#define STREAM_DATA 0x64617461ull   // the data order's Philox key (xor the run's seed)

// Fashion-MNIST's 28 x 28 images, kept as the idx file's bytes; fm_canvas centres one on an
// S x S black canvas ([-1, 1], background -1) when a batch is made.
#define FM_SIDE 28
static int load_fashion_mnist(PmfTrainData *d, int S) {
    IdxImages im;
    IdxLabels lb;
    if (S < FM_SIDE) {
        core_set_error("key 'dataset.image_size' = %d: Fashion-MNIST needs at least 28", S);
        return -1;
    }
    if (fashion_mnist_load(NULL, "train", &im, &lb)) return -1;
    if (im.h != FM_SIDE || im.w != FM_SIDE) {
        core_set_error("Fashion-MNIST's training images are %d x %d (expected 28 x 28)", im.h, im.w);
        idx_free_images(&im);
        idx_free_labels(&lb);
        return -1;
    }
    d->n = im.n, d->C = 1, d->S = S, d->classes = 10;
    d->pixels = im.pixels, im.pixels = NULL;   // kept; idx_free_images frees the rest
    d->labels = core_malloc((size_t)im.n * sizeof(int), "training labels");
    for (int i = 0; i < im.n; i++) d->labels[i] = lb.labels[i];
    idx_free_images(&im);
    idx_free_labels(&lb);
    d->order = core_malloc((size_t)d->n * sizeof(int), "epoch order");
    d->order_epoch = -1;
    return 0;
}

static void fm_canvas(const uint8_t *px, int S, float *dst) {
    int off = (S - FM_SIDE) / 2;
    for (int64_t k = 0; k < (int64_t)S * S; k++) dst[k] = -1.0f;
    for (int y = 0; y < FM_SIDE; y++)
        for (int x = 0; x < FM_SIDE; x++) dst[(int64_t)(y + off) * S + x + off] = px[y * FM_SIDE + x] / 127.5f - 1.0f;
}

// A shard folder must hold images of the model's geometry; d->n becomes the images per epoch over
// all ranks (the stream itself is opened by pmf_train_data_start, once the position is known).
static int check_shards(const PmfTrainConfig *cfg, PmfTrainData *d, int rank, int world) {
    DsStreamConfig sc = {cfg->data, cfg->batch_size / world, cfg->seed, 0, 0, rank, world, 1};
    DsStream *s = ds_stream_open(&sc, NULL);
    if (!s) return -1;
    int c, h, w;
    int64_t per_epoch;
    ds_stream_shape(s, &c, &h, &w, &per_epoch);
    ds_stream_close(s);
    if (c != cfg->model.channels || h != cfg->model.img_size || w != cfg->model.img_size) {
        core_set_error("key 'dataset.root' = '%s': shards hold %dx%dx%d images, the model expects %dx%dx%d "
                       "(set dataset.image_size, or prepare shards at that resolution)",
                       cfg->data, h, w, c, cfg->model.img_size, cfg->model.img_size, cfg->model.channels);
        return -1;
    }
    per_epoch *= world;   // the stream counts this rank's images; every rank gets as many
    d->n = (int)(per_epoch < 2147483647 ? per_epoch : 2147483647);
    d->C = c, d->S = h, d->classes = cfg->model.num_classes;
    return 0;
}

int pmf_train_data_open(PmfTrainData *d, const PmfTrainConfig *cfg, int rank, int world) {
    memset(d, 0, sizeof *d);
    d->seed = cfg->seed, d->rank = rank, d->world = world;
    d->builtin = !strcmp(cfg->data, "fashion-mnist");
    return d->builtin ? load_fashion_mnist(d, cfg->model.img_size) : check_shards(cfg, d, rank, world);
}

int pmf_train_data_start(PmfTrainData *d, const PmfTrainConfig *cfg, int rows, DsStreamPos pos) {
    if (d->builtin) return 0;
    // Every rank's stream hands out as many images per epoch, so rank 0's position (in the
    // checkpoint) is each rank's position in its own order.
    DsStreamConfig sc = {cfg->data, rows, cfg->seed, 0, 0, d->rank, d->world, 0};
    d->stream = ds_stream_open(&sc, &pos);
    if (!d->stream) return -1;
    d->labels32 = core_malloc((size_t)rows * sizeof(int32_t), "batch labels");
    return 0;
}

// The epoch's order: a Fisher-Yates shuffle keyed on (seed, epoch).
static void epoch_order(int *order, int n, uint64_t seed, int64_t epoch) {
    Rng r;
    rng_init(&r, seed ^ STREAM_DATA ^ ((uint64_t)epoch * 0x9E3779B97F4A7C15ull));
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng_uniform(&r) * (i + 1));
        int t = order[i];
        order[i] = order[j], order[j] = t;
    }
}

int pmf_train_data_batch(PmfTrainData *d, int64_t step, int64_t steps_per_epoch, int B, int num_classes, float *x,
                         int *y, DsStreamPos *pos) {
    int rows = B / d->world;
    int64_t numel = (int64_t)d->C * d->S * d->S;
    if (d->stream) {
        if (ds_stream_next(d->stream, x, d->labels32)) return -1;
        for (int b = 0; b < rows; b++) {
            if (d->labels32[b] < 0 || d->labels32[b] >= num_classes) {
                core_set_error("label %d in the shards is outside the model's %d classes (model.num_classes)",
                               d->labels32[b], num_classes);
                return -1;
            }
            y[b] = d->labels32[b];
        }
        *pos = ds_stream_tell(d->stream);
        return 0;
    }
    // This rank's rows rank, rank + world, ... of rows [i B, (i + 1) B) of the epoch's order (the
    // stream deals its images to ranks the same way).
    int64_t epoch = step / steps_per_epoch, first = (step % steps_per_epoch) * B;
    if (epoch != d->order_epoch) epoch_order(d->order, d->n, d->seed, epoch), d->order_epoch = epoch;
    for (int b = 0; b < rows; b++) {
        int i = d->order[first + d->rank + b * d->world];
        fm_canvas(d->pixels + (size_t)i * FM_SIDE * FM_SIDE, d->S, x + (size_t)b * numel);
        y[b] = d->labels[i];
    }
    *pos = (DsStreamPos){0, 0};
    return 0;
}

void pmf_train_data_close(PmfTrainData *d) {
    if (d->stream) ds_stream_close(d->stream);
    free(d->pixels), free(d->labels), free(d->order), free(d->labels32);
    memset(d, 0, sizeof *d);
}
