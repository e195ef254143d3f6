// bench/bench_eval.c: InceptionV3 (pytorch-fid's FID network, eval/inception.c on core ops) forward
// at 299 x 299 in images per second, next to PyTorch CPU (Debian's python3-torch, an inline plain
// torch FID-Inception with BatchNorm unfolded as pytorch-fid runs it) measured in the same run, as a
// ratio, and against the sgemm ceiling measured in the same process (GFLOP from the layer table:
// 2 x multiply-adds of the 94 convolutions and fc, 11.4 GFLOP per image). With --rounds R the C
// and PyTorch measurements alternate R times and the medians are compared, so a drift of the
// machine's speed hits both alike. Also the Frechet distance at 2048-d. Hash weights (random;
// speed only). Not a test. Prints parseable lines:
//   inception batch 16 threads 2 img_per_s 18.20 gflop_per_img 11.42 gflop_per_s 207.9
//   torch batch 16 threads 2 img_per_s 15.50
//   sgemm threads 2 gflop_per_s 230.5
//   bench_eval [--batch 16] [--reps 2] [--threads 0] [--rounds 1] [--no-torch] [--no-frechet] [--no-sgemm]
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_common.h"
#include "core/core.h"
#include "eval/eval.h"

static const char *torch_script =
    "import sys, time\n"
    "try:\n"
    "    import torch, torch.nn as nn, torch.nn.functional as F\n"
    "except Exception as e:\n"
    "    print('SKIP', e); sys.exit(0)\n"
    "N, reps, threads = (int(a) for a in sys.argv[1:4])\n"
    "if threads > 0: torch.set_num_threads(threads)\n"
    "class C(nn.Module):\n"
    "    def __init__(s, i, o, k, st=1, p=0):\n"
    "        super().__init__(); s.conv = nn.Conv2d(i, o, k, st, p, bias=False); s.bn = nn.BatchNorm2d(o, eps=0.001)\n"
    "    def forward(s, x): return F.relu(s.bn(s.conv(x)))\n"
    "def avg(x): return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)\n"
    "class A(nn.Module):\n"
    "    def __init__(s, i, pf):\n"
    "        super().__init__(); s.b1 = C(i, 64, 1); s.b5 = nn.Sequential(C(i, 48, 1), C(48, 64, 5, p=2))\n"
    "        s.b3 = nn.Sequential(C(i, 64, 1), C(64, 96, 3, p=1), C(96, 96, 3, p=1)); s.bp = C(i, pf, 1)\n"
    "    def forward(s, x): return torch.cat([s.b1(x), s.b5(x), s.b3(x), s.bp(avg(x))], 1)\n"
    "class B(nn.Module):\n"
    "    def __init__(s, i):\n"
    "        super().__init__(); s.b3 = C(i, 384, 3, 2); s.bd = nn.Sequential(C(i, 64, 1), C(64, 96, 3, p=1), C(96, 96, 3, 2))\n"
    "    def forward(s, x): return torch.cat([s.b3(x), s.bd(x), F.max_pool2d(x, 3, 2)], 1)\n"
    "class Cb(nn.Module):\n"
    "    def __init__(s, i, c):\n"
    "        super().__init__(); s.b1 = C(i, 192, 1)\n"
    "        s.b7 = nn.Sequential(C(i, c, 1), C(c, c, (1, 7), p=(0, 3)), C(c, 192, (7, 1), p=(3, 0)))\n"
    "        s.bd = nn.Sequential(C(i, c, 1), C(c, c, (7, 1), p=(3, 0)), C(c, c, (1, 7), p=(0, 3)), C(c, c, (7, 1), p=(3, 0)), C(c, 192, (1, 7), p=(0, 3)))\n"
    "        s.bp = C(i, 192, 1)\n"
    "    def forward(s, x): return torch.cat([s.b1(x), s.b7(x), s.bd(x), s.bp(avg(x))], 1)\n"
    "class D(nn.Module):\n"
    "    def __init__(s, i):\n"
    "        super().__init__(); s.b3 = nn.Sequential(C(i, 192, 1), C(192, 320, 3, 2))\n"
    "        s.b7 = nn.Sequential(C(i, 192, 1), C(192, 192, (1, 7), p=(0, 3)), C(192, 192, (7, 1), p=(3, 0)), C(192, 192, 3, 2))\n"
    "    def forward(s, x): return torch.cat([s.b3(x), s.b7(x), F.max_pool2d(x, 3, 2)], 1)\n"
    "class E(nn.Module):\n"
    "    def __init__(s, i, mx):\n"
    "        super().__init__(); s.mx = mx; s.b1 = C(i, 320, 1); s.t = C(i, 384, 1); s.ta = C(384, 384, (1, 3), p=(0, 1)); s.tb = C(384, 384, (3, 1), p=(1, 0))\n"
    "        s.u = nn.Sequential(C(i, 448, 1), C(448, 384, 3, p=1)); s.ua = C(384, 384, (1, 3), p=(0, 1)); s.ub = C(384, 384, (3, 1), p=(1, 0)); s.bp = C(i, 192, 1)\n"
    "    def forward(s, x):\n"
    "        t = s.t(x); u = s.u(x); p = F.max_pool2d(x, 3, 1, 1) if s.mx else avg(x)\n"
    "        return torch.cat([s.b1(x), s.ta(t), s.tb(t), s.ua(u), s.ub(u), s.bp(p)], 1)\n"
    "net = nn.Sequential(C(3, 32, 3, 2), C(32, 32, 3), C(32, 64, 3, p=1), nn.MaxPool2d(3, 2), C(64, 80, 1), C(80, 192, 3),\n"
    "    nn.MaxPool2d(3, 2), A(192, 32), A(256, 64), A(288, 64), B(288), Cb(768, 128), Cb(768, 160), Cb(768, 160), Cb(768, 192),\n"
    "    D(768), E(1280, False), E(2048, True), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1008)).eval()\n"
    "x = torch.rand(N, 3, 299, 299) * 2 - 1\n"
    "with torch.no_grad():\n"
    "    net(x)\n"
    "    best = 1e9\n"
    "    for _ in range(reps):\n"
    "        t = time.perf_counter(); net(x); best = min(best, time.perf_counter() - t)\n"
    "print('RESULT', N / best, torch.get_num_threads(), torch.__version__)\n";

// PyTorch's images per second, or -1 (skipped, message printed).
static double torch_rate(int B, int reps, int threads) {
    char path[] = "/tmp/pmf_bench_eval_XXXXXX.py";
    int fd = mkstemps(path, 3);
    if (fd < 0) return -1;
    if (write(fd, torch_script, strlen(torch_script)) != (ssize_t)strlen(torch_script)) {
        close(fd);
        unlink(path);
        return -1;
    }
    close(fd);
    char cmd[512], line[512] = "";
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %d %d %d 2>&1", path, B, reps, threads);
    FILE *p = popen(cmd, "r");
    double rate = -1;
    if (p) {
        while (fgets(line, sizeof line, p)) {
            int th;
            char ver[64];
            if (sscanf(line, "RESULT %lf %d %63s", &rate, &th, ver) == 3)
                printf("torch batch %d threads %d img_per_s %.2f (PyTorch %s CPU)\n", B, th, rate, ver);
            else if (!strncmp(line, "SKIP", 4)) printf("  PyTorch reference skipped (%s)", line + 5), rate = -2;
        }
        pclose(p);
        if (rate == -1) printf("  PyTorch reference failed (its script printed no result; last line: %s)", line);
    } else {
        printf("  PyTorch reference skipped (no /usr/bin/python3)\n");
    }
    unlink(path);
    return rate;
}

// Input height and width of conv i (the network's geometry at 299 x 299, block by block).
static int conv_input_size(int i) {
    static const int first[] = {0, 1, 2, 3, 4, 5, 26, 30, 70, 76, 94};
    static const int size[] = {299, 149, 147, 73, 73, 35, 35, 17, 17, 8};
    for (int k = 0; k < 10; k++)
        if (i >= first[k] && i < first[k + 1]) return size[k];
    return 0;
}

// GFLOP of one image's forward pass: 2 x multiply-adds of the convolutions and fc.
static double inception_gflop(void) {
    double macs = (double)INCEPTION_FEATURE_DIM * INCEPTION_N_LOGITS;
    for (int i = 0; i < INCEPTION_N_CONV; i++) {
        const InceptionConv *c = inception_conv(i);
        int in = conv_input_size(i), oh = (in + 2 * c->ph - c->kh) / c->sh + 1, ow = (in + 2 * c->pw - c->kw) / c->sw + 1;
        macs += (double)c->cout * c->cin * c->kh * c->kw * oh * ow;
    }
    return 2 * macs * 1e-9;
}

// Seconds of CPU time used by the whole process (all threads): under load, a 1-thread run's CPU
// time moves far less than its wall time.
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Best wall seconds of `reps` forward passes of B images (after one warm-up pass); *cpu: the
// least CPU seconds of one pass.
static double c_seconds(Inception *net, Tape *tp, int B, int reps, double *cpu) {
    int shape[4] = {B, 3, INCEPTION_SIZE, INCEPTION_SIZE};
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {   // the first pass warms the arena
        tape_reset(tp);
        Tensor *x = tensor_new(tp, 4, shape, "x");
        inception_hash_fill(x->data, x->numel, 5000, 1.0f);
        Tensor *pool3, *logits;
        double t0 = core_now(), c0 = cpu_now();
        inception_forward(tp, net, x, &pool3, &logits);
        double dt = core_now() - t0, dc = cpu_now() - c0;
        if (r > 0 && dt < best) best = dt;
        if (r == 1 || (r > 1 && dc < *cpu)) *cpu = dc;
    }
    return best;
}

int main(int argc, char **argv) {
    int B = 16, reps = 2, threads = 0, no_torch = 0, rounds = 1, frechet = 1, sgemm = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--batch") && i + 1 < argc) B = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-torch")) no_torch = 1;
        else if (!strcmp(argv[i], "--no-frechet")) frechet = 0;
        else if (!strcmp(argv[i], "--no-sgemm")) sgemm = 0;
        else {
            fprintf(stderr, "usage: bench_eval [--batch 16] [--reps 2] [--threads 0] [--rounds 1] [--no-torch] "
                            "[--no-frechet] [--no-sgemm]\n");
            return 2;
        }
    }
    if (B < 1 || reps < 1 || rounds < 1 || rounds > 50) {
        fprintf(stderr, "bench_eval: need batch >= 1, reps >= 1 and 1 <= rounds <= 50\n");
        return 2;
    }
    if (threads > 0) core_set_threads(threads);
    double gflop = inception_gflop();
    printf("bench_eval: InceptionV3 (FID) forward, batch %d at 299 x 299, %d threads, best of %d, %d rounds, "
           "%.2f GFLOP per image\n", B, core_threads(), reps, rounds, gflop);
    Inception net;
    inception_init(&net);
    inception_fill_hash(&net);
    Arena arena;
    arena_init(&arena, 64 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    tape_set_recording(&tp, 0);
    double c[50], t[50];
    int nt = 0;
    for (int r = 0; r < rounds; r++) {
        double cpu = 0;
        c[r] = B / c_seconds(&net, &tp, B, reps, &cpu);
        printf("inception batch %d threads %d img_per_s %.2f gflop_per_img %.3f gflop_per_s %.1f cpu_ms_per_img %.1f "
               "(arena peak %.0f MB)\n", B, core_threads(), c[r], gflop, c[r] * gflop, cpu / B * 1e3, arena.peak / 1e6);
        fflush(stdout);
        if (!no_torch) {
            double v = torch_rate(B, reps, core_threads());
            if (v > 0) t[nt++] = v;
            else no_torch = 1;
        }
    }
    double cm = bench_median(c, rounds);
    printf("  C (eval/inception.c): %.2f img/s, %.1f GFLOP/s (median of %d rounds)\n", cm, cm * gflop, rounds);
    if (nt) {
        double tm = bench_median(t, nt);
        printf("  PyTorch: %.2f img/s (median of %d rounds)\n  ratio C / PyTorch: %.2f\n", tm, nt, cm / tm);
    }
    if (sgemm) {
        double g = bench_sgemm_ceiling();
        printf("sgemm threads %d gflop_per_s %.1f\n  C at %.0f%% of the sgemm ceiling\n", core_threads(), g, 100 * cm * gflop / g);
    }
    if (frechet) {   // the Frechet distance at 2048-d (two dsyevd + three dgemm)
        EvalStats a, b;
        eval_stats_alloc(&a, INCEPTION_FEATURE_DIM), eval_stats_alloc(&b, INCEPTION_FEATURE_DIM);
        int D = INCEPTION_FEATURE_DIM;
        for (int i = 0; i < D; i++)
            for (int j = 0; j < D; j++) {
                double v = (i == j ? 1.0 : 0.0) + 0.5 / (1.0 + abs(i - j));
                a.sigma[i * D + j] = v, b.sigma[i * D + j] = v * (1.0 + 0.1 * (i == j));
            }
        EvalFrechet fr;
        double t0 = core_now();
        if (eval_frechet(&a, &b, &fr) == 0)
            printf("  Frechet distance at %d-d: %.2f s (value %.6g)\n", D, core_now() - t0, fr.distance);
        eval_stats_free(&a), eval_stats_free(&b);
    }
    tape_free(&tp);
    arena_free(&arena);
    inception_free(&net);
    return 0;
}
