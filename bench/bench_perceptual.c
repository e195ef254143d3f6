// bench/bench_perceptual.c: VGG16 features to relu5_3 (perceptual/vgg16.c on core ops) and the
// ConvNeXt-V2-Base pooled feature (perceptual/convnext.c) at 224 x 224, forward alone and forward +
// backward to the input, in images per second, next to PyTorch CPU (Debian's python3-torch, inline
// torchvision/transformers-free networks, 1 and 2 threads, its best taken) measured in the same run.
// Hash weights (random; speed only). Not a test: it never fails.
//   bench_perceptual [--batch 8] [--convnext-batch 4] [--size 224] [--reps 3] [--threads 0]
//                    [--only vgg|convnext] [--no-torch]
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
    "x = torch.randn(B, 3, S, S)\n";   // + torch_timing_tail

// ConvNeXt-V2-Base as HF's modeling_convnextv2.py computes it (pooled, layer-normed feature).
static const char *torch_convnext_script =
    "import sys, time\n"
    "try:\n"
    "    import torch, torch.nn as nn, torch.nn.functional as F\n"
    "except Exception as e:\n"
    "    print('SKIP', e); sys.exit(0)\n"
    "B, S, reps, threads = (int(a) for a in sys.argv[1:5])\n"
    "torch.set_num_threads(threads)\n"
    "class LNCF(nn.Module):\n"
    "    def __init__(s, c): super().__init__(); s.ln = nn.LayerNorm(c, eps=1e-6)\n"
    "    def forward(s, x): return s.ln(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)\n"
    "class GRN(nn.Module):\n"
    "    def __init__(s, d): super().__init__(); s.g = nn.Parameter(torch.zeros(1, 1, 1, d)); s.b = nn.Parameter(torch.zeros(1, 1, 1, d))\n"
    "    def forward(s, x):\n"
    "        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True); nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)\n"
    "        return s.g * (x * nx) + s.b + x\n"
    "class Block(nn.Module):\n"
    "    def __init__(s, d):\n"
    "        super().__init__(); s.dw = nn.Conv2d(d, d, 7, padding=3, groups=d); s.ln = nn.LayerNorm(d, eps=1e-6)\n"
    "        s.p1 = nn.Linear(d, 4 * d); s.grn = GRN(4 * d); s.p2 = nn.Linear(4 * d, d)\n"
    "    def forward(s, x):\n"
    "        h = s.dw(x).permute(0, 2, 3, 1)\n"
    "        return x + s.p2(s.grn(F.gelu(s.p1(s.ln(h))))).permute(0, 3, 1, 2)\n"
    "depths, dims = [3, 3, 27, 3], [128, 256, 512, 1024]\n"
    "layers = [nn.Conv2d(3, dims[0], 4, stride=4), LNCF(dims[0])]\n"
    "for i in range(4):\n"
    "    if i: layers += [LNCF(dims[i - 1]), nn.Conv2d(dims[i - 1], dims[i], 2, stride=2)]\n"
    "    layers += [Block(dims[i]) for _ in range(depths[i])]\n"
    "trunk, head = nn.Sequential(*layers).eval(), nn.LayerNorm(dims[3], eps=1e-6)\n"
    "for p in list(trunk.parameters()) + list(head.parameters()): p.requires_grad_(False)\n"
    "net = lambda x: head(trunk(x).mean([-2, -1]))\n"
    "x = torch.rand(B, 3, S, S) * 2 - 1\n";   // + torch_timing_tail

// The timing every PyTorch script ends with: median img/s of `net` on `x`, forward and forward +
// backward to the input of sum(output).
static const char *torch_timing_tail =
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
static int torch_rates(const char *script, int B, int S, int reps, int threads, double *fwd, double *fwdbwd) {
    char path[] = "/tmp/pmf_bench_vgg_XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return 0;
    FILE *f = fdopen(fd, "w");
    fputs(script, f);
    fputs(torch_timing_tail, f);
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

// Median img/s of forward (mode 0) and forward + backward to the input of sum(output) (mode 1).
typedef Tensor *(*NetFn)(Tape *tp, const void *net, Tensor *x);

static void c_rates(NetFn fn, const void *net, int B, int S, int reps, double *rate, double *peak_mb) {
    Arena arena;
    arena_init(&arena, 256 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    int shape[4] = {B, 3, S, S};
    float *x = core_malloc((size_t)B * 3 * S * S * sizeof(float), "bench input");
    perceptual_hash_fill(x, (int64_t)B * 3 * S * S, 1000, 1.0f);
    for (int mode = 0; mode < 2; mode++) {
        double t[33];
        for (int r = 0; r <= reps; r++) {    // r = 0 is the warm-up
            tape_reset(&tp);
            tape_set_recording(&tp, mode);
            double t0 = core_now();
            Tensor *xi = tensor_wrap(&tp, x, 4, shape, "x");
            xi->requires_grad = mode;
            Tensor *out = fn(&tp, net, xi);
            if (mode) tape_backward(&tp, op_sum(&tp, out, AXES_ALL, 0), NULL);
            t[r] = core_now() - t0;
        }
        qsort(t + 1, (size_t)reps, sizeof t[0], cmp_double);
        rate[mode] = B / t[1 + reps / 2];
    }
    *peak_mb = arena.peak / 1048576.0;
    free(x);
    tape_free(&tp);
    arena_free(&arena);
}

static Tensor *vgg_fn(Tape *tp, const void *net, Tensor *x) {
    Tensor *taps[5];
    vgg16_taps(tp, net, x, taps);
    return taps[4];
}

static Tensor *convnext_fn(Tape *tp, const void *net, Tensor *x) { return convnext_features(tp, net, x); }

static void torch_compare(const char *script, int B, int S, int reps, const double *rate) {
    double best_f = 0, best_fb = 0;
    int any = 0;
    for (int th = 1; th <= 2; th++) {
        double f = 0, fb = 0;
        if (!torch_rates(script, B, S, reps, th, &f, &fb)) break;
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

int main(int argc, char **argv) {
    core_prefer_passive_threads(argv);   // see core/core.h: spinning waits stall on a shared machine
    int B = 8, BC = 4, S = 224, reps = 3, threads = 0, torch = 1, do_vgg = 1, do_cnx = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--no-torch")) torch = 0;
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) B = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--convnext-batch")) BC = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--size")) S = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--only")) {
            const char *w = argv[++i];
            do_vgg = !strcmp(w, "vgg"), do_cnx = !strcmp(w, "convnext");
            if (!do_vgg && !do_cnx) argc = 0;   // usage below
        } else {
            argc = 0;
            break;
        }
    }
    if (argc == 0) {
        fprintf(stderr, "usage: bench_perceptual [--batch 8] [--convnext-batch 4] [--size 224] [--reps 3] [--threads 0] "
                        "[--only vgg|convnext] [--no-torch]\n");
        return 2;
    }
    if (B < 1 || BC < 1 || S < 32 || reps < 1 || reps > 32) {
        fprintf(stderr, "bench_perceptual: need batches >= 1, size >= 32, 1 <= reps <= 32\n");
        return 2;
    }
    core_set_threads(threads);
    double rate[2], peak;
    if (do_vgg) {
        Vgg16 v;
        vgg16_init(&v);
        vgg16_fill_hash(&v);
        printf("bench_perceptual: VGG16 features to relu5_3, batch %d at %dx%d, %d threads, median of %d\n", B, S, S,
               core_threads(), reps);
        c_rates(vgg_fn, &v, B, S, reps, rate, &peak);
        printf("  C (pmf core)   forward %6.2f img/s   forward+backward %6.2f img/s   arena peak %.0f MB\n", rate[0],
               rate[1], peak);
        vgg16_free(&v);
        if (torch) torch_compare(torch_script, B, S, reps, rate);
    }
    if (do_cnx) {
        ConvNext net;
        convnext_init(&net, NULL, NULL);
        convnext_fill_hash(&net);
        printf("bench_perceptual: ConvNeXt-V2-Base pooled feature, batch %d at %dx%d, %d threads, median of %d\n", BC, S,
               S, core_threads(), reps);
        c_rates(convnext_fn, &net, BC, S, reps, rate, &peak);
        printf("  C (pmf core)   forward %6.2f img/s   forward+backward %6.2f img/s   arena peak %.0f MB\n", rate[0],
               rate[1], peak);
        convnext_free(&net);
        if (torch) torch_compare(torch_convnext_script, BC, S, reps, rate);
    }
    return 0;
}
