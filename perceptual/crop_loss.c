// perceptual/crop_loss.c: what every perceptual term of pMF shares (spec 5.5): the random resized
// crop, the same on both images of a pair, and the masked, weighted per-sample loss around any
// distance (LPIPS, ConvNeXt, the featnet's feature distance).
#include "perceptual.h"

#include <math.h>
#include <stdlib.h>

CropBox perceptual_crop_sample(Rng *rng, int H, int W) {
    double area = (0.08 + 0.92 * rng_uniform(rng)) * H * W;
    double log_aspect = log(3.0 / 4.0) + (log(4.0 / 3.0) - log(3.0 / 4.0)) * rng_uniform(rng);
    double aspect = exp(log_aspect);
    CropBox b;
    b.w = (int)lround(sqrt(area * aspect));
    b.h = (int)lround(sqrt(area / aspect));
    b.w = b.w < 1 ? 1 : (b.w > W ? W : b.w);
    b.h = b.h < 1 ? 1 : (b.h > H ? H : b.h);
    b.top = (int)(rng_uniform(rng) * (H - b.h + 1));
    b.left = (int)(rng_uniform(rng) * (W - b.w + 1));
    if (b.top > H - b.h) b.top = H - b.h;
    if (b.left > W - b.w) b.left = W - b.w;
    return b;
}

void perceptual_crop_draw(Rng *rng, int B, int H, int W, int random_crop, CropBox *boxes) {
    for (int b = 0; b < B; b++) {
        CropBox whole = {0, 0, H, W};
        boxes[b] = random_crop ? perceptual_crop_sample(rng, H, W) : whole;
    }
}

// Samples idx[0..n) of x, each cut to its box and resampled to size x size -> (n, C, size, size).
static Tensor *crop_resize_subset(Tape *tp, Tensor *x, const int *idx, const CropBox *boxes, int n, int size) {
    Tensor *parts[1024];
    Tensor **ps = n <= 1024 ? parts : core_malloc((size_t)n * sizeof(Tensor *), "crop parts");
    for (int k = 0; k < n; k++) {
        const CropBox *bx = &boxes[k];
        if (bx->top < 0 || bx->left < 0 || bx->h < 1 || bx->w < 1 || bx->top + bx->h > x->shape[2] ||
            bx->left + bx->w > x->shape[3])
            core_fatal("perceptual_crop_resize: box (%d, %d, %d, %d) outside a %dx%d image", bx->top, bx->left, bx->h,
                       bx->w, x->shape[2], x->shape[3]);
        Tensor *s = op_slice(tp, x, 0, idx[k], idx[k] + 1);
        s = op_slice(tp, op_slice(tp, s, 2, bx->top, bx->top + bx->h), 3, bx->left, bx->left + bx->w);
        s = op_contiguous(tp, s);
        if (bx->h != size || bx->w != size) s = op_resize(tp, s, size, size, RESIZE_BICUBIC, 1);
        ps[k] = s;
    }
    Tensor *out = n == 1 ? ps[0] : op_concat(tp, ps, n, 0);
    if (ps != parts) free(ps);
    return out;
}

Tensor *perceptual_crop_resize(Tape *tp, Tensor *x, const CropBox *boxes, int size) {
    int N = x->shape[0];
    int *idx = core_malloc((size_t)N * sizeof(int), "crop index");
    for (int i = 0; i < N; i++) idx[i] = i;
    Tensor *y = crop_resize_subset(tp, x, idx, boxes, N, size);
    free(idx);
    return y;
}

// Scatters d (n), the values of the unmasked samples idx[0..n), into a (B) tensor with zeros elsewhere.
static Tensor *scatter_rows(Tape *tp, Tensor *d, const int *idx, int n, int B) {
    if (n == B) return d;
    Tensor **parts = core_malloc((size_t)B * sizeof(Tensor *), "perceptual loss parts");
    int one[1] = {1}, k = 0;
    for (int b = 0; b < B; b++) {
        if (k < n && idx[k] == b) parts[b] = op_slice(tp, d, 0, k, k + 1), k++;
        else parts[b] = tensor_zeros(tp, 1, one, "perceptual loss (masked)");
    }
    Tensor *out = op_concat(tp, parts, B, 0);
    free(parts);
    return out;
}

void perceptual_masked_terms(Tape *tp, Tensor *pred_x, Tensor *x, const float *t, float t_thr, int crop_size,
                             const CropBox *boxes, int n_terms, const PerceptualDistanceFn *dist, void *const *net,
                             Tensor **out) {
    if (pred_x->ndim != 4 || !tensor_same_shape(pred_x, x))
        core_fatal("perceptual loss: pred_x and x must be equal (B, C, H, W)");
    int B = pred_x->shape[0];
    int *idx = core_malloc((size_t)B * sizeof(int), "perceptual loss index");
    CropBox *active = core_malloc((size_t)B * sizeof(CropBox), "perceptual loss boxes");
    int n = 0;
    for (int b = 0; b < B; b++)
        if (t[b] < t_thr) idx[n] = b, active[n++] = boxes[b];
    int shape1[1] = {B};
    Tensor *p = NULL, *q = NULL;
    if (n > 0) {
        // One crop of each image for every term (the official auxloss_fn crops once). x is a
        // constant; pred_x's tangent is dropped, so the networks run no forward-mode work (the JVP
        // of pMF's objective does not pass through these terms).
        p = crop_resize_subset(tp, op_drop_tangent(tp, pred_x), idx, active, n, crop_size);
        q = crop_resize_subset(tp, op_stop_gradient(tp, x), idx, active, n, crop_size);
    }
    for (int k = 0; k < n_terms; k++)
        out[k] = n == 0 ? tensor_zeros(tp, 1, shape1, "perceptual loss") : scatter_rows(tp, dist[k](net[k], tp, p, q), idx, n, B);
    free(idx);
    free(active);
}

Tensor *perceptual_masked_loss(Tape *tp, Tensor *pred_x, Tensor *x, const float *t, const LpipsLossConfig *cfg,
                               const CropBox *boxes, PerceptualDistanceFn dist, void *net) {
    Tensor *d;
    perceptual_masked_terms(tp, pred_x, x, t, cfg->t_thr, cfg->crop_size, boxes, 1, &dist, &net, &d);
    return op_scale(tp, d, cfg->lambda);
}
