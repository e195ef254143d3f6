// perceptual/convnext.c: ConvNeXt-V2 (HF transformers' ConvNextV2Model, facebook/convnextv2-base-22k-224)
// as core ops: its pooled, layer-normed feature, pMF's ConvNeXt distance and loss (spec 5.5), the
// safetensors loader, and the deterministic hash weights that tests and benches share with PyTorch.
// Not here: the classifier head (never used), anything trainable (the network is always frozen).
//
//   stem      conv 4x4/4 (3 -> d0, bias), LayerNorm over channels
//   stage s   (s >= 1) LayerNorm over channels, conv 2x2/2 (d_{s-1} -> d_s, bias); then depth_s blocks
//   block     dwconv 7x7 p3 (groups = C, bias) -> NHWC -> LayerNorm -> Linear C->4C -> GELU (erf)
//             -> GRN -> Linear 4C->C -> NCHW -> + input
//   GRN       Gx = ||x||_2 over (H, W) per (n, c); Nx = Gx / (mean_c Gx + 1e-6);
//             y = gamma (x Nx) + beta + x, computed as x (gamma Nx + 1) + beta
//   head      mean over (H, W), LayerNorm(d3) -> the feature (N, d3)
// Every LayerNorm has eps 1e-6 (CONVNEXT_LN_EPS).
#include "perceptual.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int base_depths[CONVNEXT_N_STAGES] = {3, 3, 27, 3};
static const int base_dims[CONVNEXT_N_STAGES] = {128, 256, 512, 1024};

// ---------------------------------------------------------------------------------------------
// Declaration

void convnext_init(ConvNext *net, const int *depths, const int *dims) {
    memset(net, 0, sizeof *net);
    if (!depths) depths = base_depths;
    if (!dims) dims = base_dims;
    int nb = 0;
    for (int s = 0; s < CONVNEXT_N_STAGES; s++) {
        if (depths[s] < 0 || dims[s] <= 0) core_fatal("convnext_init: bad depth %d or width %d of stage %d", depths[s], dims[s], s);
        net->depths[s] = depths[s];
        net->dims[s] = dims[s];
        nb += depths[s];
    }
    net->n_blocks = nb;
    net->blocks = core_calloc((size_t)(nb > 0 ? nb : 1), sizeof(ConvNextBlock), "convnext blocks");
    params_init(&net->ps, 4 + 4 * (CONVNEXT_N_STAGES - 1) + 10 * nb + 2);
    ParamStore *ps = &net->ps;
    char name[128];
    int d0 = dims[0];
    {
        int ws[4] = {d0, 3, 4, 4}, v[1] = {d0};
        net->stem_w = params_declare(ps, "embeddings.patch_embeddings.weight", 4, ws);
        net->stem_b = params_declare(ps, "embeddings.patch_embeddings.bias", 1, v);
        net->stem_ln_w = params_declare(ps, "embeddings.layernorm.weight", 1, v);
        net->stem_ln_b = params_declare(ps, "embeddings.layernorm.bias", 1, v);
    }
    int k = 0;
    for (int s = 0; s < CONVNEXT_N_STAGES; s++) {
        int C = dims[s];
        if (s > 0) {
            int cin = dims[s - 1], v[1] = {cin}, ws[4] = {C, cin, 2, 2}, bs[1] = {C};
            snprintf(name, sizeof name, "encoder.stages.%d.downsampling_layer.0.weight", s);
            net->down_ln_w[s] = params_declare(ps, name, 1, v);
            snprintf(name, sizeof name, "encoder.stages.%d.downsampling_layer.0.bias", s);
            net->down_ln_b[s] = params_declare(ps, name, 1, v);
            snprintf(name, sizeof name, "encoder.stages.%d.downsampling_layer.1.weight", s);
            net->down_w[s] = params_declare(ps, name, 4, ws);
            snprintf(name, sizeof name, "encoder.stages.%d.downsampling_layer.1.bias", s);
            net->down_b[s] = params_declare(ps, name, 1, bs);
        }
        for (int i = 0; i < depths[s]; i++, k++) {
            ConvNextBlock *b = &net->blocks[k];
            int dw[4] = {C, 1, 7, 7}, c1[1] = {C}, c4[1] = {4 * C}, w1[2] = {4 * C, C}, w2[2] = {C, 4 * C};
            int g4[4] = {1, 1, 1, 4 * C};
#define DECL(field, suffix, nd, shp)                                                              \
    snprintf(name, sizeof name, "encoder.stages.%d.layers.%d." suffix, s, i);                    \
    b->field = params_declare(ps, name, nd, shp)
            DECL(dw_w, "dwconv.weight", 4, dw);
            DECL(dw_b, "dwconv.bias", 1, c1);
            DECL(ln_w, "layernorm.weight", 1, c1);
            DECL(ln_b, "layernorm.bias", 1, c1);
            DECL(pw1_w, "pwconv1.weight", 2, w1);
            DECL(pw1_b, "pwconv1.bias", 1, c4);
            DECL(grn_g, "grn.weight", 4, g4);
            DECL(grn_b, "grn.bias", 4, g4);
            DECL(pw2_w, "pwconv2.weight", 2, w2);
            DECL(pw2_b, "pwconv2.bias", 1, c1);
#undef DECL
        }
    }
    {
        int v[1] = {dims[CONVNEXT_N_STAGES - 1]};
        net->final_ln_w = params_declare(ps, "layernorm.weight", 1, v);
        net->final_ln_b = params_declare(ps, "layernorm.bias", 1, v);
    }
    params_finalize(ps);
    // frozen: ops on these never record weight gradients
    for (int i = 0; i < ps->n; i++) ps->tensors[i].requires_grad = 0;
}

void convnext_free(ConvNext *net) {
    params_free(&net->ps);
    free(net->blocks);
    memset(net, 0, sizeof *net);
}

int convnext_feature_dim(const ConvNext *net) { return net->dims[CONVNEXT_N_STAGES - 1]; }

// "3,3,27,3" -> 4 ints; 0 on success
static int parse4(const char *s, int *out) {
    if (!s) return -1;
    for (int i = 0; i < 4; i++) {
        char *end;
        long v = strtol(s, &end, 10);
        if (end == s) return -1;
        out[i] = (int)v;
        s = end;
        if (i < 3) {
            if (*s != ',') return -1;
            s++;
        }
    }
    return *s == '\0' ? 0 : -1;
}

int convnext_load(ConvNext *net, const char *path) {
    SafeTensors st;
    if (safetensors_open(&st, path) != 0) {
        char why[512];   // the loader's message, copied: core_set_error reuses its buffer
        snprintf(why, sizeof why, "%s", core_last_error());
        core_set_error("convnext: cannot read '%s' (%s). Make it from HF facebook/convnextv2-base-22k-224 "
                       "(pytorch_model.bin or model.safetensors) with: /usr/bin/python3 tools/convert_weights.py "
                       "convnextv2 pytorch_model.bin %s",
                       path, why, path);
        return -1;
    }
    // the converter records the architecture; a file of another size is named as such
    int fd[4], fw[4];
    if (parse4(safetensors_meta(&st, "depths"), fd) == 0 && parse4(safetensors_meta(&st, "dims"), fw) == 0 &&
        (memcmp(fd, net->depths, sizeof fd) || memcmp(fw, net->dims, sizeof fw))) {
        core_set_error("convnext: '%s' holds depths %d,%d,%d,%d dims %d,%d,%d,%d; the network was declared with "
                       "depths %d,%d,%d,%d dims %d,%d,%d,%d",
                       path, fd[0], fd[1], fd[2], fd[3], fw[0], fw[1], fw[2], fw[3], net->depths[0], net->depths[1],
                       net->depths[2], net->depths[3], net->dims[0], net->dims[1], net->dims[2], net->dims[3]);
        safetensors_close(&st);
        return -1;
    }
    int rc = 0;
    for (int i = 0; i < net->ps.n && rc == 0; i++) {
        Tensor *t = &net->ps.tensors[i];
        if (!safetensors_find(&st, t->name)) {
            core_set_error("convnext: '%s' has no tensor '%s' (expected the names of tools/convert_weights.py "
                           "convnextv2; re-run it)", path, t->name);
            rc = -1;
        } else {
            // checks the shape: a mismatch names the file, the tensor and both shapes
            rc = safetensors_read_f32(&st, t->name, t->ndim, t->shape, t->data);
        }
    }
    safetensors_close(&st);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// Hash weights (formula and the per-tensor scales in perceptual.h; the same in
// tools/goldens/cases_convnext.py). Tensor i of the store (declaration order) gets id
// CONVNEXT_HASH_ID0 + i.

void convnext_fill_hash(ConvNext *net) {
    for (int i = 0; i < net->ps.n; i++) {
        Tensor *t = &net->ps.tensors[i];
        const char *nm = t->name;
        uint64_t id = CONVNEXT_HASH_ID0 + (uint64_t)i;
        size_t len = strlen(nm);
        int is_w = len > 7 && !strcmp(nm + len - 7, ".weight");
        float scale = 0.1f, offset = 0.0f;
        if (strstr(nm, "layernorm") || strstr(nm, "downsampling_layer.0.")) {
            if (is_w) offset = 1.0f;              // LayerNorm: 1 + 0.1 u, bias 0.1 u
        } else if (strstr(nm, "grn.")) {
            scale = is_w ? 0.5f : 0.1f;
        } else if (strstr(nm, "pwconv2.")) {
            int fan = t->ndim == 2 ? t->shape[1] : 0;
            scale = is_w ? (float)(sqrt(3.0 / fan) * 0.3) : 0.02f;
        } else if (is_w) {                         // stem, downsampling conv, dwconv, pwconv1
            int64_t fan = t->numel / t->shape[0];  // Cin/groups * KH * KW, or in-features
            scale = (float)sqrt(3.0 / (double)fan);
        }
        perceptual_hash_fill(t->data, t->numel, id, scale);
        if (offset != 0.0f)
            for (int64_t j = 0; j < t->numel; j++) t->data[j] = offset + t->data[j];
    }
}

// ---------------------------------------------------------------------------------------------
// Forward

static const int to_nhwc[4] = {0, 2, 3, 1}, to_nchw[4] = {0, 3, 1, 2};

// LayerNorm over the channels of x (N, C, H, W) -> (N, C, H, W)
static Tensor *ln_channels_first(Tape *tp, Tensor *x, Tensor *w, Tensor *b) {
    Tensor *h = op_contiguous(tp, op_permute(tp, x, to_nhwc));
    h = op_layernorm(tp, h, w, b, CONVNEXT_LN_EPS);
    return op_contiguous(tp, op_permute(tp, h, to_nchw));
}

// GRN on x (N, H, W, C4), gamma and beta (1, 1, 1, C4)
static Tensor *grn(Tape *tp, Tensor *x, Tensor *gamma, Tensor *beta) {
    Tensor *gx = op_sqrt(tp, op_sum(tp, op_mul(tp, x, x), (1 << 1) | (1 << 2), 1));   // (N, 1, 1, C4)
    Tensor *nx = op_div(tp, gx, op_add_scalar(tp, op_mean(tp, gx, 1 << 3, 1), 1e-6f));   // (N, 1, 1, C4)
    Tensor *s = op_add_scalar(tp, op_mul(tp, gamma, nx), 1.0f);
    return op_add(tp, op_mul(tp, x, s), beta);
}

static Tensor *block(Tape *tp, const ConvNextBlock *b, Tensor *x) {
    int C = x->shape[1];
    Tensor *h = op_conv2d(tp, x, b->dw_w, b->dw_b, 1, 1, 3, 3, C);
    h = op_contiguous(tp, op_permute(tp, h, to_nhwc));
    h = op_layernorm(tp, h, b->ln_w, b->ln_b, CONVNEXT_LN_EPS);
    h = op_gelu_erf(tp, op_linear(tp, h, b->pw1_w, b->pw1_b));
    h = grn(tp, h, b->grn_g, b->grn_b);
    h = op_linear(tp, h, b->pw2_w, b->pw2_b);
    h = op_contiguous(tp, op_permute(tp, h, to_nchw));
    return op_add(tp, x, h);
}

Tensor *convnext_features(Tape *tp, const ConvNext *net, Tensor *x) {
    if (x->ndim != 4) core_fatal("convnext_features: x must be (N, C, H, W)");
    if (x->shape[2] < 32 || x->shape[3] < 32)
        core_fatal("convnext_features: images of %dx%d are smaller than 32x32", x->shape[2], x->shape[3]);
    x = op_contiguous(tp, x);
    if (x->shape[1] == 1) {
        Tensor *xs[3] = {x, x, x};
        x = op_concat(tp, xs, 3, 1);
    } else if (x->shape[1] != 3) {
        core_fatal("convnext: needs 1 or 3 channels, got %d", x->shape[1]);
    }
    // inputs in [-1, 1] go in as they are: no ImageNet normalisation (spec 5.5)
    Tensor *h = op_conv2d(tp, x, net->stem_w, net->stem_b, 4, 4, 0, 0, 1);
    h = ln_channels_first(tp, h, net->stem_ln_w, net->stem_ln_b);
    int k = 0;
    for (int s = 0; s < CONVNEXT_N_STAGES; s++) {
        if (s > 0) {
            h = ln_channels_first(tp, h, net->down_ln_w[s], net->down_ln_b[s]);
            h = op_conv2d(tp, h, net->down_w[s], net->down_b[s], 2, 2, 0, 0, 1);
        }
        for (int i = 0; i < net->depths[s]; i++) h = block(tp, &net->blocks[k++], h);
    }
    Tensor *pooled = op_mean(tp, h, (1 << 2) | (1 << 3), 0);   // (N, C)
    return op_layernorm(tp, pooled, net->final_ln_w, net->final_ln_b, CONVNEXT_LN_EPS);
}

Tensor *convnext_distance(Tape *tp, const ConvNext *net, Tensor *a, Tensor *b) {
    if (a->ndim != 4 || !tensor_same_shape(a, b)) core_fatal("convnext_distance: a and b must be equal (N, C, H, W)");
    Tensor *d = op_sub(tp, convnext_features(tp, net, a), convnext_features(tp, net, b));
    return op_sum(tp, op_mul(tp, d, d), 1 << 1, 0);
}

// ---------------------------------------------------------------------------------------------
// Loss

void convnext_loss_defaults(LpipsLossConfig *c) {
    c->t_thr = 0.8f;
    c->lambda = 0.1f;
    c->crop_size = 224;
    c->random_crop = 1;
}

static Tensor *convnext_distance_fn(void *net, Tape *tp, Tensor *a, Tensor *b) {
    return convnext_distance(tp, net, a, b);
}

Tensor *convnext_loss(const ConvNext *net, Tape *tp, Tensor *pred_x, Tensor *x, const float *t,
                      const LpipsLossConfig *cfg, Rng *rng) {
    if (pred_x->ndim != 4) core_fatal("convnext_loss: pred_x must be (B, C, H, W)");
    int B = pred_x->shape[0];
    CropBox *boxes = core_malloc((size_t)B * sizeof(CropBox), "convnext_loss boxes");
    perceptual_crop_draw(rng, B, pred_x->shape[2], pred_x->shape[3], cfg->random_crop, boxes);
    Tensor *out = perceptual_masked_loss(tp, pred_x, x, t, cfg, boxes, convnext_distance_fn, (void *)net);
    free(boxes);
    return out;
}
