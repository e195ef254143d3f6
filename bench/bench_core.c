// bench/bench_core.c: speed of core's GEMM-backed ops against raw OpenBLAS sgemm on the same
// shapes, measured in the same run (medians of repeats; the machine is noisy), and the cost of
// forward-mode tangents relative to the forward alone for a transformer block.
// Not a test: it prints figures and never fails.
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

typedef void (*BenchFn)(void *ctx);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// Median seconds of `reps` timed calls after one warm-up call.
static double median_time(BenchFn fn, void *ctx, int reps) {
    double t[64];
    if (reps > 64) reps = 64;
    fn(ctx);
    for (int i = 0; i < reps; i++) {
        double t0 = core_now();
        fn(ctx);
        t[i] = core_now() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

static void fill(float *x, int64_t n, uint64_t seed) {
    Rng r;
    rng_init(&r, seed);
    rng_fill_normal(&r, x, n, 0.0f, 1.0f);
}

// ---------------------------------------------------------------------------------------------
// Raw sgemm and op_linear on (M, K) x (N, K)^T

typedef struct {
    int M, N, K;
    float *a, *b, *c;
    Tape *tp;
    Tensor *x, *w;
} GemmCtx;

static void raw_sgemm(void *p) {
    GemmCtx *g = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, g->M, g->N, g->K, 1.0f, g->a, g->K, g->b, g->K, 0.0f,
                g->c, g->N);
}

static void linear_op(void *p) {
    GemmCtx *g = p;
    // tape_reset frees every tensor record, so the inputs are wrapped anew each time (cheap)
    tape_reset(g->tp);
    int xs[2] = {g->M, g->K}, ws[2] = {g->N, g->K};
    op_linear(g->tp, tensor_wrap(g->tp, g->a, 2, xs, "x"), tensor_wrap(g->tp, g->b, 2, ws, "w"), NULL);
}

static void bench_linear(Tape *tp, int M, int K, int N) {
    GemmCtx g = {M, N, K, NULL, NULL, NULL, tp, NULL, NULL};
    g.a = malloc((size_t)M * K * 4), g.b = malloc((size_t)N * K * 4), g.c = malloc((size_t)M * N * 4);
    fill(g.a, (int64_t)M * K, 1), fill(g.b, (int64_t)N * K, 2);
    tape_set_recording(tp, 0);
    double flop = 2.0 * M * N * K;
    double t_raw = median_time(raw_sgemm, &g, 7);
    double t_op = median_time(linear_op, &g, 7);
    printf("  linear %5d x %4d -> %4d   op %6.1f GFLOP/s   sgemm %6.1f GFLOP/s   op/sgemm %.2f\n", M, K, N,
           flop / t_op * 1e-9, flop / t_raw * 1e-9, t_raw / t_op);
    free(g.a), free(g.b), free(g.c);
}

// ---------------------------------------------------------------------------------------------
// Attention: op_attention against the two raw GEMMs per head (S = Q K^T, O = P V) on the same sizes.

typedef struct {
    int B, T, NH, HS;
    float *q, *k, *v, *s, *o;
    Tape *tp;
    Tensor *tq, *tk, *tv;
} AttnCtx;

// The reference is the same GEMMs done the fastest plain way on this machine: heads in parallel,
// one single-threaded sgemm pair each (OpenBLAS's OpenMP build runs serially inside the loop).
static void raw_attention_gemms(void *p) {
    AttnCtx *a = p;
    int C = a->NH * a->HS;
#pragma omp parallel for schedule(dynamic)
    for (int bh = 0; bh < a->B * a->NH; bh++) {
        int b = bh / a->NH, h = bh % a->NH;
        float *s = a->s + (size_t)omp_get_thread_num() * a->T * a->T;
        const float *q = a->q + (size_t)b * a->T * C + h * a->HS, *k = a->k + (size_t)b * a->T * C + h * a->HS;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, a->T, a->T, a->HS, 1.0f, q, C, k, C, 0.0f, s, a->T);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, a->T, a->HS, a->T, 1.0f, s, a->T,
                    a->v + (size_t)b * a->T * C + h * a->HS, C, 0.0f, a->o + (size_t)b * a->T * C + h * a->HS, C);
    }
}

static void attention_op(void *p) {
    AttnCtx *a = p;
    tape_reset(a->tp);
    int shape[3] = {a->B, a->T, a->NH * a->HS};
    op_attention(a->tp, tensor_wrap(a->tp, a->q, 3, shape, "q"), tensor_wrap(a->tp, a->k, 3, shape, "k"),
                 tensor_wrap(a->tp, a->v, 3, shape, "v"), a->NH);
}

static void bench_attention(Tape *tp, int B, int T, int NH, int HS) {
    AttnCtx a = {B, T, NH, HS, NULL, NULL, NULL, NULL, NULL, tp, NULL, NULL, NULL};
    int64_t n = (int64_t)B * T * NH * HS;
    a.q = malloc(n * 4), a.k = malloc(n * 4), a.v = malloc(n * 4), a.o = malloc(n * 4);
    a.s = malloc((size_t)core_threads() * T * T * 4);
    fill(a.q, n, 3), fill(a.k, n, 4), fill(a.v, n, 5);
    tape_set_recording(tp, 0);
    double flop = 4.0 * B * NH * (double)T * T * HS;
    double t_raw = median_time(raw_attention_gemms, &a, 5);
    double t_op = median_time(attention_op, &a, 5);
    printf("  attention B%d T%d NH%d HS%d   op %6.1f GFLOP/s   its GEMMs alone %6.1f GFLOP/s   op/gemms %.2f\n", B,
           T, NH, HS, flop / t_op * 1e-9, flop / t_raw * 1e-9, t_raw / t_op);
    free(a.q), free(a.k), free(a.v), free(a.o), free(a.s);
}

// ---------------------------------------------------------------------------------------------
// VGG16's convolutions (3x3, pad 1): op_conv2d against the raw sgemm of the same im2col GEMM
// (Cout x (Cin*9) times (Cin*9) x (H*W), once per image, threaded sgemm, columns precomputed so
// the reference does no im2col at all). Forward alone, and forward + backward to the input (the
// weight frozen, as in VGG16/LPIPS), whose reference adds the (Cin*9) x (H*W) = w^T dy GEMM.

typedef struct {
    int N, Cin, Cout, H, W, KH, pad, groups, backward;
    float *x, *w, *cols, *y, *dy;
    Tape *tp;
} ConvCtx;

static void raw_conv_gemm(void *p) {
    ConvCtx *c = p;
    int K = c->Cin * 9, HW = c->H * c->W;
    for (int i = 0; i < c->N; i++) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->Cout, HW, K, 1.0f, c->w, K, c->cols, HW, 0.0f,
                    c->y + (size_t)i * c->Cout * HW, HW);
        if (c->backward)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, HW, c->Cout, 1.0f, c->w, K,
                        c->dy + (size_t)i * c->Cout * HW, HW, 0.0f, c->cols, HW);
    }
}

static void conv_op(void *p) {
    ConvCtx *c = p;
    tape_reset(c->tp);
    tape_set_recording(c->tp, c->backward);
    int xs[4] = {c->N, c->Cin, c->H, c->W}, ws[4] = {c->Cout, c->Cin / c->groups, c->KH, c->KH};
    Tensor *x = tensor_wrap(c->tp, c->x, 4, xs, "x");
    x->requires_grad = c->backward;
    Tensor *y = op_conv2d(c->tp, x, tensor_wrap(c->tp, c->w, 4, ws, "w"), NULL, 1, 1, c->pad, c->pad, c->groups);
    if (c->backward) tape_backward(c->tp, y, c->dy);
}

static void bench_conv(Tape *tp, const char *name, int N, int Cin, int Cout, int HW) {
    ConvCtx c = {N, Cin, Cout, HW, HW, 3, 1, 1, 0, NULL, NULL, NULL, NULL, NULL, tp};
    int64_t nx = (int64_t)N * Cin * HW * HW, nw = (int64_t)Cout * Cin * 9, ny = (int64_t)N * Cout * HW * HW;
    c.x = malloc(nx * 4), c.w = malloc(nw * 4), c.dy = malloc(ny * 4);
    c.cols = malloc((size_t)Cin * 9 * HW * HW * 4), c.y = malloc(ny * 4);
    fill(c.x, nx, 6), fill(c.w, nw, 7), fill(c.cols, (int64_t)Cin * 9 * HW * HW, 8), fill(c.dy, ny, 9);
    double flop = 2.0 * N * Cout * (double)Cin * 9 * HW * HW;
    double t_raw = median_time(raw_conv_gemm, &c, 5);
    double t_op = median_time(conv_op, &c, 5);
    c.backward = 1;
    double tb_raw = median_time(raw_conv_gemm, &c, 5);
    double tb_op = median_time(conv_op, &c, 5);
    printf("  %-8s N%d %3d->%3d @%-3d fwd: op %5.1f GFLOP/s, GEMM %5.1f, op/gemm %.2f   fwd+bwd(x): op %5.1f, GEMMs %5.1f, op/gemm %.2f\n",
           name, N, Cin, Cout, HW, flop / t_op * 1e-9, flop / t_raw * 1e-9, t_raw / t_op, 2 * flop / tb_op * 1e-9,
           2 * flop / tb_raw * 1e-9, tb_raw / tb_op);
    free(c.x), free(c.w), free(c.cols), free(c.y), free(c.dy);
}

// Depthwise KxK (ConvNeXt's 7x7 pad 3, groups = C): op_conv2d forward, and forward + backward to
// the input and the weight, in ms and GFLOP/s (2 flops per tap; backward counts twice).
static void bench_dwconv(Tape *tp, int N, int C, int HW, int K) {
    ConvCtx c = {N, C, C, HW, HW, K, K / 2, C, 0, NULL, NULL, NULL, NULL, NULL, tp};
    int64_t nx = (int64_t)N * C * HW * HW, nw = (int64_t)C * K * K;
    c.x = malloc(nx * 4), c.w = malloc(nw * 4), c.dy = malloc(nx * 4);
    fill(c.x, nx, 12), fill(c.w, nw, 13), fill(c.dy, nx, 14);
    double flop = 2.0 * nx * K * K;
    double t_f = median_time(conv_op, &c, 5);
    c.backward = 1;
    double t_fb = median_time(conv_op, &c, 5);
    printf("  dwconv%dx%d N%d C%-4d @%-3d forward %7.2f ms (%5.1f GFLOP/s)   fwd+bwd(x) %7.2f ms (%5.1f GFLOP/s)\n", K, K,
           N, C, HW, 1e3 * t_f, flop / t_f * 1e-9, 1e3 * t_fb, 3 * flop / t_fb * 1e-9);
    free(c.x), free(c.w), free(c.dy);
}

// ---------------------------------------------------------------------------------------------
// Transformer block (pMF's: RMSNorm, attention with q/k RMSNorm and 2-D RoPE, SwiGLU, gates):
// forward with tangents vs forward alone, and forward + backward.

typedef struct {
    int B, T, D, NH, prefix, grid, hidden;
    ParamStore ps;
    Tensor *n1, *wq, *wk, *wv, *wo, *qn, *kn, *n2, *w1, *w3, *w2, *ga, *gm;
    float *x, *tx;
    Tape *tp;
    int with_tangent, with_backward;
} BlockCtx;

static Tensor *decl(ParamStore *ps, const char *name, int a, int b) {
    int s[2] = {a, b};
    return params_declare(ps, name, b ? 2 : 1, s);
}

static Tensor *heads_rmsnorm(Tape *tp, Tensor *x, Tensor *w, int NH) {
    int s4[4] = {x->shape[0], x->shape[1], NH, x->shape[2] / NH};
    Tensor *y = op_rmsnorm(tp, op_reshape(tp, x, 4, s4), w, 1e-6f);
    return op_reshape(tp, y, 3, x->shape);
}

static Tensor *block_forward(BlockCtx *c, Tensor *x) {
    Tape *tp = c->tp;
    Tensor *n = op_rmsnorm(tp, x, c->n1, 1e-6f);
    Tensor *q = heads_rmsnorm(tp, op_linear(tp, n, c->wq, NULL), c->qn, c->NH);
    Tensor *k = heads_rmsnorm(tp, op_linear(tp, n, c->wk, NULL), c->kn, c->NH);
    Tensor *v = op_linear(tp, n, c->wv, NULL);
    q = op_rope2d(tp, q, c->NH, c->prefix, c->grid, c->grid, 10000.0f);
    k = op_rope2d(tp, k, c->NH, c->prefix, c->grid, c->grid, 10000.0f);
    Tensor *a = op_linear(tp, op_attention(tp, q, k, v, c->NH), c->wo, NULL);
    x = op_add(tp, x, op_mul(tp, a, c->ga));
    Tensor *m = op_rmsnorm(tp, x, c->n2, 1e-6f);
    Tensor *h = op_swiglu(tp, op_linear(tp, m, c->w1, NULL), op_linear(tp, m, c->w3, NULL));
    return op_add(tp, x, op_mul(tp, op_linear(tp, h, c->w2, NULL), c->gm));
}

static void block_run(void *p) {
    BlockCtx *c = p;
    tape_reset(c->tp);
    tape_set_recording(c->tp, c->with_backward);
    int s[3] = {c->B, c->T, c->D};
    Tensor *x = tensor_wrap(c->tp, c->x, 3, s, "x");
    if (c->with_tangent) x->tangent = c->tx;
    if (c->with_backward) x->requires_grad = 1;
    Tensor *y = block_forward(c, x);
    if (c->with_backward) tape_backward(c->tp, y, NULL);
}

static void bench_block(Tape *tp, int B, int grid, int D, int NH) {
    BlockCtx c;
    memset(&c, 0, sizeof c);
    c.B = B, c.prefix = 20, c.grid = grid, c.T = 20 + grid * grid, c.D = D, c.NH = NH, c.tp = tp;
    c.hidden = (D * 8 / 3 + 7) / 8 * 8;
    int HS = D / NH;
    params_init(&c.ps, 16);
    c.n1 = decl(&c.ps, "n1", D, 0), c.n2 = decl(&c.ps, "n2", D, 0);
    c.qn = decl(&c.ps, "qn", HS, 0), c.kn = decl(&c.ps, "kn", HS, 0);
    c.wq = decl(&c.ps, "wq", D, D), c.wk = decl(&c.ps, "wk", D, D), c.wv = decl(&c.ps, "wv", D, D);
    c.wo = decl(&c.ps, "wo", D, D);
    c.w1 = decl(&c.ps, "w1", c.hidden, D), c.w3 = decl(&c.ps, "w3", c.hidden, D), c.w2 = decl(&c.ps, "w2", D, c.hidden);
    c.ga = decl(&c.ps, "ga", D, 0), c.gm = decl(&c.ps, "gm", D, 0);
    params_finalize(&c.ps);
    fill(c.ps.data, c.ps.total, 9);
    for (int64_t i = 0; i < c.ps.total; i++) c.ps.data[i] *= 0.05f;
    int64_t nx = (int64_t)c.B * c.T * D;
    c.x = malloc(nx * 4), c.tx = malloc(nx * 4);
    fill(c.x, nx, 10), fill(c.tx, nx, 11);
    double t_f = median_time(block_run, &c, 5);
    c.with_tangent = 1;
    double t_ft = median_time(block_run, &c, 5);
    c.with_tangent = 0, c.with_backward = 1;
    double t_fb = median_time(block_run, &c, 5);
    printf("  block B%d T%d D%d NH%d: forward %.1f ms, forward+tangent %.1f ms (ratio %.2f), forward+backward %.1f ms (ratio %.2f)\n",
           B, c.T, D, NH, 1e3 * t_f, 1e3 * t_ft, t_ft / t_f, 1e3 * t_fb, t_fb / t_f);
    free(c.x), free(c.tx);
    params_free(&c.ps);
}

int main(int argc, char **argv) {
    core_prefer_passive_threads(argv);   // see core/core.h: spinning waits stall on a shared machine
    int threads = argc > 1 ? atoi(argv[1]) : 0;
    // optional second argument: run one section only (linear, attention, conv, block)
    const char *only = argc > 2 ? argv[2] : NULL;
#define SECTION(name) (!only || !strcmp(only, name))
    core_set_threads(threads);
    Arena arena;
    arena_init(&arena, 256 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    printf("bench_core: %d threads (medians; ratios are against work measured in this run)\n", core_threads());
    if (SECTION("linear")) {
        printf("GEMM-backed linear (4096 tokens):\n");
        int widths[3] = {256, 768, 1024};
        for (int i = 0; i < 3; i++) {
            bench_linear(&tp, 4096, widths[i], widths[i]);
            bench_linear(&tp, 4096, widths[i], 4 * widths[i]);
        }
    }
    if (SECTION("attention")) {
        printf("attention:\n");
        bench_attention(&tp, 8, 276, 12, 64);
        bench_attention(&tp, 64, 84, 4, 48);
    }
    if (SECTION("conv")) {
        printf("VGG16 convolutions at 224 (3x3, pad 1):\n");
        bench_conv(&tp, "conv1_1", 2, 3, 64, 224);
        bench_conv(&tp, "conv1_2", 2, 64, 64, 224);
        bench_conv(&tp, "conv2_2", 2, 128, 128, 112);
        bench_conv(&tp, "conv3_2", 8, 256, 256, 56);
        bench_conv(&tp, "conv4_2", 8, 512, 512, 28);
        bench_conv(&tp, "conv5_2", 8, 512, 512, 14);
        printf("depthwise convolutions (ConvNeXt 7x7 pad 3):\n");
        bench_dwconv(&tp, 8, 96, 56, 7);
        bench_dwconv(&tp, 8, 384, 14, 7);
        bench_dwconv(&tp, 8, 768, 7, 7);
    }
    if (SECTION("block")) {
        printf("transformer block, tangent overhead:\n");
        bench_block(&tp, 64, 8, 192, 4);
        bench_block(&tp, 4, 16, 768, 12);
    }
    tape_free(&tp);
    arena_free(&arena);
    return 0;
}
