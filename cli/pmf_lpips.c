// cli/pmf_lpips.c: LPIPS distance between two PNG images, or between the same-named PNG images of
// two folders, printing one line per pair and the mean.
//   pmf_lpips [--net vgg|alex|featnet] [--weights FILE] [--lin FILE] [--threads T] A B
// vgg: LPIPS v0.1 on VGG16 at the images' own size (grayscale repeated to RGB); --weights is the
// trunk from tools/convert_weights.py vgg16 (default perceptual/weights/vgg16_features.safetensors).
// alex: the same on AlexNet (lpips.LPIPS(net='alex')); --weights from tools/convert_weights.py
// alexnet (default perceptual/weights/alexnet_features.safetensors); images at least 31 x 31.
// featnet: the Fashion-MNIST featnet; images become grayscale (BT.601 luma) and, if they are not
// 32 x 32, are resampled to it (bicubic, antialiased). Pixels map to [-1, 1].
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/core.h"
#include "dataset/dataset.h"
#include "perceptual/perceptual.h"

typedef struct Image {
    int h, w, c;    // c = 1 (gray) or 3 (RGB)
    float *data;    // (c, h, w) in [-1, 1]
} Image;

// Reads a PNG (or JPEG) through dataset's decoder, which bounds the image size and libpng's chunk
// allocations and converts any colour type to RGB (gray repeated, alpha dropped, 16-bit reduced
// to its high byte), so c is always 3 here.
static int png_read(const char *path, Image *im) {
    DsImage d;
    if (ds_image_load(path, 0, &d)) return -1;
    size_t n = (size_t)d.h * d.w;
    im->h = d.h, im->w = d.w, im->c = d.c;
    im->data = malloc((size_t)d.c * n * sizeof(float));
    if (!im->data) {
        core_set_error("'%s': out of memory for %d x %d pixels", path, d.w, d.h);
        ds_image_free(&d);
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < d.c; c++) im->data[(size_t)c * n + i] = d.px[i * d.c + c] / 127.5f - 1.0f;
    ds_image_free(&d);
    return 0;
}

// (c, h, w) -> (1, 1, h, w) BT.601 luma, in [-1, 1] (the mapping is affine, so luma commutes with it)
static Tensor *to_gray(Tape *tp, const Image *im) {
    int shape[4] = {1, 1, im->h, im->w};
    Tensor *t = tensor_new(tp, 4, shape, "gray");
    size_t n = (size_t)im->h * im->w;
    for (size_t i = 0; i < n; i++)
        t->data[i] = im->c == 1 ? im->data[i]
                                : 0.299f * im->data[i] + 0.587f * im->data[n + i] + 0.114f * im->data[2 * n + i];
    return t;
}

static int pair_distance(Lpips *lp, Tape *tp, const char *pa, const char *pb, double *out) {
    Image a = {0}, b = {0};
    int rc = -1;
    if (png_read(pa, &a) || png_read(pb, &b)) goto done;
    if (a.h != b.h || a.w != b.w) {
        core_set_error("'%s' is %dx%d but '%s' is %dx%d", pa, a.w, a.h, pb, b.w, b.h);
        goto done;
    }
    tape_reset(tp);
    Tensor *ta, *tb;
    if (lp->net == LPIPS_NET_FEATNET) {
        ta = to_gray(tp, &a), tb = to_gray(tp, &b);
        if (a.h != FEATNET_SIZE || a.w != FEATNET_SIZE) {
            ta = op_resize(tp, ta, FEATNET_SIZE, FEATNET_SIZE, RESIZE_BICUBIC, 1);
            tb = op_resize(tp, tb, FEATNET_SIZE, FEATNET_SIZE, RESIZE_BICUBIC, 1);
        }
    } else {
        int min = lp->net == LPIPS_NET_ALEX ? ALEXNET_MIN_SIZE : 16;
        if (a.h < min || a.w < min) {
            core_set_error("'%s' is %dx%d; %s's five taps need at least %dx%d", pa, a.w, a.h,
                           lp->net == LPIPS_NET_ALEX ? "AlexNet" : "VGG16", min, min);
            goto done;
        }
        Image *ims[2] = {&a, &b};
        Tensor *ts[2];
        for (int k = 0; k < 2; k++) {
            Image *im = ims[k];
            if (im->c != ims[0]->c) {   // one gray, one RGB: compare both as RGB
                int shape[4] = {1, 3, im->h, im->w};
                ts[k] = tensor_new(tp, 4, shape, "rgb");
                for (int c = 0; c < 3; c++)
                    memcpy(ts[k]->data + (size_t)c * im->h * im->w, im->data, (size_t)im->h * im->w * sizeof(float));
            } else {
                int shape[4] = {1, im->c, im->h, im->w};
                ts[k] = tensor_from(tp, 4, shape, im->data, "image");
            }
        }
        ta = ts[0], tb = ts[1];
        if (ta->shape[1] != tb->shape[1]) {   // a was gray and b RGB: repeat a too
            Tensor *xs[3] = {ta, ta, ta};
            ta = op_concat(tp, xs, 3, 1);
        }
    }
    *out = lpips_distance(lp, tp, ta, tb)->data[0];
    rc = 0;
done:
    free(a.data), free(b.data);
    return rc;
}

static int is_dir(const char *p) {
    struct stat s;
    return stat(p, &s) == 0 && S_ISDIR(s.st_mode);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void usage(void) {
    fprintf(stderr, "usage: pmf_lpips [--net vgg|alex|featnet] [--weights FILE] [--lin FILE] [--threads T] A B\n"
                    "A and B: two PNG images, or two folders (pairs are the same-named .png files).\n"
                    "Prints the LPIPS distance per pair and the mean.\n"
                    "  --net vgg      LPIPS v0.1 on VGG16 (default); --weights: the trunk made by\n"
                    "                 /usr/bin/python3 tools/convert_weights.py vgg16 vgg16-397923af.pth FILE\n"
                    "                 (default perceptual/weights/vgg16_features.safetensors); --lin: lin weights\n"
                    "  --net alex     LPIPS v0.1 on AlexNet; --weights: the trunk made by\n"
                    "                 /usr/bin/python3 tools/convert_weights.py alexnet alexnet-owt-7be5be79.pth FILE\n"
                    "                 (default perceptual/weights/alexnet_features.safetensors); --lin: lin weights\n"
                    "  --net featnet  the Fashion-MNIST featnet (32x32 grayscale); --weights: its file\n");
}

int main(int argc, char **argv) {
    const char *net = "vgg", *weights = NULL, *lin = NULL, *paths[2] = {NULL, NULL};
    int threads = 0, np = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        }
        if (!strncmp(a, "--", 2)) {
            if (i + 1 >= argc) {
                fprintf(stderr, "pmf_lpips: %s needs a value\n", a);
                return 2;
            }
            if (!strcmp(a, "--net")) net = argv[++i];
            else if (!strcmp(a, "--weights")) weights = argv[++i];
            else if (!strcmp(a, "--lin")) lin = argv[++i];
            else if (!strcmp(a, "--threads")) {
                char *end;
                threads = (int)strtol(argv[++i], &end, 10);
                if (*end || threads < 0) {
                    fprintf(stderr, "pmf_lpips: --threads: '%s' is not a count\n", argv[i]);
                    return 2;
                }
            } else {
                fprintf(stderr, "pmf_lpips: unknown option '%s'\n", a);
                usage();
                return 2;
            }
        } else if (np < 2) {
            paths[np++] = a;
        } else {
            fprintf(stderr, "pmf_lpips: more than two paths given\n");
            return 2;
        }
    }
    if (np != 2) {
        usage();
        return 2;
    }
    core_set_threads(threads);
    Lpips lp;
    int rc;
    if (!strcmp(net, "vgg")) {
        char def[1024];
        if (!weights) {
            snprintf(def, sizeof def, "%s/vgg16_features.safetensors", perceptual_weights_dir());
            weights = def;
        }
        rc = lpips_vgg16_load(&lp, weights, lin);
    } else if (!strcmp(net, "alex")) {
        char def[1024];
        if (!weights) {
            snprintf(def, sizeof def, "%s/alexnet_features.safetensors", perceptual_weights_dir());
            weights = def;
        }
        rc = lpips_alex_load(&lp, weights, lin);
    } else if (!strcmp(net, "featnet")) {
        rc = lpips_featnet_load(&lp, weights);
    } else {
        fprintf(stderr, "pmf_lpips: --net must be vgg, alex or featnet, not '%s'\n", net);
        return 2;
    }
    if (rc != 0) {
        fprintf(stderr, "pmf_lpips: %s\n", core_last_error());
        return 1;
    }
    Arena arena;
    arena_init(&arena, 64 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    tape_set_recording(&tp, 0);
    int status = 0;
    int dir_a = is_dir(paths[0]), dir_b = is_dir(paths[1]);
    if (dir_a != dir_b) {
        fprintf(stderr, "pmf_lpips: give two files or two folders ('%s' is %s, '%s' is not)\n", paths[0],
                dir_a ? "a folder" : "a file", dir_a ? paths[1] : paths[0]);
        status = 2;
    } else if (!dir_a) {
        double d;
        if (pair_distance(&lp, &tp, paths[0], paths[1], &d) != 0) {
            fprintf(stderr, "pmf_lpips: %s\n", core_last_error());
            status = 1;
        } else {
            printf("%s\t%.9g\nmean\t%.9g\t(1 pair)\n", paths[0], d, d);
        }
    } else {
        DIR *dir = opendir(paths[0]);
        char **names = NULL;
        int n = 0, cap = 0;
        struct dirent *e;
        while (dir && (e = readdir(dir))) {
            size_t len = strlen(e->d_name);
            if (len < 5 || strcasecmp(e->d_name + len - 4, ".png")) continue;
            if (n == cap) names = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *names);
            names[n++] = strdup(e->d_name);
        }
        if (dir) closedir(dir);
        qsort(names, n, sizeof *names, cmp_str);
        double sum = 0;
        int pairs = 0, missing = 0;
        for (int i = 0; i < n; i++) {
            char pa[4096], pb[4096];
            snprintf(pa, sizeof pa, "%s/%s", paths[0], names[i]);
            snprintf(pb, sizeof pb, "%s/%s", paths[1], names[i]);
            struct stat s;
            if (stat(pb, &s) != 0) {
                missing++;
                continue;
            }
            double d;
            if (pair_distance(&lp, &tp, pa, pb, &d) != 0) {
                fprintf(stderr, "pmf_lpips: %s\n", core_last_error());
                status = 1;
                break;
            }
            printf("%s\t%.9g\n", names[i], d);
            fflush(stdout);
            sum += d, pairs++;
        }
        for (int i = 0; i < n; i++) free(names[i]);
        free(names);
        if (missing) fprintf(stderr, "pmf_lpips: %d image(s) of '%s' have no namesake in '%s'\n", missing, paths[0], paths[1]);
        if (status == 0 && pairs == 0) {
            fprintf(stderr, "pmf_lpips: no same-named .png pairs in '%s' and '%s'\n", paths[0], paths[1]);
            status = 1;
        } else if (status == 0) {
            printf("mean\t%.9g\t(%d pairs)\n", sum / pairs, pairs);
        }
    }
    tape_free(&tp);
    arena_free(&arena);
    lpips_free(&lp);
    return status;
}
