// dataset/dataset.h: the one public header of pmf's data module: pixels in, batches out.
// It knows nothing about models. This first part reads the idx files of (Fashion-)MNIST.
#ifndef PMF_DATASET_H
#define PMF_DATASET_H

#include <stdint.h>

// Where Debian's dataset-fashion-mnist package puts its four idx.gz files.
#define FASHION_MNIST_DIR "/usr/share/datasets/fashion-mnist"

typedef struct IdxImages {
    int n, h, w;
    uint8_t *pixels;   // n * h * w, row-major
} IdxImages;

typedef struct IdxLabels {
    int n;
    uint8_t *labels;
} IdxLabels;

// Read an idx3-ubyte image file or idx1-ubyte label file, gzip-compressed or not. On bad input
// returns -1 and leaves a message (core_last_error) naming the file and what was wrong.
int idx_load_images(const char *path, IdxImages *out);
int idx_load_labels(const char *path, IdxLabels *out);
void idx_free_images(IdxImages *im);
void idx_free_labels(IdxLabels *lb);

// Load Fashion-MNIST's train ("train") or test ("t10k") split from `dir` (NULL = the Debian path).
// Checks that images and labels agree in count and that labels are < 10.
int fashion_mnist_load(const char *dir, const char *split, IdxImages *images, IdxLabels *labels);

#endif
