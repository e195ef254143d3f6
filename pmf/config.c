// pmf/config.c: model presets (spec table 6.4 and small CPU presets), their checks, and the
// parameter and multiply-accumulate counts that `pmf_train --print-model` prints.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmf/pmf.h"

// SwiGLU hidden width: int(D * 8/3); above D = 1024 rounded up to a multiple of 8 (spec 6.2:
// only then do the H models' counts match table 6.4).
static int swiglu_hidden(int dim) {
    int h = dim * 8 / 3;
    return dim > 1024 ? (h + 7) / 8 * 8 : h;
}

static void paper(PmfConfig *c, const char *name, char size, int patch) {
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->patch = patch;
    c->img_size = patch * 16;   // 16 x 16 = 256 patch tokens for every released model
    c->channels = 3;
    c->num_classes = 1000;
    c->depth_head = 8;
    c->with_v_head = 1;
    switch (size) {
    case 'B': c->dim = 768, c->heads = 12, c->depth_shared = 8, c->bottleneck = 128; break;
    case 'L': c->dim = 1024, c->heads = 16, c->depth_shared = 24, c->bottleneck = 128; break;
    default: c->dim = 1280, c->heads = 16, c->depth_shared = 40, c->bottleneck = 256; break;
    }
    c->mlp_hidden = swiglu_hidden(c->dim);
    // Noise scale per released config (spec 5.2).
    static const struct { const char *n; float s; } ns[] = {{"B/16", 1}, {"B/32", 2}, {"L/16", 1},
                                                           {"L/32", 4}, {"H/16", 2}, {"H/32", 4}};
    for (size_t i = 0; i < sizeof ns / sizeof ns[0]; i++)
        if (!strcmp(ns[i].n, name)) c->noise_scale = ns[i].s;
}

int pmf_preset(const char *name, PmfConfig *c) {
    static const char *papers[] = {"B/16", "L/16", "H/16", "B/32", "L/32", "H/32"};
    for (int i = 0; i < 6; i++)
        if (!strcmp(name, papers[i])) {
            paper(c, name, name[0], atoi(name + 2));
            return 0;
        }
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->with_v_head = 1;
    c->noise_scale = 1.0f;
    if (!strcmp(name, "S/4")) {
        // The default run's model: 32 x 32 x 1 Fashion-MNIST, 64 patch tokens of 4 x 4.
        c->img_size = 32, c->channels = 1, c->patch = 4, c->dim = 192, c->heads = 4;
        c->depth_shared = 2, c->depth_head = 4, c->bottleneck = 32, c->num_classes = 10;
    } else if (!strcmp(name, "XS/4")) {
        // The README's default run: S/4's layout at a quarter of the width and half the depth,
        // so a recognisable class-conditional 1-NFE grid comes out of ~10 minutes on 2 cores.
        c->img_size = 32, c->channels = 1, c->patch = 4, c->dim = 96, c->heads = 2;
        c->depth_shared = 1, c->depth_head = 2, c->bottleneck = 32, c->num_classes = 10;
    } else if (!strcmp(name, "tiny")) {
        // Golden tests only.
        c->img_size = 8, c->channels = 1, c->patch = 4, c->dim = 16, c->heads = 2;
        c->depth_shared = 1, c->depth_head = 1, c->bottleneck = 8, c->num_classes = 3;
    } else {
        core_set_error("model preset '%s' is unknown (expected B/16, L/16, H/16, B/32, L/32, H/32, S/4, XS/4 or tiny)", name);
        return -1;
    }
    c->mlp_hidden = swiglu_hidden(c->dim);
    return 0;
}

int pmf_config_check(const PmfConfig *c) {
    if (c->channels != 1 && c->channels != 3) {
        core_set_error("model: channels = %d (expected 1 or 3)", c->channels);
        return -1;
    }
    if (c->patch < 1 || c->img_size < c->patch || c->img_size % c->patch) {
        core_set_error("model: resolution %d is not divisible by the patch size %d", c->img_size, c->patch);
        return -1;
    }
    if (c->dim < 1 || c->heads < 1 || c->dim % c->heads) {
        core_set_error("model: dim %d is not divisible by heads %d", c->dim, c->heads);
        return -1;
    }
    if ((c->dim / c->heads) % 4) {
        core_set_error("model: head size %d must be divisible by 4 (2-D RoPE)", c->dim / c->heads);
        return -1;
    }
    if (c->depth_shared < 0 || c->depth_head < 1 || c->mlp_hidden < 1 || c->num_classes < 1 || c->bottleneck < 0) {
        core_set_error("model: depth_shared >= 0, depth_head >= 1, mlp_hidden >= 1, num_classes >= 1, bottleneck >= 0 required");
        return -1;
    }
    if (!(c->noise_scale > 0)) {
        core_set_error("model: noise_scale must be positive");
        return -1;
    }
    return 0;
}

static int64_t block_params(const PmfConfig *c) {
    int64_t D = c->dim, hs = c->dim / c->heads;
    return 4 * D * D + 3 * D * c->mlp_hidden + 4 * D + 2 * hs;
}

int64_t pmf_param_count(const PmfConfig *c, int with_v_head) {
    int64_t D = c->dim, p2c = (int64_t)c->patch * c->patch * c->channels;
    int64_t n = (int64_t)(c->img_size / c->patch) * (c->img_size / c->patch);
    int64_t patch = c->bottleneck ? p2c * c->bottleneck + c->bottleneck + (int64_t)c->bottleneck * D + D : p2c * D + D;
    int64_t tokens = PMF_PREFIX * D + (c->num_classes + 1) * D + (PMF_PREFIX + n) * D;
    int64_t embedders = 4 * (PMF_TIME_FREQ * D + D + D * D + D);
    int64_t final = D + D * p2c + p2c;
    int heads = with_v_head ? 2 : 1;
    return patch + tokens + embedders + block_params(c) * (c->depth_shared + heads * c->depth_head) + heads * final;
}

double pmf_forward_macs(const PmfConfig *c) {
    double D = c->dim, p2c = (double)c->patch * c->patch * c->channels;
    double n = (double)(c->img_size / c->patch) * (c->img_size / c->patch), T = PMF_PREFIX + n;
    double patch = c->bottleneck ? n * (p2c * c->bottleneck + (double)c->bottleneck * D) : n * p2c * D;
    double embedders = 4 * (PMF_TIME_FREQ * D + D * D);
    double block = T * (4 * D * D + 3 * D * c->mlp_hidden) + 2 * T * T * D;   // + q k^T and p v
    double final = n * D * p2c;
    return patch + embedders + block * (c->depth_shared + c->depth_head) + final;
}
