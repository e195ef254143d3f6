// perceptual/lpips.c: the LPIPS v0.1 distance (richzhang/PerceptualSimilarity, porting notes A1) on
// VGG16, AlexNet or the featnet, its channel-wise unit normalisation (an op of its own, for the
// zero-norm policy), and lpips_loss (crop_loss.c does the crop and the mask).
//   LPIPS(a, b) = sum_l mean_hw sum_c w_l[c] (n_l(a) - n_l(b))^2,  n = f / (|f|_c + 1e-10)
#include "perceptual.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// Unit normalisation: x (N, C, H, W) -> y; saves d = |x|_c + eps and r = |x|_c, both (N, H*W).
// Positions are processed in blocks of UN_BLOCK so the channel loop streams whole rows.
#define UN_BLOCK 64

static void unit_norm_forward(const float *x, float *y, float *r, float *d, int N, int C, int64_t HW, float eps) {
    int64_t nb = (HW + UN_BLOCK - 1) / UN_BLOCK;
#pragma omp parallel for schedule(static)
    for (int64_t job = 0; job < N * nb; job++) {
        int n = (int)(job / nb);
        int64_t p0 = (job % nb) * UN_BLOCK, len = HW - p0 < UN_BLOCK ? HW - p0 : UN_BLOCK;
        const float *xn = x + (size_t)n * C * HW + p0;
        float *yn = y + (size_t)n * C * HW + p0;
        double s[UN_BLOCK] = {0};
        for (int c = 0; c < C; c++)
            for (int64_t i = 0; i < len; i++) s[i] += (double)xn[c * HW + i] * xn[c * HW + i];
        float dd[UN_BLOCK];
        for (int64_t i = 0; i < len; i++) {
            float rr = sqrtf((float)s[i]);
            dd[i] = rr + eps;
            r[n * HW + p0 + i] = rr;
            d[n * HW + p0 + i] = dd[i];
        }
        for (int c = 0; c < C; c++)
            for (int64_t i = 0; i < len; i++) yn[c * HW + i] = xn[c * HW + i] / dd[i];
    }
}

// dx += dy / d - x (dy . x) / (d^2 r); at r == 0 the second term is 0 (the policy in perceptual.h).
// The tangent is the same linear map applied to x' (it is symmetric), so both faces share it.
static void unit_norm_jvp(const float *x, const float *r, const float *d, const float *v, float *out, int accumulate,
                          int N, int C, int64_t HW) {
    int64_t nb = (HW + UN_BLOCK - 1) / UN_BLOCK;
#pragma omp parallel for schedule(static)
    for (int64_t job = 0; job < N * nb; job++) {
        int n = (int)(job / nb);
        int64_t p0 = (job % nb) * UN_BLOCK, len = HW - p0 < UN_BLOCK ? HW - p0 : UN_BLOCK;
        size_t base = (size_t)n * C * HW + p0;
        double dot[UN_BLOCK] = {0};
        for (int c = 0; c < C; c++)
            for (int64_t i = 0; i < len; i++) dot[i] += (double)v[base + c * HW + i] * x[base + c * HW + i];
        float a[UN_BLOCK], b[UN_BLOCK];
        for (int64_t i = 0; i < len; i++) {
            float dd = d[n * HW + p0 + i], rr = r[n * HW + p0 + i];
            a[i] = 1.0f / dd;
            b[i] = rr > 0.0f ? (float)(dot[i] / ((double)dd * dd * rr)) : 0.0f;
        }
        for (int c = 0; c < C; c++)
            for (int64_t i = 0; i < len; i++) {
                size_t k = base + c * HW + i;
                float val = v[k] * a[i] - x[k] * b[i];
                out[k] = accumulate ? out[k] + val : val;
            }
    }
}

// N images of C channels at HW positions
typedef struct {
    int N, C;
    int64_t HW;
} UnitNormShape;

static void unit_norm_backward_node(Tape *tp, TapeNode *nd) {
    const UnitNormShape *s = nd->extra;
    Tensor *x = nd->in[0];
    unit_norm_jvp(x->data, nd->saved[0], nd->saved[1], nd->out->grad, tensor_grad(tp, x), 1, s->N, s->C, s->HW);
}

Tensor *perceptual_unit_normalize(Tape *tp, Tensor *x, float eps) {
    tensor_require_contiguous(x, "perceptual_unit_normalize");
    if (x->ndim != 4) core_fatal("perceptual_unit_normalize: x must be (N, C, H, W)");
    int N = x->shape[0], C = x->shape[1];
    int64_t HW = (int64_t)x->shape[2] * x->shape[3];
    Tensor *in[1] = {x};
    Tensor *y = tape_output(tp, 4, x->shape, in, 1);
    float *r = tape_alloc(tp, (size_t)N * HW * sizeof(float));
    float *d = tape_alloc(tp, (size_t)N * HW * sizeof(float));
    unit_norm_forward(x->data, y->data, r, d, N, C, HW, eps);
    if (y->tangent) {
        if (x->tangent) unit_norm_jvp(x->data, r, d, x->tangent, y->tangent, 0, N, C, HW);
        else memset(y->tangent, 0, (size_t)y->numel * sizeof(float));
    }
    TapeNode *nd = tape_record(tp, "unit_normalize", y, unit_norm_backward_node, in, 1);
    if (nd) {
        nd->saved[0] = r;
        UnitNormShape s = {N, C, HW};
        nd->saved[1] = d;
        nd->extra = tape_keep(tp, &s, sizeof s);
    }
    return y;
}

// ---------------------------------------------------------------------------------------------
// Networks

static void lin_declare(Lpips *lp, const int *channels) {
    params_init(&lp->lin_ps, LPIPS_MAX_TAPS);
    char name[32];
    for (int l = 0; l < lp->n_taps; l++) {
        int shape[4] = {1, channels[l], 1, 1};
        snprintf(name, sizeof name, "lin%d.weight", l);
        lp->lin[l] = params_declare(&lp->lin_ps, name, 4, shape);
    }
    params_finalize(&lp->lin_ps);
    for (int i = 0; i < lp->lin_ps.n; i++) lp->lin_ps.tensors[i].requires_grad = 0;
}

// The v0.1 lin weights of `net` ("vgg" or "alex") from lin_path (NULL: the committed file).
static int lin_load(Lpips *lp, const char *lin_path, const char *net) {
    char def[1024];
    if (!lin_path) {
        snprintf(def, sizeof def, "%s/lpips/lpips_v0.1_%s_lin.safetensors", perceptual_weights_dir(), net);
        lin_path = def;
    }
    SafeTensors st;
    if (safetensors_open(&st, lin_path) != 0) {
        char why[512];   // the loader's message, copied: core_set_error reuses its buffer
        snprintf(why, sizeof why, "%s", core_last_error());
        core_set_error("lpips: cannot read the lin weights '%s' (%s). Make them with: /usr/bin/python3 "
                       "tools/convert_weights.py lpips-lin %s.pth %s", lin_path, why, net, lin_path);
        return -1;
    }
    int rc = 0;
    for (int l = 0; l < lp->n_taps && rc == 0; l++)
        rc = safetensors_read_f32(&st, lp->lin[l]->name, 4, lp->lin[l]->shape, lp->lin[l]->data);
    safetensors_close(&st);
    return rc;
}

int lpips_vgg16_load(Lpips *lp, const char *trunk_path, const char *lin_path) {
    static const int ch[5] = {64, 128, 256, 512, 512};
    memset(lp, 0, sizeof *lp);
    lp->net = LPIPS_NET_VGG16;
    lp->n_taps = 5;
    vgg16_init(&lp->vgg);
    lin_declare(lp, ch);
    int rc = lin_load(lp, lin_path, "vgg");
    if (rc == 0 && trunk_path) rc = vgg16_load(&lp->vgg, trunk_path);
    if (rc != 0) lpips_free(lp);
    return rc;
}

int lpips_alex_load(Lpips *lp, const char *trunk_path, const char *lin_path) {
    static const int ch[5] = {64, 192, 384, 256, 256};
    memset(lp, 0, sizeof *lp);
    lp->net = LPIPS_NET_ALEX;
    lp->n_taps = 5;
    alexnet_init(&lp->alex);
    lin_declare(lp, ch);
    int rc = lin_load(lp, lin_path, "alex");
    if (rc == 0 && trunk_path) rc = alexnet_load(&lp->alex, trunk_path);
    if (rc != 0) lpips_free(lp);
    return rc;
}

int lpips_featnet_load(Lpips *lp, const char *path) {
    static const int ch[FEATNET_N_TAPS] = {32, 64, 128};
    memset(lp, 0, sizeof *lp);
    lp->net = LPIPS_NET_FEATNET;
    lp->n_taps = FEATNET_N_TAPS;
    featnet_init(&lp->featnet, 0);
    if (featnet_load(&lp->featnet, path) != 0) {
        featnet_free(&lp->featnet);
        return -1;
    }
    lin_declare(lp, ch);
    for (int l = 0; l < lp->n_taps; l++)
        for (int64_t i = 0; i < lp->lin[l]->numel; i++) lp->lin[l]->data[i] = 1.0f;
    return 0;
}

void lpips_free(Lpips *lp) {
    if (lp->net == LPIPS_NET_VGG16) vgg16_free(&lp->vgg);
    else if (lp->net == LPIPS_NET_ALEX) alexnet_free(&lp->alex);
    else featnet_free(&lp->featnet);
    params_free(&lp->lin_ps);
    memset(lp, 0, sizeof *lp);
}

// The LPIPS v0.1 ScalingLayer: (x - shift) / scale per RGB channel, the constants as float32 (the
// same for every ImageNet trunk: VGG16 and AlexNet).
static Tensor *scaling_layer(Tape *tp, Tensor *x) {
    static const float shift[3] = {-.030f, -.088f, -.188f}, scale[3] = {.458f, .448f, .450f};
    int cs[4] = {1, 3, 1, 1};
    if (x->shape[1] == 1) {
        Tensor *xs[3] = {x, x, x};
        x = op_concat(tp, xs, 3, 1);
    } else if (x->shape[1] != 3) {
        core_fatal("lpips: VGG16 and AlexNet need 1 or 3 channels, got %d", x->shape[1]);
    }
    x = op_sub(tp, x, tensor_from(tp, 4, cs, shift, "lpips.shift"));
    return op_div(tp, x, tensor_from(tp, 4, cs, scale, "lpips.scale"));
}

static void net_taps(Lpips *lp, Tape *tp, Tensor *x, Tensor **taps) {
    if (lp->net == LPIPS_NET_VGG16) {
        vgg16_taps(tp, &lp->vgg, scaling_layer(tp, x), taps);
    } else if (lp->net == LPIPS_NET_ALEX) {
        alexnet_taps(tp, &lp->alex, scaling_layer(tp, x), taps);
    } else {
        if (x->shape[1] != 1 || x->shape[2] != FEATNET_SIZE || x->shape[3] != FEATNET_SIZE)
            core_fatal("lpips: the featnet needs (N, 1, 32, 32) images, got (%d, %d, %d, %d)", x->shape[0],
                       x->shape[1], x->shape[2], x->shape[3]);
        featnet_forward(tp, &lp->featnet, x, taps, NULL);
    }
}

// sum over taps l of mean_hw lin_l((unit(ta_l) - unit(tb_l))^2) -> (N)
static Tensor *taps_distance(Lpips *lp, Tape *tp, Tensor *const *ta, Tensor *const *tb) {
    Tensor *sum = NULL;
    for (int l = 0; l < lp->n_taps; l++) {
        Tensor *diff = op_sub(tp, perceptual_unit_normalize(tp, ta[l], LPIPS_EPS),
                              perceptual_unit_normalize(tp, tb[l], LPIPS_EPS));
        Tensor *w = op_conv2d(tp, op_mul(tp, diff, diff), lp->lin[l], NULL, 1, 1, 0, 0, 1);   // (N, 1, h, w)
        Tensor *m = op_mean(tp, w, (1 << 1) | (1 << 2) | (1 << 3), 0);                          // (N)
        sum = sum ? op_add(tp, sum, m) : m;
    }
    return sum;
}

Tensor *lpips_distance(Lpips *lp, Tape *tp, Tensor *a, Tensor *b) {
    if (a->ndim != 4 || !tensor_same_shape(a, b)) core_fatal("lpips_distance: a and b must be equal (N, C, H, W)");
    a = op_contiguous(tp, a);
    b = op_contiguous(tp, b);
    Tensor *ta[LPIPS_MAX_TAPS], *tb[LPIPS_MAX_TAPS];
    net_taps(lp, tp, a, ta);
    net_taps(lp, tp, b, tb);
    return taps_distance(lp, tp, ta, tb);
}

void lpips_featnet_both(Lpips *lp, Tape *tp, Tensor *a, Tensor *b, Tensor **d_lpips, Tensor **d_features) {
    if (lp->net != LPIPS_NET_FEATNET) core_fatal("lpips_featnet_both: the LPIPS trunk is not the featnet");
    if (a->ndim != 4 || !tensor_same_shape(a, b)) core_fatal("lpips_featnet_both: a and b must be equal (N, C, H, W)");
    a = op_contiguous(tp, a);
    b = op_contiguous(tp, b);
    if (a->shape[1] != 1 || a->shape[2] != FEATNET_SIZE || a->shape[3] != FEATNET_SIZE)
        core_fatal("lpips: the featnet needs (N, 1, 32, 32) images, got (%d, %d, %d, %d)", a->shape[0], a->shape[1],
                   a->shape[2], a->shape[3]);
    Tensor *ta[LPIPS_MAX_TAPS], *tb[LPIPS_MAX_TAPS], *fa, *fb;
    featnet_forward(tp, &lp->featnet, a, ta, &fa);
    featnet_forward(tp, &lp->featnet, b, tb, &fb);
    *d_lpips = taps_distance(lp, tp, ta, tb);
    *d_features = featnet_feature_sqdist(tp, fa, fb);
}

void lpips_loss_defaults(LpipsLossConfig *c, LpipsNet net) {
    c->t_thr = 0.8f;
    c->lambda = 0.4f;
    c->crop_size = net == LPIPS_NET_FEATNET ? FEATNET_SIZE : 224;
    c->random_crop = 1;
}

static Tensor *lpips_distance_fn(void *net, Tape *tp, Tensor *a, Tensor *b) {
    return lpips_distance(net, tp, a, b);
}

Tensor *lpips_loss(Lpips *lp, Tape *tp, Tensor *pred_x, Tensor *x, const float *t, const LpipsLossConfig *cfg,
                   Rng *rng) {
    if (pred_x->ndim != 4) core_fatal("lpips_loss: pred_x must be (B, C, H, W)");
    int B = pred_x->shape[0];
    CropBox *boxes = core_malloc((size_t)B * sizeof(CropBox), "lpips_loss boxes");
    perceptual_crop_draw(rng, B, pred_x->shape[2], pred_x->shape[3], cfg->random_crop, boxes);
    Tensor *out = perceptual_masked_loss(tp, pred_x, x, t, cfg, boxes, lpips_distance_fn, lp);
    free(boxes);
    return out;
}
