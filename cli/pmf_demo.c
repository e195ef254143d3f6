// cli/pmf_demo.c: a small demonstration of core/ on real data: a convolutional classifier trained
// on Fashion-MNIST (Debian's dataset-fashion-mnist) with the tape and AdamW, then scored on the
// test set. It is the README's default job until pmf_train exists.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "dataset/dataset.h"

typedef struct Net {
    ParamStore ps;
    Tensor *c1w, *c1b, *c2w, *c2b, *f1w, *f1b, *f2w, *f2b;
} Net;

static Tensor *declare(ParamStore *ps, const char *name, int ndim, int a, int b, int c, int d) {
    int shape[4] = {a, b, c, d};
    return params_declare(ps, name, ndim, shape);
}

static void net_init(Net *n, uint64_t seed) {
    params_init(&n->ps, 16);
    n->c1w = declare(&n->ps, "conv1.weight", 4, 16, 1, 3, 3);
    n->c1b = declare(&n->ps, "conv1.bias", 1, 16, 0, 0, 0);
    n->c2w = declare(&n->ps, "conv2.weight", 4, 32, 16, 3, 3);
    n->c2b = declare(&n->ps, "conv2.bias", 1, 32, 0, 0, 0);
    n->f1w = declare(&n->ps, "fc1.weight", 2, 128, 32 * 7 * 7, 0, 0);
    n->f1b = declare(&n->ps, "fc1.bias", 1, 128, 0, 0, 0);
    n->f2w = declare(&n->ps, "fc2.weight", 2, 10, 128, 0, 0);
    n->f2b = declare(&n->ps, "fc2.bias", 1, 10, 0, 0, 0);
    params_finalize(&n->ps);
    // He-normal weights (fan_in), zero biases.
    Rng rng;
    rng_init(&rng, seed);
    Tensor *w[4] = {n->c1w, n->c2w, n->f1w, n->f2w};
    for (int i = 0; i < 4; i++) {
        float fan_in = (float)(w[i]->numel / w[i]->shape[0]);
        rng_fill_normal(&rng, w[i]->data, w[i]->numel, 0.0f, sqrtf(2.0f / fan_in));
    }
}

// x (B, 1, 28, 28) -> logits (B, 10)
static Tensor *net_forward(Tape *tp, Net *n, Tensor *x) {
    Tensor *h = op_relu(tp, op_conv2d(tp, x, n->c1w, n->c1b, 1, 1, 1, 1, 1));
    h = op_maxpool2d(tp, h, 2, 2, 2, 2, 0, 0, 0);
    h = op_relu(tp, op_conv2d(tp, h, n->c2w, n->c2b, 1, 1, 1, 1, 1));
    h = op_maxpool2d(tp, h, 2, 2, 2, 2, 0, 0, 0);
    int flat[2] = {x->shape[0], 32 * 7 * 7};
    h = op_reshape(tp, h, 2, flat);
    h = op_relu(tp, op_linear(tp, h, n->f1w, n->f1b));
    return op_linear(tp, h, n->f2w, n->f2b);
}

static void load_batch(const IdxImages *im, const IdxLabels *lb, const int *order, int start, int B, float *x,
                       int *y) {
    for (int b = 0; b < B; b++) {
        int i = order[start + b];
        const uint8_t *p = im->pixels + (size_t)i * 28 * 28;
        for (int k = 0; k < 28 * 28; k++) x[(size_t)b * 784 + k] = p[k] / 127.5f - 1.0f;
        y[b] = lb->labels[i];
    }
}

static double evaluate(Net *n, Tape *tp, const IdxImages *im, const IdxLabels *lb, float *x, int *y, int B) {
    int correct = 0;
    int *order = malloc((size_t)im->n * sizeof(int));
    for (int i = 0; i < im->n; i++) order[i] = i;
    tape_set_recording(tp, 0);
    for (int s = 0; s < im->n; s += B) {
        int bs = im->n - s < B ? im->n - s : B;
        tape_reset(tp);
        load_batch(im, lb, order, s, bs, x, y);
        int shape[4] = {bs, 1, 28, 28};
        Tensor *logits = net_forward(tp, n, tensor_wrap(tp, x, 4, shape, "images"));
        for (int b = 0; b < bs; b++) {
            int best = 0;
            for (int k = 1; k < 10; k++)
                if (logits->data[b * 10 + k] > logits->data[b * 10 + best]) best = k;
            correct += best == y[b];
        }
    }
    tape_set_recording(tp, 1);
    free(order);
    return (double)correct / im->n;
}

static void usage(void) {
    fprintf(stderr, "usage: pmf_demo [--epochs N] [--batch B] [--lr LR] [--seed S] [--threads T] [--data DIR]\n"
                    "Trains a small conv net on Fashion-MNIST with pmf's core and prints test accuracy.\n");
}

int main(int argc, char **argv) {
    core_prefer_passive_threads(argv);   // see core/core.h: spinning waits stall on a shared machine
    int epochs = 2, B = 64, threads = 0;
    float lr = 1e-3f;
    uint64_t seed = 0;
    const char *dir = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc && strcmp(a, "--help") != 0) {
            fprintf(stderr, "pmf_demo: %s needs a value\n", a);
            usage();
            return 2;
        }
        char *end = NULL;
        if (!strcmp(a, "--epochs")) epochs = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--batch")) B = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--lr")) lr = strtof(argv[++i], &end);
        else if (!strcmp(a, "--seed")) seed = strtoull(argv[++i], &end, 10);
        else if (!strcmp(a, "--threads")) threads = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--data")) dir = argv[++i];
        else {
            usage();
            return strcmp(a, "--help") ? 2 : 0;
        }
        if (end && *end) {
            fprintf(stderr, "pmf_demo: %s: '%s' is not a number\n", a, argv[i]);
            return 2;
        }
    }
    if (epochs < 1 || B < 1 || B > 4096 || !(lr > 0)) {
        fprintf(stderr, "pmf_demo: need epochs >= 1, 1 <= batch <= 4096, lr > 0\n");
        return 2;
    }
    core_set_threads(threads);
    IdxImages tr_im, te_im;
    IdxLabels tr_lb, te_lb;
    if (fashion_mnist_load(dir, "train", &tr_im, &tr_lb) || fashion_mnist_load(dir, "t10k", &te_im, &te_lb)) {
        fprintf(stderr, "pmf_demo: %s\n(install Debian's dataset-fashion-mnist, or pass --data DIR)\n", core_last_error());
        return 1;
    }
    printf("pmf_demo: Fashion-MNIST %d train / %d test images, %d threads, batch %d, %d epochs\n", tr_im.n,
           te_im.n, core_threads(), B, epochs);
    Net net;
    net_init(&net, seed);
    printf("pmf_demo: %lld parameters\n", (long long)net.ps.total);
    AdamW opt;
    adamw_init(&opt, &net.ps, lr, 0.9f, 0.999f, 1e-8f, 0.0f);
    Arena arena;
    arena_init(&arena, 32 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    float *x = malloc((size_t)B * 784 * sizeof(float));
    int *y = malloc((size_t)B * sizeof(int));
    int *order = malloc((size_t)tr_im.n * sizeof(int));
    Rng shuffle;
    rng_init(&shuffle, seed ^ 0x5eed);
    int tty = isatty(fileno(stdout));
    int steps = tr_im.n / B;
    double t0 = core_now();
    for (int ep = 0; ep < epochs; ep++) {
        for (int i = 0; i < tr_im.n; i++) order[i] = i;
        for (int i = tr_im.n - 1; i > 0; i--) {   // Fisher-Yates with the counter-based RNG
            int j = (int)(rng_uniform(&shuffle) * (i + 1));
            int t = order[i];
            order[i] = order[j], order[j] = t;
        }
        double loss_sum = 0;
        for (int s = 0; s < steps; s++) {
            tape_reset(&tp);
            load_batch(&tr_im, &tr_lb, order, s * B, B, x, y);
            int shape[4] = {B, 1, 28, 28};
            Tensor *logits = net_forward(&tp, &net, tensor_wrap(&tp, x, 4, shape, "images"));
            Tensor *loss = op_cross_entropy(&tp, logits, y);
            params_zero_grad(&net.ps);
            tape_backward(&tp, loss, NULL);
            adamw_step(&opt, &net.ps);
            loss_sum += loss->data[0];
            if ((s + 1) % 100 == 0 || s + 1 == steps) {
                double el = core_now() - t0;
                int done = ep * steps + s + 1;
                double eta = el / done * (epochs * steps - done);
                printf("%sepoch %d step %4d/%d  loss %.4f  %.0f img/s  ETA %.0fs%s", tty ? "\r" : "", ep + 1, s + 1,
                       steps, loss_sum / (s + 1), done * (double)B / el, eta, tty ? "" : "\n");
                fflush(stdout);
            }
        }
        if (tty) printf("\n");
        double acc = evaluate(&net, &tp, &te_im, &te_lb, x, y, B);
        printf("epoch %d: train loss %.4f, test accuracy %.2f%%\n", ep + 1, loss_sum / steps, 100 * acc);
    }
    printf("pmf_demo: done in %.1fs, arena peak %.1f MB\n", core_now() - t0, arena.peak / 1048576.0);
    free(x), free(y), free(order);
    adamw_free(&opt);
    tape_free(&tp);
    arena_free(&arena);
    params_free(&net.ps);
    idx_free_images(&tr_im), idx_free_images(&te_im), idx_free_labels(&tr_lb), idx_free_labels(&te_lb);
    return 0;
}
