// pmf/perceptual_hook.c: the objective's perceptual terms (spec 5.3 step 9, 5.5) on the frozen
// networks of perceptual/: aux = sum_k lambda_k * adp(mask * d_k) per sample, d_k a distance between
// the same random resized crops of pred_x and x, mask = [t < t_thr].
//   lpips      VGG16 + LPIPS v0.1 lin weights at 224, lambda 0.4 (model.lpips_lambda)
//   convnext   ConvNeXt-V2-Base pooled-feature distance at 224, lambda 0.1 (model.convnext_lambda)
//   featnet    the built-in data's stand-ins at 32 x 32: LPIPS-style on the featnet's taps (for
//   +features  lpips) and the squared distance of its 128-d feature vector (for convnext)
// Every term sees the same crop of a sample (the official auxloss_fn crops once for both networks;
// spec 5.3 step 9). Crops are a function of (seed, step, global row of the batch), so 1 rank or N
// ranks, one batch or micro-batches, all draw the same crop for the same image.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perceptual/perceptual.h"
#include "pmf/pmf.h"

#define MAX_TERMS 2

struct PmfPerceptual {
    Lpips lp;
    ConvNext cn;
    int has_lp, has_cn;
    int n_terms;
    const char *name[MAX_TERMS];
    PerceptualDistanceFn dist[MAX_TERMS];
    void *net[MAX_TERMS];
    float lambda[MAX_TERMS];   // applied after the adaptive weighting, as the official code does
    float t_thr;               // samples with t >= t_thr contribute 0
    int crop_size;             // every term's networks take the same crop size (224, or 32 for featnet)
    float eps, norm_p;         // the objective's adaptive weighting, for each term as for the losses
    uint64_t seed;
    int featnet_pair;          // featnet+features: one featnet pass per crop for both terms
};

static Tensor *lpips_dist(void *net, Tape *tp, Tensor *a, Tensor *b) { return lpips_distance(net, tp, a, b); }
static Tensor *convnext_dist(void *net, Tape *tp, Tensor *a, Tensor *b) { return convnext_distance(tp, net, a, b); }
static Tensor *featnet_dist(void *net, Tape *tp, Tensor *a, Tensor *b) {
    return featnet_feature_distance(tp, net, a, b);
}

// featnet+features: both terms from one featnet pass over each crop (perceptual_masked_terms calls
// term 0, then term 1, on the same crops): term 0 computes both distances and leaves the second
// here for term 1. One per call of perceptual_term, on its stack, so lanes never share it.
typedef struct {
    Lpips *lp;
    Tensor *d_features;
} FeatnetPair;

static Tensor *featnet_pair_first(void *pair, Tape *tp, Tensor *a, Tensor *b) {
    FeatnetPair *fp = pair;
    Tensor *d;
    lpips_featnet_both(fp->lp, tp, a, b, &d, &fp->d_features);
    return d;
}

static Tensor *featnet_pair_second(void *pair, Tape *tp, Tensor *a, Tensor *b) {
    FeatnetPair *fp = pair;
    if (!fp->d_features) core_fatal("perceptual: the featnet's feature term ran before its LPIPS term");
    Tensor *d = fp->d_features;
    fp->d_features = NULL;
    return d;
}

static CropBox crop_of(const PmfPerceptual *p, int64_t step, int64_t row, int H, int W) {
    Rng rng;
    rng_init(&rng, p->seed);
    rng.offset = ((uint64_t)step << 32) + (uint64_t)row * 8;   // 4 values used
    CropBox box;
    perceptual_crop_draw(&rng, 1, H, W, 1, &box);
    return box;
}

void pmf_perceptual_crop(const PmfPerceptual *p, int64_t step, int64_t row, int H, int W, int box[4]) {
    CropBox b = crop_of(p, step, row, H, W);
    box[0] = b.top, box[1] = b.left, box[2] = b.h, box[3] = b.w;
}

static Tensor *perceptual_term(void *ctx, Tape *tp, Tensor *pred_x, Tensor *x, const float *t, int64_t step,
                               const int64_t *rows) {
    PmfPerceptual *p = ctx;
    int B = pred_x->shape[0], H = pred_x->shape[2], W = pred_x->shape[3];
    CropBox *boxes = core_malloc((size_t)B * sizeof(CropBox), "perceptual boxes");
    for (int b = 0; b < B; b++) boxes[b] = crop_of(p, step, rows[b], H, W);
    Tensor *d[MAX_TERMS];
    PerceptualDistanceFn dist[MAX_TERMS];
    void *net[MAX_TERMS];
    FeatnetPair pair = {&p->lp, NULL};
    for (int k = 0; k < p->n_terms; k++) dist[k] = p->dist[k], net[k] = p->net[k];
    if (p->featnet_pair) {
        dist[0] = featnet_pair_first, dist[1] = featnet_pair_second;
        net[0] = net[1] = &pair;
    }
    perceptual_masked_terms(tp, pred_x, x, t, p->t_thr, p->crop_size, boxes, p->n_terms, dist, net, d);
    free(boxes);
    Tensor *aux = NULL;
    for (int k = 0; k < p->n_terms; k++) {
        Tensor *w = tensor_new(tp, 1, &B, "lambda / sg((d + eps)^p)");
        for (int i = 0; i < B; i++) w->data[i] = p->lambda[k] * pmf_adaptive_weight(d[k]->data[i], p->eps, p->norm_p);
        Tensor *weighted = op_mul(tp, d[k], w);
        aux = aux ? op_add(tp, aux, weighted) : weighted;
    }
    return aux;
}

static void add_term(PmfPerceptual *p, const char *name, PerceptualDistanceFn dist, void *net, float lambda, int crop_size) {
    if (p->n_terms && crop_size != p->crop_size) core_fatal("perceptual terms with different crop sizes cannot share a crop");
    int k = p->n_terms++;
    p->name[k] = name, p->dist[k] = dist, p->net[k] = net, p->lambda[k] = lambda;
    p->crop_size = crop_size;
}

PmfPerceptual *pmf_perceptual_open(const PmfTrainConfig *c, PmfObjective *o) {
    const char *what = c->perceptual;
    int featnet = !strcmp(what, "featnet") || !strcmp(what, "featnet+features");
    int features = !strcmp(what, "featnet+features");
    int lpips = !strcmp(what, "lpips") || !strcmp(what, "lpips+convnext");
    int convnext = !strcmp(what, "convnext") || !strcmp(what, "lpips+convnext");
    if (!featnet && !lpips && !convnext) {
        core_set_error("key 'model.perceptual' = '%s': expected none, featnet, featnet+features (the built-in "
                       "32 x 32 data), lpips, convnext or lpips+convnext", what);
        return NULL;
    }
    if (featnet && (c->model.channels != 1 || c->model.img_size != 32)) {
        core_set_error("key 'model.perceptual' = %s needs 32 x 32 x 1 images (this model: %d x %d x %d); use lpips "
                       "and/or convnext", what, c->model.img_size, c->model.img_size, c->model.channels);
        return NULL;
    }
    PmfPerceptual *p = core_calloc(1, sizeof *p, "perceptual");
    p->eps = c->objective.norm_eps, p->norm_p = c->objective.norm_p;
    p->t_thr = c->perceptual_max_t;
    p->seed = c->seed ^ 0x70657263ull;   // its own Philox stream
    if (featnet || lpips) {
        // lpips_vgg16_load leaves the trunk zeroed for a NULL path (tests): name the default file
        char vgg[1024];
        snprintf(vgg, sizeof vgg, "%s/vgg16_features.safetensors", perceptual_weights_dir());
        int rc = featnet ? lpips_featnet_load(&p->lp, NULL)
                         : lpips_vgg16_load(&p->lp, c->perceptual_weights[0] ? c->perceptual_weights : vgg, NULL);
        if (rc) goto fail;
        p->has_lp = 1;
        add_term(p, featnet ? "lpips (featnet)" : "lpips", lpips_dist, &p->lp, c->lpips_lambda, featnet ? FEATNET_SIZE : 224);
    }
    if (features) {
        add_term(p, "features (featnet)", featnet_dist, &p->lp.featnet, c->convnext_lambda, FEATNET_SIZE);
        p->featnet_pair = getenv("PMF_PERCEPTUAL_SEPARATE") == NULL;   // test hook: the two passes
    }
    if (convnext) {
        char def[1024];
        snprintf(def, sizeof def, "%s/convnextv2_base_22k_224.safetensors", perceptual_weights_dir());
        convnext_init(&p->cn, NULL, NULL);
        p->has_cn = 1;
        if (convnext_load(&p->cn, c->convnext_weights[0] ? c->convnext_weights : def)) goto fail;
        add_term(p, "convnext", convnext_dist, &p->cn, c->convnext_lambda, 224);
    }
    o->perceptual = perceptual_term;
    o->perceptual_ctx = p;
    return p;
fail:
    pmf_perceptual_close(p);
    return NULL;
}

void pmf_perceptual_close(PmfPerceptual *p) {
    if (!p) return;
    if (p->has_lp) lpips_free(&p->lp);
    if (p->has_cn) convnext_free(&p->cn);
    free(p);
}
