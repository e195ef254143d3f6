// bench/bench_perceptual.c: VGG16 features to relu5_3 (perceptual/vgg16.c on core ops) at 224 x 224,
// forward alone and forward + backward to the input, in images per second, next to PyTorch CPU
// (Debian's python3-torch, an inline torchvision-free VGG16, 1 and 2 threads, its best taken)
// measured in the same run. Hash weights (random; speed only). Not a test: it never fails.
//   bench_perceptual [--batch 8] [--size 224] [--reps 3] [--threads 0] [--no-torch]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "perceptual/perceptual.h"

static const char *torch_script =
    "import sys, time\n"
    "try:\n"
    "    import torch, torch.nn as nn\n"
    "except Exception as e:\n"
    "    print('SKIP', e); sys.exit(0)\n"
    "B, S, reps, threads = (int(a) for a in sys.argv[1:5])\n"
    "torch.set_num_threads(threads)\n"
    "cfg = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512]\n"
    "layers, cin = [], 3\n"
    "for v in cfg:\n"
    "    if v == 'M': layers.append(nn.MaxPool2d(2, 2))\n"
    "    else: layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU()]; cin = v\n"
    "net = nn.Sequential(*layers).eval()\n"
    "for p in net.parameters(): p.requires_grad_(False)\n"
    "x = torch.randn(B, 3, S, S)\n"
    "def fwd():\n"
    "    with torch.no_grad(): net(x)\n"
    "def fwdbwd():\n"
    "    xi = x.clone().requires_grad_(True)\n"
    "    net(xi).sum().backward()\n"
    "for name, fn in (('fwd', fwd), ('fwdbwd', fwdbwd)):\n"
    "    fn(); ts = []\n"
    "    for _ in range(reps):\n"
    "        t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)\n"
    "    ts.sort(); print(name, B / ts[len(ts) // 2], flush=True)\n";

// PyTorch's img/s for forward and forward + backward with `threads` threads; 0 if unavailable.
static int torch_rates(int B, int S, int reps, int threads, double *fwd, double *fwdbwd) {
    char path[] = "/tmp/pmf_bench_vgg_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    FILE *f = fdopen(fd, "w");
    fputs(torch_script, f);
    fclose(f);
    char cmd[512];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %d %d %d %d 2>&1", path, B, S, reps, threads);
    FILE *p = popen(cmd, "r");
    int got = 0;
    char line[512];
    while (p && fgets(line, sizeof line, p)) {
        double v;
        if (sscanf(line, "fwd %lf", &v) == 1) *fwd = v, got |= 1;
        else if (sscanf(line, "fwdbwd %lf", &v) == 1) *fwdbwd = v, got |= 2;
        else printf("  pytorch: %s", line);
    }
    if (p) pclose(p);
    unlink(path);
    return got == 3;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int B = 8, S = 224, reps = 3, threads = 0, torch = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) B = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--size")) S = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_perceptual [--batch 8] [--size 224] [--reps 3] [--threads 0] [--no-torch]\n");
            return 2;
        }
    }
    if (B < 1 || S < 16 || reps < 1 || reps > 32) {
        fprintf(stderr, "bench_perceptual: need batch >= 1, size >= 16, 1 <= reps <= 32\n");
        return 2;
    }
    core_set_threads(threads);
    Vgg16 v;
    vgg16_init(&v);
    vgg16_fill_hash(&v);
    Arena arena;
    arena_init(&arena, 256 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    int shape[4] = {B, 3, S, S};
    float *x = core_malloc((size_t)B * 3 * S * S * sizeof(float), "bench input");
    perceptual_hash_fill(x, (int64_t)B * 3 * S * S, 1000, 1.0f);
    printf("bench_perceptual: VGG16 features to relu5_3, batch %d at %dx%d, %d threads, median of %d\n", B, S, S,
           core_threads(), reps);
    double rate[2];
    for (int mode = 0; mode < 2; mode++) {   // 0: forward, 1: forward + backward to the input
        double t[33];
        for (int r = 0; r <= reps; r++) {    // r = 0 is the warm-up
            tape_reset(&tp);
            tape_set_recording(&tp, mode);
            double t0 = core_now();
            Tensor *xi = tensor_wrap(&tp, x, 4, shape, "x");
            xi->requires_grad = mode;
            Tensor *taps[5];
            vgg16_taps(&tp, &v, xi, taps);
            if (mode) tape_backward(&tp, taps[4], NULL);
            t[r] = core_now() - t0;
        }
        qsort(t + 1, (size_t)reps, sizeof t[0], cmp_double);
        rate[mode] = B / t[1 + reps / 2];
    }
    printf("  C (pmf core)   forward %6.2f img/s   forward+backward %6.2f img/s   arena peak %.0f MB\n", rate[0],
           rate[1], arena.peak / 1048576.0);
    if (torch) {
        double best_f = 0, best_fb = 0;
        int any = 0;
        for (int th = 1; th <= 2; th++) {
            double f = 0, fb = 0;
            if (!torch_rates(B, S, reps, th, &f, &fb)) break;
            any = 1;
            printf("  PyTorch %d thr   forward %6.2f img/s   forward+backward %6.2f img/s\n", th, f, fb);
            best_f = f > best_f ? f : best_f;
            best_fb = fb > best_fb ? fb : best_fb;
        }
        if (any)
            printf("  ratio C / best PyTorch: forward %.2f, forward+backward %.2f\n", rate[0] / best_f, rate[1] / best_fb);
        else
            printf("  PyTorch reference skipped (no /usr/bin/python3 with torch)\n");
    }
    free(x);
    tape_free(&tp);
    arena_free(&arena);
    vgg16_free(&v);
    return 0;
}
