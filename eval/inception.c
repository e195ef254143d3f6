// eval/inception.c: pytorch-fid's FID InceptionV3 (porting notes A2) as core ops in no-tape mode:
// the layer table, the safetensors loader with the BatchNorm fold, the hash weights shared with
// tools/goldens/cases_inception.py, the three preprocessing conventions and the forward pass.
// Not here: statistics and distances (frechet.c), files and folders (pipeline.c, npz.c).
#include "eval.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Layer table, in pytorch-fid's (torchvision's) state-dict order.

static InceptionConv g_convs[INCEPTION_N_CONV];
static char g_names[INCEPTION_N_CONV][40];
static int g_n_convs;

static void add(const char *block, const char *branch, int cin, int cout, int kh, int kw, int sh, int ph, int pw) {
    InceptionConv *c = &g_convs[g_n_convs];
    if (branch) snprintf(g_names[g_n_convs], sizeof g_names[0], "%s.%s", block, branch);
    else snprintf(g_names[g_n_convs], sizeof g_names[0], "%s", block);
    *c = (InceptionConv){g_names[g_n_convs], cin, cout, kh, kw, sh, sh, ph, pw};
    g_n_convs++;
}

// Block builders: 1x1 convs have no padding; k x k "same" convs pad k/2.
static void block_a(const char *n, int cin, int pool) {   // FIDInceptionA
    add(n, "branch1x1", cin, 64, 1, 1, 1, 0, 0);
    add(n, "branch5x5_1", cin, 48, 1, 1, 1, 0, 0);
    add(n, "branch5x5_2", 48, 64, 5, 5, 1, 2, 2);
    add(n, "branch3x3dbl_1", cin, 64, 1, 1, 1, 0, 0);
    add(n, "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
    add(n, "branch3x3dbl_3", 96, 96, 3, 3, 1, 1, 1);
    add(n, "branch_pool", cin, pool, 1, 1, 1, 0, 0);
}
static void block_b(const char *n, int cin) {   // torchvision InceptionB
    add(n, "branch3x3", cin, 384, 3, 3, 2, 0, 0);
    add(n, "branch3x3dbl_1", cin, 64, 1, 1, 1, 0, 0);
    add(n, "branch3x3dbl_2", 64, 96, 3, 3, 1, 1, 1);
    add(n, "branch3x3dbl_3", 96, 96, 3, 3, 2, 0, 0);
}
static void block_c(const char *n, int cin, int c7) {   // FIDInceptionC
    add(n, "branch1x1", cin, 192, 1, 1, 1, 0, 0);
    add(n, "branch7x7_1", cin, c7, 1, 1, 1, 0, 0);
    add(n, "branch7x7_2", c7, c7, 1, 7, 1, 0, 3);
    add(n, "branch7x7_3", c7, 192, 7, 1, 1, 3, 0);
    add(n, "branch7x7dbl_1", cin, c7, 1, 1, 1, 0, 0);
    add(n, "branch7x7dbl_2", c7, c7, 7, 1, 1, 3, 0);
    add(n, "branch7x7dbl_3", c7, c7, 1, 7, 1, 0, 3);
    add(n, "branch7x7dbl_4", c7, c7, 7, 1, 1, 3, 0);
    add(n, "branch7x7dbl_5", c7, 192, 1, 7, 1, 0, 3);
    add(n, "branch_pool", cin, 192, 1, 1, 1, 0, 0);
}
static void block_d(const char *n, int cin) {   // torchvision InceptionD
    add(n, "branch3x3_1", cin, 192, 1, 1, 1, 0, 0);
    add(n, "branch3x3_2", 192, 320, 3, 3, 2, 0, 0);
    add(n, "branch7x7x3_1", cin, 192, 1, 1, 1, 0, 0);
    add(n, "branch7x7x3_2", 192, 192, 1, 7, 1, 0, 3);
    add(n, "branch7x7x3_3", 192, 192, 7, 1, 1, 3, 0);
    add(n, "branch7x7x3_4", 192, 192, 3, 3, 2, 0, 0);
}
static void block_e(const char *n, int cin) {   // FIDInceptionE_1 / E_2 (same convs)
    add(n, "branch1x1", cin, 320, 1, 1, 1, 0, 0);
    add(n, "branch3x3_1", cin, 384, 1, 1, 1, 0, 0);
    add(n, "branch3x3_2a", 384, 384, 1, 3, 1, 0, 1);
    add(n, "branch3x3_2b", 384, 384, 3, 1, 1, 1, 0);
    add(n, "branch3x3dbl_1", cin, 448, 1, 1, 1, 0, 0);
    add(n, "branch3x3dbl_2", 448, 384, 3, 3, 1, 1, 1);
    add(n, "branch3x3dbl_3a", 384, 384, 1, 3, 1, 0, 1);
    add(n, "branch3x3dbl_3b", 384, 384, 3, 1, 1, 1, 0);
    add(n, "branch_pool", cin, 192, 1, 1, 1, 0, 0);
}

// First conv index of each block.
enum { I_STEM = 0, I_5B = 5, I_5C = 12, I_5D = 19, I_6A = 26, I_6B = 30, I_6C = 40, I_6D = 50, I_6E = 60,
       I_7A = 70, I_7B = 76, I_7C = 85 };

static void build_table(void) {
    if (g_n_convs) return;
    add("Conv2d_1a_3x3", NULL, 3, 32, 3, 3, 2, 0, 0);
    add("Conv2d_2a_3x3", NULL, 32, 32, 3, 3, 1, 0, 0);
    add("Conv2d_2b_3x3", NULL, 32, 64, 3, 3, 1, 1, 1);
    add("Conv2d_3b_1x1", NULL, 64, 80, 1, 1, 1, 0, 0);
    add("Conv2d_4a_3x3", NULL, 80, 192, 3, 3, 1, 0, 0);
    block_a("Mixed_5b", 192, 32);
    block_a("Mixed_5c", 256, 64);
    block_a("Mixed_5d", 288, 64);
    block_b("Mixed_6a", 288);
    block_c("Mixed_6b", 768, 128);
    block_c("Mixed_6c", 768, 160);
    block_c("Mixed_6d", 768, 160);
    block_c("Mixed_6e", 768, 192);
    block_d("Mixed_7a", 768);
    block_e("Mixed_7b", 1280);
    block_e("Mixed_7c", 2048);
    if (g_n_convs != INCEPTION_N_CONV || strcmp(g_convs[I_7C].name, "Mixed_7c.branch1x1") ||
        strcmp(g_convs[I_6E].name, "Mixed_6e.branch1x1"))
        core_fatal("inception: layer table has %d convs", g_n_convs);
}

const InceptionConv *inception_conv(int i) {
    build_table();
    return &g_convs[i];
}

// ---------------------------------------------------------------------------------------------
// Parameters

void inception_init(Inception *net) {
    build_table();
    memset(net, 0, sizeof *net);
    params_init(&net->ps, 2 * INCEPTION_N_CONV + 2);
    char name[64];
    for (int i = 0; i < INCEPTION_N_CONV; i++) {
        const InceptionConv *c = &g_convs[i];
        int ws[4] = {c->cout, c->cin, c->kh, c->kw}, bs[1] = {c->cout};
        snprintf(name, sizeof name, "%s.conv.weight", c->name);
        net->w[i] = params_declare(&net->ps, name, 4, ws);
        snprintf(name, sizeof name, "%s.folded_bias", c->name);
        net->b[i] = params_declare(&net->ps, name, 1, bs);
    }
    int fw[2] = {INCEPTION_N_LOGITS, INCEPTION_FEATURE_DIM}, fb[1] = {INCEPTION_N_LOGITS};
    net->fc_w = params_declare(&net->ps, "fc.weight", 2, fw);
    net->fc_b = params_declare(&net->ps, "fc.bias", 1, fb);
    params_finalize(&net->ps);
    for (int i = 0; i < net->ps.n; i++) net->ps.tensors[i].requires_grad = 0;   // frozen
}

void inception_free(Inception *net) { params_free(&net->ps); }

void inception_fold_bn(Inception *net, int i, const InceptionRawConv *raw) {
    const InceptionConv *c = &g_convs[i];
    int64_t per = (int64_t)c->cin * c->kh * c->kw;
    for (int o = 0; o < c->cout; o++) {
        double s = (double)raw->gamma[o] / sqrt((double)raw->var[o] + INCEPTION_BN_EPS);
        for (int64_t k = 0; k < per; k++)
            net->w[i]->data[o * per + k] = (float)((double)raw->weight[o * per + k] * s);
        net->b[i]->data[o] = (float)((double)raw->beta[o] - (double)raw->mean[o] * s);
    }
}

int inception_load(Inception *net, const char *path) {
    SafeTensors st;
    if (safetensors_open(&st, path) != 0) {
        char why[512];   // the loader's message, copied: core_set_error reuses its buffer
        snprintf(why, sizeof why, "%s", core_last_error());
        core_set_error("inception: cannot read '%s' (%s). Make it from pytorch-fid's "
                       "pt_inception-2015-12-05-6726825d.pth with: /usr/bin/python3 tools/convert_inception.py "
                       "pt_inception-2015-12-05-6726825d.pth %s",
                       path, why, path);
        return -1;
    }
    int rc = 0;
    float *buf = NULL;
    char name[96];
    static const char *bn_keys[4] = {"weight", "bias", "running_mean", "running_var"};
    for (int i = 0; i < INCEPTION_N_CONV && rc == 0; i++) {
        const InceptionConv *c = &g_convs[i];
        int64_t wn = net->w[i]->numel;
        free(buf);
        buf = core_malloc((size_t)(wn + 4 * c->cout) * sizeof(float), "inception raw conv");
        snprintf(name, sizeof name, "%s.conv.weight", c->name);
        rc = safetensors_find(&st, name) ? safetensors_read_f32(&st, name, 4, net->w[i]->shape, buf) : -2;
        for (int k = 0; k < 4 && rc == 0; k++) {
            snprintf(name, sizeof name, "%s.bn.%s", c->name, bn_keys[k]);
            rc = safetensors_find(&st, name) ? safetensors_read_f32(&st, name, 1, &c->cout, buf + wn + k * c->cout) : -2;
        }
        if (rc == 0) {
            InceptionRawConv raw = {buf, buf + wn, buf + wn + c->cout, buf + wn + 2 * c->cout, buf + wn + 3 * c->cout};
            inception_fold_bn(net, i, &raw);
        }
    }
    free(buf);
    if (rc == 0) {
        snprintf(name, sizeof name, "fc.weight");
        rc = safetensors_find(&st, name) ? safetensors_read_f32(&st, name, 2, net->fc_w->shape, net->fc_w->data) : -2;
    }
    if (rc == 0) {
        snprintf(name, sizeof name, "fc.bias");
        rc = safetensors_find(&st, name) ? safetensors_read_f32(&st, name, 1, net->fc_b->shape, net->fc_b->data) : -2;
    }
    if (rc == -2)
        core_set_error("inception: '%s' has no tensor '%s' (expected pytorch-fid's state-dict names; re-run "
                       "tools/convert_inception.py)", path, name);
    safetensors_close(&st);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------------------------------------
// Hash weights (formula in eval.h and tools/goldens/cases_inception.py)

static uint64_t splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void inception_hash_fill(float *x, int64_t n, uint64_t id, float scale) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        int64_t k = (int64_t)(splitmix64((id << 40) + (uint64_t)i) >> 40);
        x[i] = scale * ((float)(k - (1 << 23)) / 8388608.0f);
    }
}

void inception_fill_hash(Inception *net) {
    for (int i = 0; i < INCEPTION_N_CONV; i++) {
        const InceptionConv *c = &g_convs[i];
        int C = c->cout;
        int64_t wn = net->w[i]->numel;
        float *buf = core_malloc((size_t)(wn + 4 * C) * sizeof(float), "inception hash conv");
        float *g = buf + wn, *be = g + C, *mu = be + C, *var = mu + C;
        inception_hash_fill(buf, wn, 8 * (uint64_t)i, (float)sqrt(6.0 / (double)(c->cin * c->kh * c->kw)));
        inception_hash_fill(g, C, 8 * (uint64_t)i + 1, 0.1f);
        inception_hash_fill(be, C, 8 * (uint64_t)i + 2, 0.1f);
        inception_hash_fill(mu, C, 8 * (uint64_t)i + 3, 0.1f);
        inception_hash_fill(var, C, 8 * (uint64_t)i + 4, 0.5f);
        for (int o = 0; o < C; o++) g[o] += 1.0f, var[o] += 1.0f;
        InceptionRawConv raw = {buf, g, be, mu, var};
        inception_fold_bn(net, i, &raw);
        free(buf);
    }
    inception_hash_fill(net->fc_w->data, net->fc_w->numel, 8 * INCEPTION_N_CONV, (float)sqrt(3.0 / 2048.0));
    inception_hash_fill(net->fc_b->data, net->fc_b->numel, 8 * INCEPTION_N_CONV + 1, 0.1f);
}

// ---------------------------------------------------------------------------------------------
// Preprocessing

const char *eval_convention_name(EvalConvention c) {
    switch (c) {
    case EVAL_CONV_PYTORCH_FID: return "pytorch-fid";
    case EVAL_CONV_PMF_JAX: return "pmf-jax";
    case EVAL_CONV_TORCH_FIDELITY: return "torch-fidelity";
    }
    return "?";
}

int eval_convention_parse(const char *s, EvalConvention *c) {
    if (!strcmp(s, "pytorch-fid")) *c = EVAL_CONV_PYTORCH_FID;
    else if (!strcmp(s, "pmf-jax") || !strcmp(s, "clean-fid-legacy-pytorch")) *c = EVAL_CONV_PMF_JAX;
    else if (!strcmp(s, "torch-fidelity")) *c = EVAL_CONV_TORCH_FIDELITY;
    else {
        core_set_error("eval: unknown convention '%s' (pytorch-fid, pmf-jax, torch-fidelity)", s);
        return -1;
    }
    return 0;
}

Tensor *inception_preprocess(Tape *tp, Tensor *x01, EvalConvention conv) {
    if (x01->ndim != 4 || x01->shape[1] != 3) core_fatal("inception_preprocess: x must be (N, 3, H, W)");
    if (conv == EVAL_CONV_TORCH_FIDELITY) core_fatal("inception_preprocess: torch-fidelity's resize takes uint8 input");
    if (conv == EVAL_CONV_PYTORCH_FID)
        return op_add_scalar(tp, op_scale(tp, op_resize(tp, x01, INCEPTION_SIZE, INCEPTION_SIZE, RESIZE_BILINEAR, 0), 2.0f), -1.0f);
    // pMF JAX: 0..255 values resized, then (x - 128) / 128
    Tensor *x255 = op_scale(tp, x01, 255.0f);
    Tensor *r = op_resize(tp, x255, INCEPTION_SIZE, INCEPTION_SIZE, RESIZE_BILINEAR, 0);
    return op_scale(tp, op_add_scalar(tp, r, -128.0f), 1.0f / 128.0f);
}

// torch-fidelity's interpolate_bilinear_2d_like_tensorflow1x (align_corners=False): source
// coordinate dst * in/out without a half-pixel offset; one (H, W) plane of 0..255 values.
static void resize_tf1(const float *x, int H, int W, float *y, int OH, int OW) {
    float sy = (float)H / (float)OH, sx = (float)W / (float)OW;
    for (int i = 0; i < OH; i++) {
        float fy = (float)i * sy;
        int y0 = (int)floorf(fy), y1 = y0 + 1 < H ? y0 + 1 : H - 1;
        float ly = fy - (float)y0;
        for (int j = 0; j < OW; j++) {
            float fx = (float)j * sx;
            int x0 = (int)floorf(fx), x1 = x0 + 1 < W ? x0 + 1 : W - 1;
            float lx = fx - (float)x0;
            float top = x[y0 * W + x0] + (x[y0 * W + x1] - x[y0 * W + x0]) * lx;
            float bot = x[y1 * W + x0] + (x[y1 * W + x1] - x[y1 * W + x0]) * lx;
            y[(size_t)i * OW + j] = top + (bot - top) * ly;
        }
    }
}

Tensor *inception_preprocess_u8(Tape *tp, const uint8_t *px, int n, int H, int W, int C, EvalConvention conv) {
    if (C != 1 && C != 3) core_fatal("inception_preprocess_u8: %d channels (1 or 3)", C);
    int shape[4] = {n, 3, H, W};
    Tensor *x = tensor_new(tp, 4, shape, "pixels");
    // PYTORCH_FID reads ToTensor()'s x / 255 (float32); the others keep 0..255
    float mul = conv == EVAL_CONV_PYTORCH_FID ? 1.0f / 255.0f : 1.0f;
    size_t HW = (size_t)H * W;
    for (int i = 0; i < n; i++)
        for (int c = 0; c < 3; c++) {
            float *dst = x->data + ((size_t)i * 3 + c) * HW;
            const uint8_t *src = px + (size_t)i * HW * C + (C == 3 ? c : 0);
            for (size_t k = 0; k < HW; k++)
                dst[k] = conv == EVAL_CONV_PYTORCH_FID ? (float)src[k * C] / 255.0f : (float)src[k * C] * mul;
        }
    if (conv == EVAL_CONV_PYTORCH_FID)
        return op_add_scalar(tp, op_scale(tp, op_resize(tp, x, INCEPTION_SIZE, INCEPTION_SIZE, RESIZE_BILINEAR, 0), 2.0f), -1.0f);
    Tensor *r;
    if (conv == EVAL_CONV_PMF_JAX) r = op_resize(tp, x, INCEPTION_SIZE, INCEPTION_SIZE, RESIZE_BILINEAR, 0);
    else {
        int os[4] = {n, 3, INCEPTION_SIZE, INCEPTION_SIZE};
        r = tensor_new(tp, 4, os, "tf1 resized");
        for (int p = 0; p < n * 3; p++)
            resize_tf1(x->data + (size_t)p * HW, H, W, r->data + (size_t)p * INCEPTION_SIZE * INCEPTION_SIZE,
                       INCEPTION_SIZE, INCEPTION_SIZE);
    }
    return op_scale(tp, op_add_scalar(tp, r, -128.0f), 1.0f / 128.0f);
}

// ---------------------------------------------------------------------------------------------
// Forward, in channel-major layout (C, N, H, W): every convolution is one GEMM over all images'
// pixels and each block's branches write their channels of the block output directly, so a
// concat costs nothing (core/ops_conv_cnhw.c). Pooling runs unchanged on (C, N, H, W) planes.

// BasicConv2d with BN folded: relu(conv(x) + b') into channels [c0, c0 + cout) of out, or a new
// tensor when out is NULL.
static Tensor *bconv_into(Tape *tp, const Inception *net, int i, Tensor *x, Tensor *out, int c0) {
    const InceptionConv *c = &g_convs[i];
    return op_conv2d_cnhw(tp, x, net->w[i], net->b[i], c->sh, c->sw, c->ph, c->pw, 1, out, c0);
}
static Tensor *bconv(Tape *tp, const Inception *net, int i, Tensor *x) { return bconv_into(tp, net, i, x, NULL, 0); }

// channels [c0, c0 + C) of out (Ctot, N, H, W) <- src (C, N, H, W)
static void put(const Tensor *src, Tensor *out, int c0) {
    if (src->ndim != 4 || out->shape[1] != src->shape[1] || out->shape[2] != src->shape[2] ||
        out->shape[3] != src->shape[3] || c0 + src->shape[0] > out->shape[0])
        core_fatal("inception: branch output does not fit its block");
    memcpy(out->data + (size_t)c0 * (out->numel / out->shape[0]), src->data, (size_t)src->numel * sizeof(float));
}

// pytorch-fid's pool branch of A, C and E_1: avg_pool2d(3, 1, 1, count_include_pad=False).
static Tensor *avg3(Tape *tp, Tensor *x) { return op_avgpool2d(tp, x, 3, 3, 1, 1, 1, 1, 0); }

// Channels of each block's output, as torchvision concatenates them.
static void mixed_a(Tape *tp, const Inception *net, int i, Tensor *x, Tensor *o) {
    bconv_into(tp, net, i, x, o, 0);
    bconv_into(tp, net, i + 2, bconv(tp, net, i + 1, x), o, 64);
    bconv_into(tp, net, i + 5, bconv(tp, net, i + 4, bconv(tp, net, i + 3, x)), o, 128);
    bconv_into(tp, net, i + 6, avg3(tp, x), o, 224);
}

static void mixed_b(Tape *tp, const Inception *net, int i, Tensor *x, Tensor *o) {
    bconv_into(tp, net, i, x, o, 0);
    bconv_into(tp, net, i + 3, bconv(tp, net, i + 2, bconv(tp, net, i + 1, x)), o, 384);
    put(op_maxpool2d(tp, x, 3, 3, 2, 2, 0, 0, 0), o, 480);
}

static void mixed_c(Tape *tp, const Inception *net, int i, Tensor *x, Tensor *o) {
    bconv_into(tp, net, i, x, o, 0);
    bconv_into(tp, net, i + 3, bconv(tp, net, i + 2, bconv(tp, net, i + 1, x)), o, 192);
    Tensor *bd = x;
    for (int k = 4; k <= 7; k++) bd = bconv(tp, net, i + k, bd);
    bconv_into(tp, net, i + 8, bd, o, 384);
    bconv_into(tp, net, i + 9, avg3(tp, x), o, 576);
}

static void mixed_d(Tape *tp, const Inception *net, int i, Tensor *x, Tensor *o) {
    bconv_into(tp, net, i + 1, bconv(tp, net, i, x), o, 0);
    Tensor *b7 = x;
    for (int k = 2; k <= 4; k++) b7 = bconv(tp, net, i + k, b7);
    bconv_into(tp, net, i + 5, b7, o, 320);
    put(op_maxpool2d(tp, x, 3, 3, 2, 2, 0, 0, 0), o, 512);
}

// FIDInceptionE_1 (avg pool, count_include_pad=False) or E_2 (max pool 3, stride 1, pad 1: the TF
// graph's quirk that pytorch-fid keeps).
static void mixed_e(Tape *tp, const Inception *net, int i, Tensor *x, int max_pool, Tensor *o) {
    bconv_into(tp, net, i, x, o, 0);
    Tensor *t = bconv(tp, net, i + 1, x);
    bconv_into(tp, net, i + 2, t, o, 320);
    bconv_into(tp, net, i + 3, t, o, 704);
    Tensor *u = bconv(tp, net, i + 5, bconv(tp, net, i + 4, x));
    bconv_into(tp, net, i + 6, u, o, 1088);
    bconv_into(tp, net, i + 7, u, o, 1472);
    Tensor *pooled = max_pool ? op_maxpool2d(tp, x, 3, 3, 1, 1, 1, 1, 0) : avg3(tp, x);
    bconv_into(tp, net, i + 8, pooled, o, 1856);
}

// Block outputs live in one of two buffers allocated before the first block, so each block's
// intermediates are released as soon as it is done (peak memory: one block, not the network).
// The buffers are arena memory too (released with everything else at the end), so a second call
// finds them mapped instead of faulting fresh pages in.
typedef struct {
    float *buf[2];
    int next;
} PingPong;

// Floats of the largest stage output (the stem's first conv: 32 x 149 x 149 per image).
static size_t pp_floats(int N) { return (size_t)N * 32 * 149 * 149; }

// The next buffer as a (C, N, H, W) tensor. Its data is below every block's arena mark, but its
// record is not: make it after any arena_release that would free it.
static Tensor *pp_tensor(Tape *tp, PingPong *pp, int C, int N, int H, int W) {
    int k = pp->next;
    pp->next ^= 1;
    if ((size_t)C * N * H * W > pp_floats(N)) core_fatal("inception: a stage output outgrew its buffer");
    int shape[4] = {C, N, H, W};
    return tensor_wrap(tp, pp->buf[k], 4, shape, "inception block");
}

// y (an arena tensor) copied into the next buffer, and the arena released to mark m.
static Tensor *keep(Tape *tp, ArenaMark m, Tensor *y, PingPong *pp) {
    Tensor *o = pp_tensor(tp, pp, y->shape[0], y->shape[1], y->shape[2], y->shape[3]);
    put(y, o, 0);
    float *data = o->data;
    int shape[4];
    memcpy(shape, o->shape, sizeof shape);
    arena_release(tp->arena, m);
    return tensor_wrap(tp, data, 4, shape, "inception block");
}

void inception_forward(Tape *tp, const Inception *net, Tensor *x, Tensor **pool3, Tensor **logits) {
    if (tp->recording) core_fatal("inception_forward: the tape must not record (tape_set_recording(tp, 0))");
    if (x->ndim != 4 || x->shape[1] != 3) core_fatal("inception_forward: x must be (N, 3, H, W)");
    tensor_require_contiguous(x, "inception_forward");
    int N = x->shape[0], to_cnhw[4] = {1, 0, 2, 3};
    ArenaMark start = arena_mark(tp->arena);
    PingPong pp = {{tape_alloc(tp, pp_floats(N) * sizeof(float)), tape_alloc(tp, pp_floats(N) * sizeof(float))}, 0};
    ArenaMark m = arena_mark(tp->arena);
    Tensor *h = keep(tp, m, op_contiguous(tp, op_permute(tp, x, to_cnhw)), &pp);
#define STAGE(expr)                 \
    do {                            \
        m = arena_mark(tp->arena);  \
        Tensor *y_ = (expr);        \
        h = keep(tp, m, y_, &pp);   \
    } while (0)
#define BLOCK(C, H, call)                                             \
    do {                                                              \
        Tensor *o_ = pp_tensor(tp, &pp, C, N, H, H);                  \
        m = arena_mark(tp->arena);                                    \
        call;                                                         \
        arena_release(tp->arena, m);                                  \
        h = o_;                                                       \
    } while (0)
    // block 0: 3 -> 64 x 73 x 73
    STAGE(bconv(tp, net, 0, h));
    STAGE(bconv(tp, net, 1, h));
    STAGE(op_maxpool2d(tp, bconv(tp, net, 2, h), 3, 3, 2, 2, 0, 0, 0));
    // block 1: -> 192 x 35 x 35
    STAGE(op_maxpool2d(tp, bconv(tp, net, 4, bconv(tp, net, 3, h)), 3, 3, 2, 2, 0, 0, 0));
    // block 2: -> 768 x 17 x 17
    BLOCK(256, 35, mixed_a(tp, net, I_5B, h, o_));
    BLOCK(288, 35, mixed_a(tp, net, I_5C, h, o_));
    BLOCK(288, 35, mixed_a(tp, net, I_5D, h, o_));
    BLOCK(768, 17, mixed_b(tp, net, I_6A, h, o_));
    BLOCK(768, 17, mixed_c(tp, net, I_6B, h, o_));
    BLOCK(768, 17, mixed_c(tp, net, I_6C, h, o_));
    BLOCK(768, 17, mixed_c(tp, net, I_6D, h, o_));
    BLOCK(768, 17, mixed_c(tp, net, I_6E, h, o_));
    // block 3: -> 2048 x 8 x 8 -> pool3
    BLOCK(1280, 8, mixed_d(tp, net, I_7A, h, o_));
    BLOCK(2048, 8, mixed_e(tp, net, I_7B, h, 0, o_));
    BLOCK(2048, 8, mixed_e(tp, net, I_7C, h, 1, o_));
#undef STAGE
#undef BLOCK
    int cs[2] = {INCEPTION_FEATURE_DIM, N}, nc[2] = {1, 0};
    Tensor *p = op_reshape(tp, op_adaptive_avgpool2d(tp, h, 1, 1), 2, cs);
    Tensor *feat = op_contiguous(tp, op_permute(tp, p, nc));   // (N, 2048)
    Tensor *lg = logits ? op_linear(tp, feat, net->fc_w, net->fc_b) : NULL;
    // copy both out of the arena's released part into tensors made after the release
    int fs[2] = {N, INCEPTION_FEATURE_DIM};
    float *fcopy = core_malloc((size_t)N * INCEPTION_FEATURE_DIM * sizeof(float), "pool3");
    memcpy(fcopy, feat->data, (size_t)N * INCEPTION_FEATURE_DIM * sizeof(float));
    float *lcopy = NULL;
    if (lg) {
        lcopy = core_malloc((size_t)N * INCEPTION_N_LOGITS * sizeof(float), "logits");
        memcpy(lcopy, lg->data, (size_t)N * INCEPTION_N_LOGITS * sizeof(float));
    }
    arena_release(tp->arena, start);
    if (pool3) *pool3 = tensor_from(tp, 2, fs, fcopy, "pool3");
    if (logits) {
        int ls[2] = {N, INCEPTION_N_LOGITS};
        *logits = tensor_from(tp, 2, ls, lcopy, "logits");
    }
    free(fcopy), free(lcopy);
}
