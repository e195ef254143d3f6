// perceptual/convnext.c: ConvNeXt-V2 (HF transformers' ConvNextV2Model, facebook/convnextv2-base-22k-224)
// as core ops: its pooled, layer-normed feature, pMF's ConvNeXt distance and loss (spec 5.5), the
// safetensors loader, and the deterministic hash weights that tests and benches share with PyTorch.
// Not here: the classifier head (never used), anything trainable (the network is always frozen).
//
//   stem      conv 4x4/4 (3 -> d0, bias), LayerNorm over channels
//   stage s   (s >= 1) LayerNorm over channels, conv 2x2/2 (d_{s-1} -> d_s, bias); then depth_s blocks
//   block     dwconv 7x7 p3 (groups = C, bias) -> LayerNorm over channels -> pwconv1 C->4C ->
//             GELU (erf) -> GRN -> pwconv2 4C->C -> + input (HF goes to NHWC for the middle and
//             uses Linear layers; here everything stays NCHW and pwconv1/2 are 1x1 convolutions)
//   GRN       Gx = ||x||_2 over (H, W) per (n, c); Nx = Gx / (mean_c Gx + 1e-6);
//             y = gamma (x Nx) + beta + x, computed as x (gamma Nx + 1) + beta (GELU and GRN are
//             one op of this file)
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
    int rc = params_read_safetensors(&net->ps, &st, path, "convnext",
                                     "expected the names of tools/convert_weights.py convnextv2; re-run it");
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
// Forward. The trunk stays NCHW end to end: LayerNorms over channels are op_layernorm_channels,
// pwconv1/pwconv2 are 1x1 convolutions (the (out, in) weights viewed as (out, in, 1, 1)), and
// GELU + GRN is one op (below), so a block records 6 ops instead of 18 and keeps no transposed
// copies: about 2.3x less arena per image with gradients. Numbers are those of the channels-last
// composition up to float rounding.

// GELU (erf) followed by GRN, one op: h (N, C4, H, W) pre-activation, gamma and beta (C4 elements)
// -> y (N, C4, H, W):
//   g = gelu(h) = h Phi(h); G = ||g||_2 over (H, W) per (n, c); D = mean_c G + 1e-6 per n;
//   s = gamma G / D + 1; y = g s + beta
// Saves only G, s (N, C4) and D (N): backward recomputes g and gelu'(h) from h (the pwconv1 output,
// alive anyway), so the op adds no activation-sized buffer besides y, where the composition of
// separate ops kept eight. Planes (n, c) run in parallel (static) and per-image sums run in order,
// so results do not depend on the thread count.
// Gradient (per image; a_c = sum_i dy_i g_i over plane c):
//   dNx_c = gamma_c a_c; dG_c = dNx_c / D - sum_k dNx_k G_k / (C4 D^2);
//   dh_i += gelu'(h_i) (s_c dy_i + dG_c g_i / G_c)   (the last term 0 where G_c = 0, as torch.norm's)
//   dgamma_c += sum_n G_c / D a_c; dbeta_c += sum_n sum_i dy_i
// Tangent: g' = gelu'(h) h'; G' = sum g g' / G; D' = mean_c G'; s' = gamma (G' / D - G D' / D^2) +
// gamma' G / D; y' = g' s + g s' + beta'.
typedef struct {
    int N, C4;
    int64_t HW;
} GrnShape;

// glibc (2.35 on) has vector erff and expf (libmvec, which -lm pulls in as needed): declared as SIMD
// functions, the loops below marked `omp simd` call them 8 or 16 lanes at a time, where the scalar
// calls took a fifth of the network's time. They differ from the scalar calls by a few ulps at most
// (measured on dense grids: 4 for erff, near erf = -1; 3 for expf), float rounding next to the rest.
#if defined(__GLIBC__) && defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && \
    (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 35))
extern float erff(float) __attribute__((simd("notinbranch")));
extern float expf(float) __attribute__((simd("notinbranch")));
#endif

#define K_ERF 0.7071067811865476f   // 1 / sqrt(2)
#define K_PDF 0.3989422804014327f   // 1 / sqrt(2 pi)

// Phi(v), so gelu(v) = v Phi(v) and gelu'(v) = Phi(v) + v phi(v) (op_gelu_erf's formulas)
static inline float gelu_phi(float v) { return 0.5f * (1.0f + erff(v * K_ERF)); }
static inline float gelu_der(float v, float phi) { return phi + v * K_PDF * expf(-0.5f * v * v); }

// g = gelu(h) into g, G (N*C4) the plane norms; with th, tg = gelu'(h) th and Gt = G'
static void gelu_grn_planes(const GrnShape *sh, const float *h, const float *th, float *g, float *tg, float *G,
                            float *Gt) {
    int64_t P = (int64_t)sh->N * sh->C4, HW = sh->HW;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; p++) {
        const float *hp = h + p * HW;
        float *gp = g + p * HW;
        double ss = 0, st = 0;
        if (th) {
            const float *thp = th + p * HW;
            float *tgp = tg + p * HW;
#pragma omp simd reduction(+ : ss, st)
            for (int64_t i = 0; i < HW; i++) {
                float v = hp[i], phi = gelu_phi(v), gv = v * phi, t = gelu_der(v, phi) * thp[i];
                gp[i] = gv;
                tgp[i] = t;
                ss += (double)gv * gv;
                st += (double)gv * t;
            }
        } else {
#pragma omp simd reduction(+ : ss)
            for (int64_t i = 0; i < HW; i++) {
                float v = hp[i], gv = v * gelu_phi(v);
                gp[i] = gv;
                ss += (double)gv * gv;
            }
        }
        G[p] = sqrtf((float)ss);
        if (Gt) Gt[p] = G[p] > 0.0f ? (float)(st / G[p]) : 0.0f;
    }
}

static void gelu_grn_backward_node(Tape *tp, TapeNode *nd) {
    const GrnShape *sh = nd->extra;
    Tensor *h = nd->in[0], *gamma = nd->in[1], *beta = nd->in[2];
    const float *G = nd->saved[0], *s = nd->saved[1], *D = nd->saved[2];
    const float *hd = h->data, *dy = nd->out->grad, *gm = gamma->data;
    float *dh = tensor_grad(tp, h), *dgamma = tensor_grad(tp, gamma), *dbeta = tensor_grad(tp, beta);
    int N = sh->N, C4 = sh->C4;
    int64_t P = (int64_t)N * C4, HW = sh->HW;
    float *a = tape_alloc(tp, 3 * (size_t)P * sizeof(float)), *q = a + P, *sdy = q + P;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; p++) {
        const float *dyp = dy + p * HW, *hp = hd + p * HW;
        double acc = 0, sum = 0;
#pragma omp simd reduction(+ : acc, sum)
        for (int64_t i = 0; i < HW; i++) {
            float v = hp[i];
            acc += (double)dyp[i] * (v * gelu_phi(v));
            sum += dyp[i];
        }
        a[p] = (float)acc;
        sdy[p] = (float)sum;
    }
    for (int n = 0; n < N; n++) {
        const float *an = a + (size_t)n * C4, *Gn = G + (size_t)n * C4;
        double dD = 0;   // dL/dD = -sum_k dNx_k G_k / D^2
        for (int c = 0; c < C4; c++) dD -= (double)gm[c] * an[c] * Gn[c];
        dD /= (double)D[n] * D[n];
        for (int c = 0; c < C4; c++) {
            double dG = (double)gm[c] * an[c] / D[n] + dD / C4;
            q[(size_t)n * C4 + c] = Gn[c] > 0.0f ? (float)(dG / Gn[c]) : 0.0f;
        }
    }
    if (dh) {
#pragma omp parallel for schedule(static)
        for (int64_t p = 0; p < P; p++) {
            const float *hp = hd + p * HW, *dyp = dy + p * HW;
            float *dhp = dh + p * HW, sp = s[p], qp = q[p];
#pragma omp simd
            for (int64_t i = 0; i < HW; i++) {
                float v = hp[i], phi = gelu_phi(v);
                dhp[i] += gelu_der(v, phi) * (sp * dyp[i] + qp * (v * phi));
            }
        }
    }
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C4; c++) {
            size_t p = (size_t)n * C4 + c;
            if (dgamma) dgamma[c] += G[p] / D[n] * a[p];
            if (dbeta) dbeta[c] += sdy[p];
        }
}

static Tensor *gelu_grn(Tape *tp, Tensor *h, Tensor *gamma, Tensor *beta) {
    tensor_require_contiguous(h, "convnext gelu_grn");
    if (h->ndim != 4) core_fatal("convnext gelu_grn: input must be (N, C4, H, W)");
    GrnShape sh = {h->shape[0], h->shape[1], (int64_t)h->shape[2] * h->shape[3]};
    if (gamma->numel != sh.C4 || beta->numel != sh.C4)
        core_fatal("convnext gelu_grn: '%s' and '%s' must have %d elements", gamma->name ? gamma->name : "?",
                   beta->name ? beta->name : "?", sh.C4);
    int N = sh.N, C4 = sh.C4;
    int64_t P = (int64_t)N * C4, HW = sh.HW;
    Tensor *in[3] = {h, gamma, beta};
    Tensor *y = tape_output(tp, 4, h->shape, in, 3);
    float *G = tape_alloc(tp, ((size_t)3 * P + N) * sizeof(float)), *s = G + P, *Nx = s + P, *D = Nx + P;
    float *tg = y->tangent && h->tangent ? y->tangent : NULL;   // g' goes into y' and is finished in place
    float *Gt = tg ? tape_alloc(tp, (size_t)P * sizeof(float)) : NULL;
    // g goes into y, which then becomes g s + beta in place
    gelu_grn_planes(&sh, h->data, tg ? h->tangent : NULL, y->data, tg, G, Gt);
    for (int n = 0; n < N; n++) {
        const float *Gn = G + (size_t)n * C4;
        double m = 0;
        for (int c = 0; c < C4; c++) m += Gn[c];
        D[n] = (float)(m / C4) + 1e-6f;
        for (int c = 0; c < C4; c++) {
            Nx[(size_t)n * C4 + c] = Gn[c] / D[n];
            s[(size_t)n * C4 + c] = gamma->data[c] * Nx[(size_t)n * C4 + c] + 1.0f;
        }
    }
    if (y->tangent) {
        float *ts = tape_alloc(tp, (size_t)P * sizeof(float));
        for (int n = 0; n < N; n++) {
            double m = 0;
            if (tg)
                for (int c = 0; c < C4; c++) m += Gt[(size_t)n * C4 + c];
            float Dt = (float)(m / C4);
            for (int c = 0; c < C4; c++) {
                size_t p = (size_t)n * C4 + c;
                float nxt = tg ? Gt[p] / D[n] - G[p] * Dt / (D[n] * D[n]) : 0.0f;
                ts[p] = gamma->data[c] * nxt + (gamma->tangent ? gamma->tangent[c] * Nx[p] : 0.0f);
            }
        }
        const float *tb = beta->tangent, *g = y->data;
        float *ty = y->tangent;
#pragma omp parallel for schedule(static)
        for (int64_t p = 0; p < P; p++) {
            const float *gp = g + p * HW;
            float *typ = ty + p * HW, sp = s[p], tsp = ts[p], tbc = tb ? tb[p % C4] : 0.0f;
            for (int64_t i = 0; i < HW; i++) typ[i] = (tg ? typ[i] * sp : 0.0f) + gp[i] * tsp + tbc;
        }
    }
    const float *b = beta->data;
    float *yd = y->data;
#pragma omp parallel for schedule(static)
    for (int64_t p = 0; p < P; p++) {
        float *yp = yd + p * HW, sp = s[p], bc = b[p % C4];
        for (int64_t i = 0; i < HW; i++) yp[i] = yp[i] * sp + bc;
    }
    TapeNode *nd = tape_record(tp, "convnext_gelu_grn", y, gelu_grn_backward_node, in, 3);
    if (nd) {
        nd->saved[0] = G;
        nd->saved[1] = s;
        nd->saved[2] = D;
        nd->extra = tape_keep(tp, &sh, sizeof sh);
    }
    return y;
}

// (out, in) linear weight as an (out, in, 1, 1) convolution weight (a view)
static Tensor *as_1x1(Tape *tp, Tensor *w) {
    int shape[4] = {w->shape[0], w->shape[1], 1, 1};
    return op_reshape(tp, w, 4, shape);
}

static Tensor *block(Tape *tp, const ConvNextBlock *b, Tensor *x) {
    int C = x->shape[1];
    Tensor *h = op_conv2d(tp, x, b->dw_w, b->dw_b, 1, 1, 3, 3, C);
    h = op_layernorm_channels(tp, h, b->ln_w, b->ln_b, CONVNEXT_LN_EPS);
    h = op_conv2d(tp, h, as_1x1(tp, b->pw1_w), b->pw1_b, 1, 1, 0, 0, 1);
    h = gelu_grn(tp, h, b->grn_g, b->grn_b);
    h = op_conv2d(tp, h, as_1x1(tp, b->pw2_w), b->pw2_b, 1, 1, 0, 0, 1);
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
    h = op_layernorm_channels(tp, h, net->stem_ln_w, net->stem_ln_b, CONVNEXT_LN_EPS);
    int k = 0;
    for (int s = 0; s < CONVNEXT_N_STAGES; s++) {
        if (s > 0) {
            h = op_layernorm_channels(tp, h, net->down_ln_w[s], net->down_ln_b[s], CONVNEXT_LN_EPS);
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
