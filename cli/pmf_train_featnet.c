// cli/pmf_train_featnet.c: trains perceptual/'s featnet on Fashion-MNIST (Debian's
// dataset-fashion-mnist), prints the test accuracy and writes the weights (safetensors, atomically).
// The committed perceptual/weights/featnet_fmnist.safetensors comes from the defaults here.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"
#include "dataset/dataset.h"
#include "perceptual/perceptual.h"

static void usage(void) {
    fprintf(stderr, "usage: pmf_train_featnet [--out FILE] [--epochs N] [--batch B] [--lr LR] [--seed S]\n"
                    "                         [--threads T] [--data DIR]\n"
                    "Trains the featnet (perceptual/perceptual.h) on Fashion-MNIST and writes its weights\n"
                    "(default: perceptual/weights/featnet_fmnist.safetensors in the source tree).\n");
}

int main(int argc, char **argv) {
    FeatNetTrainConfig cfg;
    featnet_train_defaults(&cfg);
    int threads = 0;
    const char *dir = NULL, *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "pmf_train_featnet: %s needs a value\n", a);
            usage();
            return 2;
        }
        char *end = NULL;
        if (!strcmp(a, "--epochs")) cfg.epochs = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--batch")) cfg.batch = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--lr")) cfg.lr = strtof(argv[++i], &end);
        else if (!strcmp(a, "--seed")) cfg.seed = strtoull(argv[++i], &end, 10);
        else if (!strcmp(a, "--threads")) threads = (int)strtol(argv[++i], &end, 10);
        else if (!strcmp(a, "--data")) dir = argv[++i];
        else if (!strcmp(a, "--out")) out = argv[++i];
        else {
            fprintf(stderr, "pmf_train_featnet: unknown option '%s'\n", a);
            usage();
            return 2;
        }
        if (end && *end) {
            fprintf(stderr, "pmf_train_featnet: %s: '%s' is not a number\n", a, argv[i]);
            return 2;
        }
    }
    if (cfg.epochs < 1 || cfg.batch < 1 || cfg.batch > 4096 || !(cfg.lr > 0)) {
        fprintf(stderr, "pmf_train_featnet: need epochs >= 1, 1 <= batch <= 4096, lr > 0\n");
        return 2;
    }
    char def[1024];
    if (!out) {
        snprintf(def, sizeof def, "%s/featnet_fmnist.safetensors", perceptual_weights_dir());
        out = def;
    }
    core_set_threads(threads);
    IdxImages tr_im, te_im;
    IdxLabels tr_lb, te_lb;
    if (fashion_mnist_load(dir, "train", &tr_im, &tr_lb) || fashion_mnist_load(dir, "t10k", &te_im, &te_lb)) {
        fprintf(stderr, "pmf_train_featnet: %s\n(install Debian's dataset-fashion-mnist, or pass --data DIR)\n",
                core_last_error());
        return 1;
    }
    FeatNetData train = {tr_im.pixels, tr_lb.labels, tr_im.n, tr_im.h, tr_im.w};
    FeatNetData test = {te_im.pixels, te_lb.labels, te_im.n, te_im.h, te_im.w};
    FeatNet net;
    featnet_init(&net, cfg.seed);
    printf("pmf_train_featnet: %d train / %d test images, %lld parameters, %d threads, batch %d, %d epochs, seed %llu\n",
           train.n, test.n, (long long)net.ps.total, core_threads(), cfg.batch, cfg.epochs,
           (unsigned long long)cfg.seed);
    double t0 = core_now();
    double acc = featnet_train(&net, &cfg, &train, &test);
    char accs[32];
    snprintf(accs, sizeof accs, "%.4f", acc);
    printf("{\"test_accuracy\": %s, \"seconds\": %.1f}\n", accs, core_now() - t0);
    int rc = featnet_save(&net, out, accs);
    if (rc != 0) fprintf(stderr, "pmf_train_featnet: %s\n", core_last_error());
    else printf("pmf_train_featnet: wrote %s\n", out);
    featnet_free(&net);
    idx_free_images(&tr_im), idx_free_images(&te_im), idx_free_labels(&tr_lb), idx_free_labels(&te_lb);
    return rc ? 1 : 0;
}
