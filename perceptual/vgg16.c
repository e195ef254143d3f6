// perceptual/vgg16.c: torchvision's VGG16 `features` up to relu5_3 as core ops, its safetensors
// loader, and the deterministic hash weights that tests and benches share with PyTorch.
// Not here: the LPIPS head (lpips.c), anything trainable (the trunk is always frozen).
#include "perceptual.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

// Conv j: (Cin, Cout) and whether a 2x2 max-pool precedes it; taps after convs 1, 3, 6, 9, 12.
static const int vgg_cin[VGG16_N_CONV] = {3, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512};
static const int vgg_cout[VGG16_N_CONV] = {64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512};
static const int vgg_pool_before[VGG16_N_CONV] = {0, 0, 1, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0};
static const int vgg_tap_after[VGG16_N_CONV] = {-1, 0, -1, 1, -1, -1, 2, -1, -1, 3, -1, -1, 4};
static const int vgg_index[VGG16_N_CONV] = {0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28};

#ifndef PMF_PERCEPTUAL_WEIGHTS_DIR
#define PMF_PERCEPTUAL_WEIGHTS_DIR "perceptual/weights"
#endif
const char *perceptual_weights_dir(void) { return PMF_PERCEPTUAL_WEIGHTS_DIR; }

int vgg16_feature_index(int i) { return vgg_index[i]; }

void vgg16_init(Vgg16 *v) {
    memset(v, 0, sizeof *v);
    params_init(&v->ps, 2 * VGG16_N_CONV);
    char name[64];
    for (int j = 0; j < VGG16_N_CONV; j++) {
        int ws[4] = {vgg_cout[j], vgg_cin[j], 3, 3}, bs[1] = {vgg_cout[j]};
        snprintf(name, sizeof name, "features.%d.weight", vgg_index[j]);
        v->w[j] = params_declare(&v->ps, name, 4, ws);
        snprintf(name, sizeof name, "features.%d.bias", vgg_index[j]);
        v->b[j] = params_declare(&v->ps, name, 1, bs);
    }
    params_finalize(&v->ps);
    // frozen: ops on these never record weight gradients
    for (int i = 0; i < v->ps.n; i++) v->ps.tensors[i].requires_grad = 0;
}

int vgg16_load(Vgg16 *v, const char *path) {
    SafeTensors st;
    if (safetensors_open(&st, path) != 0) {
        char why[512];   // the loader's message, copied: core_set_error reuses its buffer
        snprintf(why, sizeof why, "%s", core_last_error());
        core_set_error("vgg16: cannot read '%s' (%s). Make it from torchvision's vgg16-397923af.pth with: "
                       "/usr/bin/python3 tools/convert_weights.py vgg16 vgg16-397923af.pth %s",
                       path, why, path);
        return -1;
    }
    int rc = params_read_safetensors(&v->ps, &st, path, "vgg16",
                                     "expected torchvision feature names; re-run tools/convert_weights.py vgg16");
    safetensors_close(&st);
    return rc;
}

void vgg16_free(Vgg16 *v) { params_free(&v->ps); }

void vgg16_taps(Tape *tp, const Vgg16 *v, Tensor *x, Tensor **taps) {
    if (x->ndim != 4 || x->shape[1] != 3) core_fatal("vgg16_taps: input must be (N, 3, H, W)");
    Tensor *h = x;
    for (int j = 0; j < VGG16_N_CONV; j++) {
        if (vgg_pool_before[j]) h = op_maxpool2d(tp, h, 2, 2, 2, 2, 0, 0, 0);
        h = op_relu(tp, op_conv2d(tp, h, v->w[j], v->b[j], 1, 1, 1, 1, 1));
        if (vgg_tap_after[j] >= 0) taps[vgg_tap_after[j]] = h;
    }
}

// ---------------------------------------------------------------------------------------------
// Hash weights (the formula is in perceptual.h and in tools/goldens/cases_lpips.py).

static uint64_t splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void perceptual_hash_fill(float *x, int64_t n, uint64_t id, float scale) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        int64_t k = (int64_t)(splitmix64((id << 40) + (uint64_t)i) >> 40);
        x[i] = scale * ((float)(k - (1 << 23)) / 8388608.0f);
    }
}

void vgg16_fill_hash(Vgg16 *v) {
    for (int j = 0; j < VGG16_N_CONV; j++) {
        float ws = (float)sqrt(6.0 / (vgg_cin[j] * 9.0));
        perceptual_hash_fill(v->w[j]->data, v->w[j]->numel, 2 * (uint64_t)j, ws);
        perceptual_hash_fill(v->b[j]->data, v->b[j]->numel, 2 * (uint64_t)j + 1, 0.1f);
    }
}
