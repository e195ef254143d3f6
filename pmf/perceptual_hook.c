// pmf/perceptual_hook.c: the objective's perceptual term (spec 5.3 step 9, 5.5) on the frozen
// networks of perceptual/: aux = lambda * adp(mask * d) per sample, d an LPIPS-style distance
// between the same random resized crops of pred_x and x, mask = [t < t_thr].
// "featnet" is the project's Fashion-MNIST network (32 x 32 grayscale, the built-in data);
// "lpips" is VGG16 + the LPIPS v0.1 lin weights at 224 (ImageNet-style data; slow on a CPU).
#include <stdlib.h>
#include <string.h>

#include "perceptual/perceptual.h"
#include "pmf/pmf.h"

struct PmfPerceptual {
    Lpips lp;
    LpipsLossConfig cfg;   // lambda is applied after the adaptive weighting, so cfg.lambda = 1
    float lambda, eps;
    Rng rng;
    uint64_t seed;
};

static Tensor *perceptual_term(void *ctx, Tape *tp, Tensor *pred_x, Tensor *x, const float *t) {
    PmfPerceptual *p = ctx;
    Tensor *d = lpips_loss(&p->lp, tp, pred_x, x, t, &p->cfg, &p->rng);   // (B), 0 where masked
    int B = d->shape[0];
    Tensor *w = tensor_new(tp, 1, &B, "lambda / sg(d + eps)");
    for (int i = 0; i < B; i++) w->data[i] = p->lambda / (d->data[i] + p->eps);
    return op_mul(tp, d, w);
}

PmfPerceptual *pmf_perceptual_open(const PmfTrainConfig *c, PmfObjective *o) {
    int featnet = !strcmp(c->perceptual, "featnet");
    if (!featnet && strcmp(c->perceptual, "lpips")) {
        core_set_error("key 'model.perceptual' = '%s': built are 'featnet' (the built-in data) and 'lpips' (VGG16); "
                       "the ConvNeXt term is not yet", c->perceptual);
        return NULL;
    }
    PmfPerceptual *p = core_calloc(1, sizeof *p, "perceptual");
    int rc = featnet ? lpips_featnet_load(&p->lp, NULL) : lpips_vgg16_load(&p->lp, c->perceptual_weights[0] ? c->perceptual_weights : NULL, NULL);
    if (rc) {
        free(p);
        return NULL;
    }
    if (featnet && (c->model.channels != 1 || c->model.img_size != 32)) {
        core_set_error("key 'model.perceptual' = featnet needs 32 x 32 x 1 images (this model: %d x %d x %d)",
                       c->model.img_size, c->model.img_size, c->model.channels);
        lpips_free(&p->lp);
        free(p);
        return NULL;
    }
    lpips_loss_defaults(&p->cfg, featnet ? LPIPS_NET_FEATNET : LPIPS_NET_VGG16);
    p->cfg.t_thr = c->perceptual_max_t;
    p->cfg.lambda = 1.0f;
    p->lambda = c->lpips_lambda;
    p->eps = c->objective.norm_eps;
    p->seed = c->seed ^ 0x70657263ull;   // its own Philox stream
    o->perceptual = perceptual_term;
    o->perceptual_ctx = p;
    return p;
}

void pmf_perceptual_begin_step(PmfPerceptual *p, int64_t step) {
    // crops are a function of (seed, step); micro-batches draw in row order from one stream
    rng_init(&p->rng, p->seed);
    p->rng.offset = (uint64_t)step << 32;
}

void pmf_perceptual_close(PmfPerceptual *p) {
    if (!p) return;
    lpips_free(&p->lp);
    free(p);
}
