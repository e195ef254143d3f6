// cli/pmf_sample.c: generate images from a pmf_train checkpoint or a converted official pMF model
// (tools/convert_weights.py pmf). Thin: flags become PmfSampleArgs, pmf_sample_run does the work.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmf/pmf.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: pmf_sample CHECKPOINT [options]   (CHECKPOINT: pmf_train's, or a converted official model)\n"
            "  --n N            images (default 100, or the rows of --noise / --labels)\n"
            "  --steps K        network evaluations per image (default: the checkpoint's sampling.num_steps,\n"
            "                   1 for pmf_train's runs: the 1-NFE generator)\n"
            "  --omega W        CFG scale (default: the checkpoint's sampling.omega; a converted model: the\n"
            "                   official evaluation setting, e.g. 7.5 for B/16)\n"
            "  --t-min A --t-max B   guidance interval (default: the checkpoint's sampling.t_min, t_max)\n"
            "  --classes 0,3,7  classes to cycle through (default: every class, balanced)\n"
            "  --ema K          use the checkpoint's EMA K (default 0: the first half-life listed in\n"
            "                   training.ema_val, as pmf_train's samples.png); -1 for the raw weights\n"
            "  --seed S         noise seed (default 0)\n"
            "  --batch B        images per forward pass (default 64; lowered to what memory holds)\n"
            "  --grid FILE.png  a PNG grid (default samples.png unless --png-dir or --h5 is given)\n"
            "  --cols C         grid columns (default 10)\n"
            "  --png-dir DIR    one PNG per image\n"
            "  --h5 FILE.h5     an HDF5 file: images (N, H, W, C) uint8 and labels (N) int32, for pmf_eval\n"
            "  --noise FILE.npy raw N(0, 1) noise, float32 (N, C, H, W); scaled by the model's noise scale\n"
            "  --labels FILE.npy class ids (N), integers (ImageNet ids for the official models)\n"
            "  --npy FILE.npy   the samples, float32 (N, C, H, W) in [-1, 1] before rounding\n");
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end || x < lo || x > hi) {
        fprintf(stderr, "pmf_sample: %s '%s': expected an integer in [%d, %d]\n", flag, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_float(const char *flag, const char *v, float *out) {
    char *end;
    *out = strtof(v, &end);
    if (*v == 0 || *end) {
        fprintf(stderr, "pmf_sample: %s '%s': expected a number\n", flag, v);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    core_prefer_passive_threads(argv);   // see core/core.h: spinning waits stall on a shared machine
    // n 0, steps 0 and NAN settings: from the files / the checkpoint's sampling section
    PmfSampleArgs a = {NULL, 0, 0, 64, 0, NAN, NAN, NAN, NULL, 0, 0, NULL, NULL, NULL, 10, NULL, NULL, NULL, NULL};
    int classes[1024], seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) return usage(stdout), 0;
        if (f[0] != '-') {
            a.checkpoint = f;
            continue;
        }
        if (!v) {
            fprintf(stderr, "pmf_sample: %s needs a value\n", f);
            return 2;
        }
        i++;
        if (!strcmp(f, "--n")) bad = parse_int(f, v, 1, 10000000, &a.n);
        else if (!strcmp(f, "--steps")) bad = parse_int(f, v, 1, 1000, &a.steps);
        else if (!strcmp(f, "--omega")) bad = parse_float(f, v, &a.omega);
        else if (!strcmp(f, "--t-min")) bad = parse_float(f, v, &a.t_min);
        else if (!strcmp(f, "--t-max")) bad = parse_float(f, v, &a.t_max);
        else if (!strcmp(f, "--ema")) bad = parse_int(f, v, -1, 3, &a.ema);
        else if (!strcmp(f, "--seed")) bad = parse_int(f, v, 0, 2147483647, &seed);
        else if (!strcmp(f, "--batch")) bad = parse_int(f, v, 1, 65536, &a.batch);
        else if (!strcmp(f, "--cols")) bad = parse_int(f, v, 1, 1000, &a.grid_cols);
        else if (!strcmp(f, "--grid")) a.grid = v;
        else if (!strcmp(f, "--png-dir")) a.png_dir = v;
        else if (!strcmp(f, "--h5")) a.h5 = v;
        else if (!strcmp(f, "--noise")) a.noise_npy = v;
        else if (!strcmp(f, "--labels")) a.labels_npy = v;
        else if (!strcmp(f, "--npy")) a.npy = v;
        else if (!strcmp(f, "--classes")) {
            char buf[4096], *save = NULL;
            snprintf(buf, sizeof buf, "%s", v);
            for (char *tok = strtok_r(buf, ",", &save); tok && !bad; tok = strtok_r(NULL, ",", &save)) {
                if (a.n_classes == 1024) bad = 1, fprintf(stderr, "pmf_sample: --classes: at most 1024\n");
                else bad = parse_int("--classes", tok, 0, 100000, &classes[a.n_classes++]);
            }
            a.classes = classes;
        } else {
            fprintf(stderr, "pmf_sample: unknown option '%s' (see --help)\n", f);
            return 2;
        }
        if (bad) return 2;
    }
    if (!a.checkpoint) {
        usage(stderr);
        return 2;
    }
    if (!a.grid && !a.png_dir && !a.h5 && !a.npy) a.grid = "samples.png";
    a.seed = (uint64_t)seed;
    PmfSampleArgs used;
    double seconds = 0;
    a.seconds = &seconds;
    if (pmf_sample_resolve(&a, &used) || pmf_sample_run(&used)) {
        fprintf(stderr, "pmf_sample: %s\n", core_last_error());
        return 1;
    }
    printf("pmf_sample: %d NFE, omega %g, interval [%g, %g], %s, %d images in %.2f s (%.3g img/s)\n", used.steps, used.omega,
           used.t_min, used.t_max, used.ema < 0 ? "raw weights" : used.ema == 0 ? "EMA 0" : "an EMA", used.n, seconds,
           used.n / (seconds > 0 ? seconds : 1e-9));
    if (a.grid) printf("pmf_sample: %d images -> %s\n", used.n, a.grid);
    if (a.png_dir) printf("pmf_sample: %d PNG files -> %s/\n", used.n, a.png_dir);
    if (a.h5) printf("pmf_sample: %d images -> %s\n", used.n, a.h5);
    if (a.npy) printf("pmf_sample: %d images (float32 NCHW) -> %s\n", used.n, a.npy);
    return 0;
}
