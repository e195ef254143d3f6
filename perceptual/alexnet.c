// perceptual/alexnet.c: torchvision's AlexNet `features` up to relu5 (the five taps of lpips'
// pn.alexnet) as core ops, its safetensors loader, and the hash weights tests share with PyTorch.
// Not here: the LPIPS head (lpips.c). The trunk is always frozen.
#include "perceptual.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// Conv j: torchvision feature index, channels, kernel, stride, padding, and whether the 3x3
// stride-2 max-pool (features.2 / features.5) precedes it. Every conv is followed by its ReLU and
// tapped (lpips' slices end at features.1, 4, 7, 9, 11).
static const int alex_index[ALEXNET_N_CONV] = {0, 3, 6, 8, 10};
static const int alex_cin[ALEXNET_N_CONV] = {3, 64, 192, 384, 256};
static const int alex_cout[ALEXNET_N_CONV] = {64, 192, 384, 256, 256};
static const int alex_k[ALEXNET_N_CONV] = {11, 5, 3, 3, 3};
static const int alex_stride[ALEXNET_N_CONV] = {4, 1, 1, 1, 1};
static const int alex_pad[ALEXNET_N_CONV] = {2, 2, 1, 1, 1};
static const int alex_pool_before[ALEXNET_N_CONV] = {0, 1, 1, 0, 0};

int alexnet_feature_index(int i) { return alex_index[i]; }

void alexnet_init(Alexnet *a) {
    memset(a, 0, sizeof *a);
    params_init(&a->ps, 2 * ALEXNET_N_CONV);
    char name[64];
    for (int j = 0; j < ALEXNET_N_CONV; j++) {
        int ws[4] = {alex_cout[j], alex_cin[j], alex_k[j], alex_k[j]}, bs[1] = {alex_cout[j]};
        snprintf(name, sizeof name, "features.%d.weight", alex_index[j]);
        a->w[j] = params_declare(&a->ps, name, 4, ws);
        snprintf(name, sizeof name, "features.%d.bias", alex_index[j]);
        a->b[j] = params_declare(&a->ps, name, 1, bs);
    }
    params_finalize(&a->ps);
    // frozen: ops on these never record weight gradients
    for (int i = 0; i < a->ps.n; i++) a->ps.tensors[i].requires_grad = 0;
}

int alexnet_load(Alexnet *a, const char *path) {
    SafeTensors st;
    if (safetensors_open(&st, path) != 0) {
        char why[512];   // the loader's message, copied: core_set_error reuses its buffer
        snprintf(why, sizeof why, "%s", core_last_error());
        core_set_error("alexnet: cannot read '%s' (%s). Make it from torchvision's alexnet-owt-7be5be79.pth with: "
                       "/usr/bin/python3 tools/convert_weights.py alexnet alexnet-owt-7be5be79.pth %s",
                       path, why, path);
        return -1;
    }
    int rc = params_read_safetensors(&a->ps, &st, path, "alexnet",
                                     "expected torchvision feature names; re-run tools/convert_weights.py alexnet");
    safetensors_close(&st);
    return rc;
}

void alexnet_free(Alexnet *a) { params_free(&a->ps); }

void alexnet_taps(Tape *tp, const Alexnet *a, Tensor *x, Tensor **taps) {
    if (x->ndim != 4 || x->shape[1] != 3) core_fatal("alexnet_taps: input must be (N, 3, H, W)");
    if (x->shape[2] < ALEXNET_MIN_SIZE || x->shape[3] < ALEXNET_MIN_SIZE)
        core_fatal("alexnet_taps: input is %dx%d; AlexNet's five taps need at least %dx%d", x->shape[3], x->shape[2],
                   ALEXNET_MIN_SIZE, ALEXNET_MIN_SIZE);
    Tensor *h = x;
    for (int j = 0; j < ALEXNET_N_CONV; j++) {
        if (alex_pool_before[j]) h = op_maxpool2d(tp, h, 3, 3, 2, 2, 0, 0, 0);
        int s = alex_stride[j], p = alex_pad[j];
        h = op_relu(tp, op_conv2d(tp, h, a->w[j], a->b[j], s, s, p, p, 1));
        taps[j] = h;
    }
}

void alexnet_fill_hash(Alexnet *a) {
    for (int j = 0; j < ALEXNET_N_CONV; j++) {
        float ws = (float)sqrt(6.0 / ((double)alex_cin[j] * alex_k[j] * alex_k[j]));
        perceptual_hash_fill(a->w[j]->data, a->w[j]->numel, ALEXNET_HASH_ID0 + 2 * (uint64_t)j, ws);
        perceptual_hash_fill(a->b[j]->data, a->b[j]->numel, ALEXNET_HASH_ID0 + 2 * (uint64_t)j + 1, 0.1f);
    }
}
