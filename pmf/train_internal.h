// pmf/train_internal.h: what the files of the training run share inside pmf/ (not public: the
// run's public face is pmf_train_* in pmf/pmf.h).
#ifndef PMF_TRAIN_INTERNAL_H
#define PMF_TRAIN_INTERNAL_H

#include "dataset/dataset.h"
#include "pmf/pmf.h"

// The training images (train_data.c).
typedef struct PmfTrainData {
    int builtin;               // 1: Fashion-MNIST in memory; 0: HDF5 shards streamed
    int n, C, S, classes;      // images per epoch (all ranks), geometry, classes
    uint8_t *pixels;           // built-in: (n, 28, 28) as in the idx file; each batch puts them
                               // on the S x S canvas (at 512 px the canvases would be 63 GB)
    int *labels, *order;       // built-in: labels and the current epoch's order
    int64_t order_epoch;
    DsStream *stream;          // shards
    int32_t *labels32;
    uint64_t seed;
    int rank, world;
} PmfTrainData;

// Loads the built-in data or checks the shard folder against the model; -1 with a message.
int pmf_train_data_open(PmfTrainData *d, const PmfTrainConfig *cfg, int rank, int world);
// Opens the shard stream at pos for batches of `rows` images per rank (nothing for the built-in data).
int pmf_train_data_start(PmfTrainData *d, const PmfTrainConfig *cfg, int rows, DsStreamPos pos);
// This rank's B / world rows of step `step`'s global batch B into x and y; pos gets the stream's
// position after it ((0, 0) for the built-in data). -1 with a message.
int pmf_train_data_batch(PmfTrainData *d, int64_t step, int64_t steps_per_epoch, int B, int num_classes, float *x,
                         int *y, DsStreamPos *pos);
void pmf_train_data_close(PmfTrainData *d);

#endif
