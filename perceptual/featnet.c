// perceptual/featnet.c: the small Fashion-MNIST conv classifier that stands in for VGG16 (LPIPS
// taps) and InceptionV3 (a pooled feature vector) on the built-in 32 x 32 grayscale data. Its
// architecture is in perceptual.h; its trained weights are perceptual/weights/featnet_fmnist.safetensors
// (cli/pmf_train_featnet.c makes them). Training lives here so tests can call it; the data arrive
// as raw idx pixels (this module does not include dataset/).
#include "perceptual.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const int fn_cin[3] = {1, 32, 64}, fn_cout[3] = {32, 64, 128};
#define FEATNET_FLAT (128 * 4 * 4)

static void set_trainable(FeatNet *f, int on) {
    for (int i = 0; i < f->ps.n; i++) f->ps.tensors[i].requires_grad = on;
}

void featnet_init(FeatNet *f, uint64_t seed) {
    memset(f, 0, sizeof *f);
    params_init(&f->ps, 10);
    char name[32];
    for (int j = 0; j < 3; j++) {
        int ws[4] = {fn_cout[j], fn_cin[j], 3, 3}, bs[1] = {fn_cout[j]};
        snprintf(name, sizeof name, "conv%d.weight", j + 1);
        f->cw[j] = params_declare(&f->ps, name, 4, ws);
        snprintf(name, sizeof name, "conv%d.bias", j + 1);
        f->cb[j] = params_declare(&f->ps, name, 1, bs);
    }
    int f1s[2] = {FEATNET_FEATURE_DIM, FEATNET_FLAT}, f1bs[1] = {FEATNET_FEATURE_DIM};
    int f2s[2] = {10, FEATNET_FEATURE_DIM}, f2bs[1] = {10};
    f->fw[0] = params_declare(&f->ps, "fc1.weight", 2, f1s);
    f->fb[0] = params_declare(&f->ps, "fc1.bias", 1, f1bs);
    f->fw[1] = params_declare(&f->ps, "fc2.weight", 2, f2s);
    f->fb[1] = params_declare(&f->ps, "fc2.bias", 1, f2bs);
    params_finalize(&f->ps);
    Rng rng;
    rng_init(&rng, seed);
    for (int j = 0; j < 3; j++)
        rng_fill_normal(&rng, f->cw[j]->data, f->cw[j]->numel, 0.0f, sqrtf(2.0f / (fn_cin[j] * 9.0f)));
    rng_fill_normal(&rng, f->fw[0]->data, f->fw[0]->numel, 0.0f, sqrtf(2.0f / FEATNET_FLAT));
    rng_fill_normal(&rng, f->fw[1]->data, f->fw[1]->numel, 0.0f, sqrtf(1.0f / FEATNET_FEATURE_DIM));
    set_trainable(f, 0);
}

int featnet_load(FeatNet *f, const char *path) {
    char def[1024];
    if (!path) {
        snprintf(def, sizeof def, "%s/featnet_fmnist.safetensors", perceptual_weights_dir());
        path = def;
    }
    SafeTensors st;
    if (safetensors_open(&st, path) != 0) {
        char why[512];   // the loader's message, copied: core_set_error reuses its buffer
        snprintf(why, sizeof why, "%s", core_last_error());
        core_set_error("featnet: cannot read '%s' (%s). Train it with: pmf_train_featnet --out %s", path,
                       why, path);
        return -1;
    }
    int rc = params_read_safetensors(&f->ps, &st, path, "featnet", "re-train it with pmf_train_featnet");
    safetensors_close(&st);
    return rc;
}

int featnet_save(const FeatNet *f, const char *path, const char *test_accuracy) {
    StWriter *w = st_writer_new();
    for (int i = 0; i < f->ps.n; i++) st_writer_add_tensor(w, &f->ps.tensors[i]);
    st_writer_meta(w, "format", "pmf featnet v1: 32x32x1 in [-1,1]; conv3x3+relu 1-32, pool, 32-64, pool, 64-128, "
                                "pool, fc1 2048-128 + relu (feature), fc2 128-10");
    if (test_accuracy) st_writer_meta(w, "fashion_mnist_test_accuracy", test_accuracy);
    int rc = st_writer_save(w, path);
    st_writer_free(w);
    return rc;
}

void featnet_free(FeatNet *f) { params_free(&f->ps); }

Tensor *featnet_forward(Tape *tp, const FeatNet *f, Tensor *x, Tensor **taps, Tensor **feature) {
    if (x->ndim != 4 || x->shape[1] != 1 || x->shape[2] != FEATNET_SIZE || x->shape[3] != FEATNET_SIZE)
        core_fatal("featnet_forward: input must be (N, 1, 32, 32)");
    Tensor *h = op_relu(tp, op_conv2d(tp, x, f->cw[0], f->cb[0], 1, 1, 1, 1, 1));
    if (taps) taps[0] = h;
    h = op_maxpool2d(tp, h, 2, 2, 2, 2, 0, 0, 0);
    h = op_relu(tp, op_conv2d(tp, h, f->cw[1], f->cb[1], 1, 1, 1, 1, 1));
    if (taps) taps[1] = h;
    h = op_maxpool2d(tp, h, 2, 2, 2, 2, 0, 0, 0);
    h = op_relu(tp, op_conv2d(tp, h, f->cw[2], f->cb[2], 1, 1, 1, 1, 1));
    if (taps) taps[2] = h;
    h = op_maxpool2d(tp, h, 2, 2, 2, 2, 0, 0, 0);
    int flat[2] = {x->shape[0], FEATNET_FLAT};
    Tensor *feat = op_relu(tp, op_linear(tp, op_reshape(tp, h, 2, flat), f->fw[0], f->fb[0]));   // (N, 128)
    if (feature) *feature = feat;
    return op_linear(tp, feat, f->fw[1], f->fb[1]);
}

Tensor *featnet_features(Tape *tp, const FeatNet *f, Tensor *x) {
    Tensor *feat;
    featnet_forward(tp, f, x, NULL, &feat);
    return feat;
}

Tensor *featnet_feature_sqdist(Tape *tp, Tensor *fa, Tensor *fb) {
    Tensor *d = op_sub(tp, fa, fb);
    return op_sum(tp, op_mul(tp, d, d), 1 << 1, 0);
}

Tensor *featnet_feature_distance(Tape *tp, const FeatNet *f, Tensor *a, Tensor *b) {
    return featnet_feature_sqdist(tp, featnet_features(tp, f, a), featnet_features(tp, f, b));
}

// ---------------------------------------------------------------------------------------------
// Training

void featnet_images(const FeatNetData *d, int start, int n, float *out) {
    int S = FEATNET_SIZE, oy = (S - d->h) / 2, ox = (S - d->w) / 2;
    for (int k = 0; k < n; k++) {
        float *o = out + (size_t)k * S * S;
        for (int i = 0; i < S * S; i++) o[i] = -1.0f;
        const uint8_t *p = d->pixels + (size_t)(start + k) * d->h * d->w;
        for (int y = 0; y < d->h; y++)
            for (int x = 0; x < d->w; x++) o[(y + oy) * S + x + ox] = p[y * d->w + x] / 127.5f - 1.0f;
    }
}

void featnet_train_defaults(FeatNetTrainConfig *c) {
    c->epochs = 6;
    c->batch = 128;
    c->lr = 2e-3f;
    c->weight_decay = 1e-4f;
    c->seed = 0;
    c->log_every = 50;
}

double featnet_accuracy(const FeatNet *f, const FeatNetData *data) {
    enum { EB = 500 };
    Arena arena;
    arena_init(&arena, 16 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    tape_set_recording(&tp, 0);
    float *x = core_malloc((size_t)EB * FEATNET_SIZE * FEATNET_SIZE * sizeof(float), "featnet eval batch");
    int correct = 0;
    for (int s = 0; s < data->n; s += EB) {
        int bs = data->n - s < EB ? data->n - s : EB;
        tape_reset(&tp);
        featnet_images(data, s, bs, x);
        int shape[4] = {bs, 1, FEATNET_SIZE, FEATNET_SIZE};
        Tensor *logits = featnet_forward(&tp, f, tensor_wrap(&tp, x, 4, shape, "images"), NULL, NULL);
        for (int b = 0; b < bs; b++) {
            int best = 0;
            for (int k = 1; k < 10; k++)
                if (logits->data[b * 10 + k] > logits->data[b * 10 + best]) best = k;
            correct += best == data->labels[s + b];
        }
    }
    free(x);
    tape_free(&tp);
    arena_free(&arena);
    return (double)correct / data->n;
}

double featnet_train(FeatNet *f, const FeatNetTrainConfig *c, const FeatNetData *train, const FeatNetData *test) {
    const int B = c->batch, S = FEATNET_SIZE;
    set_trainable(f, 1);
    AdamW opt;
    adamw_init(&opt, &f->ps, c->lr, 0.9f, 0.999f, 1e-8f, c->weight_decay);
    Arena arena;
    arena_init(&arena, 32 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    float *x = core_malloc((size_t)B * S * S * sizeof(float), "featnet batch");
    int *y = core_malloc((size_t)B * sizeof(int), "featnet labels");
    int *order = core_malloc((size_t)train->n * sizeof(int), "featnet order");
    Rng rng;
    rng_init(&rng, c->seed ^ 0x5eedf00dull);
    int steps = train->n / B, total = steps * c->epochs, tty = isatty(fileno(stderr));
    double t0 = core_now();
    for (int ep = 0; ep < c->epochs; ep++) {
        for (int i = 0; i < train->n; i++) order[i] = i;
        for (int i = train->n - 1; i > 0; i--) {   // Fisher-Yates with the counter-based RNG
            int j = (int)(rng_uniform(&rng) * (i + 1)), t = order[i];
            order[i] = order[j], order[j] = t;
        }
        double loss_sum = 0;
        for (int s = 0; s < steps; s++) {
            int done = ep * steps + s;
            opt.lr = c->lr * 0.5f * (1.0f + cosf((float)M_PI * done / total));   // cosine to zero
            for (int b = 0; b < B; b++) {
                int i = order[s * B + b];
                FeatNetData one = {train->pixels + (size_t)i * train->h * train->w, NULL, 1, train->h, train->w};
                float *img = x + (size_t)b * S * S;
                featnet_images(&one, 0, 1, img);
                if (rng_uniform(&rng) < 0.5)   // horizontal flip: clothes are left-right symmetric
                    for (int r = 0; r < S; r++)
                        for (int q = 0; q < S / 2; q++) {
                            float t = img[r * S + q];
                            img[r * S + q] = img[r * S + S - 1 - q], img[r * S + S - 1 - q] = t;
                        }
                y[b] = train->labels[i];
            }
            tape_reset(&tp);
            int shape[4] = {B, 1, S, S};
            Tensor *logits = featnet_forward(&tp, f, tensor_wrap(&tp, x, 4, shape, "images"), NULL, NULL);
            Tensor *loss = op_cross_entropy(&tp, logits, y);
            params_zero_grad(&f->ps);
            tape_backward(&tp, loss, NULL);
            adamw_step(&opt, &f->ps);
            loss_sum += loss->data[0];
            if (c->log_every > 0 && ((s + 1) % c->log_every == 0 || s + 1 == steps)) {
                double el = core_now() - t0;
                double eta = el / (done + 1) * (total - done - 1);
                fprintf(stderr, "%sfeatnet: epoch %d step %4d/%d  loss %.4f  lr %.2e  %.0f img/s  ETA %.0fs%s",
                        tty ? "\r" : "", ep + 1, s + 1, steps, loss_sum / (s + 1), opt.lr, (done + 1.0) * B / el, eta,
                        tty ? "" : "\n");
            }
        }
        if (tty && c->log_every > 0) fprintf(stderr, "\n");
        printf("{\"epoch\": %d, \"train_loss\": %.5f, \"seconds\": %.1f}\n", ep + 1, loss_sum / steps, core_now() - t0);
        fflush(stdout);
    }
    set_trainable(f, 0);
    free(x), free(y), free(order);
    adamw_free(&opt);
    tape_free(&tp);
    arena_free(&arena);
    return test ? featnet_accuracy(f, test) : 0.0;
}
