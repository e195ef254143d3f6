// bench/bench_step.c: the pMF training step as pmf_train runs it (pmf_step_gradient, then Adam),
// on random images, timed per step; and the sgemm ceiling of this machine at the same thread
// count, measured in the same run. Prints one parseable line per measurement:
//   step model XS/4 batch 64 threads 2 img_per_s 170.1 ms 376.2 gflop_per_img 0.6000 gflop_per_s 102.1
//   sgemm threads 2 gflop_per_s 230.5 (2048 x 2048 x 2048 and 8192 x 192 x 192, the better)
// bench/step_vs_torch.sh alternates it with tools/reference/pmf_ref.py and prints the table.
//   bench_step [--model XS/4] [--batch 64] [--threads 2] [--reps 5] [--lanes 0] [--micro-batch 0] [--chunk 0] [--no-sgemm] [--gemm-profile] [--muon]
// --lanes: batch-parallel lanes of pmf/step.c (0: one per thread, as pmf_train; 1: threads inside ops).
// The step's work is counted from pmf_forward_macs (the code's own count) as the block
// evaluations: guidance 3 x (trunk + v-head), JVP 2 x (trunk + u-head), v-head once, backward
// 2 x (trunk + both heads), i.e. 7 F + 3 H multiply-adds per image, F = one forward of the u-path,
// H = the head's part of F (its blocks and final layer). Not a test: it never fails on timing.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/gemm_profile.h"
#include "bench_common.h"
#include "pmf/pmf.h"

// Seconds of CPU time used by the whole process (all threads): on a shared machine the CPU time
// of a 1-thread run moves far less than its wall time, which includes waiting for a core.
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// Multiply-adds of one step per image (see the top of the file).
static double step_macs(const PmfConfig *c) {
    double F = pmf_forward_macs(c);
    PmfConfig no_head = *c;
    no_head.depth_head = 0;
    double final = (double)(c->img_size / c->patch) * (c->img_size / c->patch) * c->dim * c->patch * c->patch * c->channels;
    double H = F - pmf_forward_macs(&no_head) + final;
    return 7 * F + 3 * H;
}

// --gemm-profile: each lane thread's share of the step's wall time spent inside cblas_sgemm, the
// FLOPs the GEMMs really did (against the count above) and their speed, by size class. What is
// not GEMM time is the engine's own passes (norms, SwiGLU, softmax, residuals, the loss, Adam).
static void print_gemm_profile(const GemmProfile *g, const double *t, int reps, int batch, double gflop_img, int lanes) {
    double wall = 0, flop = 0, sec = 0;
    for (int i = 0; i < reps; i++) wall += t[i];
    printf("gemm_profile steps %d lanes %d:", reps, lanes);
    for (int p = 0; p < lanes && p < GEMM_PROFILE_THREADS; p++) {
        printf(" thread %d %.1f%% of the step in GEMMs at %.1f GFLOP/s;", p, 100 * g->thread[p].seconds / wall,
               g->thread[p].seconds > 0 ? g->thread[p].flop / g->thread[p].seconds * 1e-9 : 0);
        flop += g->thread[p].flop, sec += g->thread[p].seconds;
    }
    printf(" gemm gflop_per_img %.4f (count %.4f), %.1f GFLOP/s per thread inside them\n", flop / reps / batch * 1e-9,
           gflop_img, sec > 0 ? flop / sec * 1e-9 : 0);
    const char *names[3] = {"under 2 MFLOP", "2-20 MFLOP", "20+ MFLOP"};
    for (int c = 0; c < 3; c++) {
        GemmTally s = {0};
        for (int p = 0; p < GEMM_PROFILE_THREADS; p++)
            s.seconds += g->size_class[p][c].seconds, s.flop += g->size_class[p][c].flop, s.calls += g->size_class[p][c].calls;
        printf("gemm_profile   %-13s calls/step %7.0f  %5.1f%% of GEMM time  %5.1f%% of GEMM flops  %.1f GFLOP/s\n", names[c],
               (double)s.calls / reps, sec > 0 ? 100 * s.seconds / sec : 0, flop > 0 ? 100 * s.flop / flop : 0,
               s.seconds > 0 ? s.flop / s.seconds * 1e-9 : 0);
    }
}

int main(int argc, char **argv) {
    core_prefer_passive_threads(argv);
    const char *model = "XS/4";
    int batch = 64, threads = 0, reps = 5, sgemm = 1, lanes = 0, micro = 0, chunk = 0, gemm_prof = 0, use_muon = 0;
    for (int i = 1; i < argc; i++) {
        if (i + 1 < argc && !strcmp(argv[i], "--model")) model = argv[++i];
        else if (i + 1 < argc && !strcmp(argv[i], "--batch")) batch = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--threads")) threads = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--reps")) reps = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--lanes")) lanes = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--micro-batch")) micro = atoi(argv[++i]);
        else if (i + 1 < argc && !strcmp(argv[i], "--chunk")) chunk = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-sgemm")) sgemm = 0;
        else if (!strcmp(argv[i], "--gemm-profile")) gemm_prof = 1;
        else if (!strcmp(argv[i], "--muon")) use_muon = 1;
        else {
            fprintf(stderr, "usage: bench_step [--model XS/4] [--batch 64] [--threads N] [--reps 5] [--lanes 0] [--micro-batch 0] [--chunk 0] [--no-sgemm] [--gemm-profile] [--muon]\n");
            return 2;
        }
    }
    if (batch < 1 || reps < 1 || reps > 100) {
        fprintf(stderr, "bench_step: need batch >= 1 and 1 <= reps <= 100\n");
        return 2;
    }
    core_set_threads(threads);
    PmfConfig c;
    if (pmf_preset(model, &c)) {
        fprintf(stderr, "bench_step: %s\n", core_last_error());
        return 2;
    }
    c.with_v_head = 1;
    PmfModel m;
    pmf_model_init(&m, &c, 0);
    // Non-zero gates and final layers, as after some training (at init the heads output zeros).
    Rng r;
    rng_init(&r, 5);
    for (int i = 0; i < m.ps.n; i++) {
        Tensor *t = &m.ps.tensors[i];
        if (strstr(t->name, "_scale") || strstr(t->name, "_final.linear"))
            rng_fill_normal(&r, t->data, t->numel, 0.0f, 0.05f);
    }
    // AdamW as pmf_ref.py does, or (--muon) the default run's Muon on the matrices.
    AdamW opt;
    Muon muon;
    if (use_muon) {
        uint8_t *part = pmf_muon_partition(&m);
        muon_init(&muon, &m.ps, part, 0.004f, 0.95f, 0.9f, 0.95f, 1e-8f);
        free(part);
    } else adamw_init(&opt, &m.ps, 1e-4f, 0.9f, 0.95f, 1e-8f, 0.0f);
    PmfObjective o;
    pmf_objective_default(&o);
    int64_t numel = (int64_t)c.channels * c.img_size * c.img_size;
    float *x = core_malloc((size_t)batch * numel * sizeof(float), "images");
    int *y = core_malloc((size_t)batch * sizeof(int), "labels");
    rng_fill_uniform(&r, x, (int64_t)batch * numel, -1.0f, 1.0f);
    for (int i = 0; i < batch; i++) y[i] = i % c.num_classes;
    Arena na;
    arena_init(&na, 1 << 20);
    Tape ntp;
    tape_init(&ntp, &na);
    PmfStepper *s = pmf_stepper_new(micro, lanes);
    pmf_stepper_set_chunk_rows(s, chunk);
    double t[101], cpu[101], phase[3] = {0, 0, 0}, opt_sec = 0;
    for (int i = 0; i <= reps; i++) {   // step 0 warms up (arena, BLAS buffers)
        if (i == 1 && gemm_prof) gemm_profile_start();
        tape_reset(&ntp);
        Rng nr;
        rng_init(&nr, 7);
        nr.offset = (uint64_t)i << 32;
        PmfStepNoise n;
        pmf_draw_noise(&ntp, &nr, &o, &c, batch, &n);
        double t0 = core_now(), c0 = cpu_now();
        PmfStepStats st = pmf_step_gradient(s, &m, &o, x, y, &n, batch);
        double t_opt = core_now();
        if (use_muon) muon_step(&muon, &m.ps);
        else adamw_step(&opt, &m.ps);
        if (i) opt_sec += (core_now() - t_opt) / reps;
        if (i) {
            t[i - 1] = core_now() - t0;
            cpu[i - 1] = cpu_now() - c0;
            phase[0] += st.seconds_guidance / reps, phase[1] += st.seconds_jvp / reps, phase[2] += st.seconds_backward / reps;
        }
    }
    GemmProfile gp = gemm_prof ? gemm_profile_stop() : (GemmProfile){0};
    double sec = bench_median(t, reps), cpu_sec = bench_median(cpu, reps), gflop = 2 * step_macs(&c) * 1e-9;
    printf("step model %s batch %d threads %d lanes %d img_per_s %.2f ms %.1f gflop_per_img %.4f gflop_per_s %.1f "
           "cpu_ms %.1f (median of %d steps; mean guidance %.0f ms, jvp+loss %.0f ms, backward %.0f ms, %s %.1f ms; arena peak %.0f MB)\n",
           model, batch, core_threads(), pmf_stepper_lanes(s, batch), batch / sec, sec * 1e3, gflop, gflop * batch / sec, cpu_sec * 1e3, reps, phase[0] * 1e3,
           phase[1] * 1e3, phase[2] * 1e3, use_muon ? "muon" : "adamw", opt_sec * 1e3, pmf_stepper_peak_bytes(s) / 1048576.0);
    if (gemm_prof) print_gemm_profile(&gp, t, reps, batch, gflop, pmf_stepper_lanes(s, batch));
    if (sgemm) printf("sgemm threads %d gflop_per_s %.1f\n", core_threads(), bench_sgemm_ceiling());
    fflush(stdout);
    pmf_stepper_free(s);
    tape_free(&ntp);
    arena_free(&na);
    if (use_muon) muon_free(&muon);
    else adamw_free(&opt);
    pmf_model_free(&m);
    free(x), free(y);
    return 0;
}
