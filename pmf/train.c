// pmf/train.c: the training program's body. One step reads top to bottom: batch, sample (t, r)
// and noise, forward with tangents and the loss (pmf_loss), backward, optimizer step, EMAs, log.
// Every random draw is a function of (seed, step), so a resumed run repeats an unbroken one.
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset/dataset.h"
#include "pmf/pmf.h"

// Independent Philox streams (keys) derived from the run's seed.
#define STREAM_DATA 0x64617461ull
#define STREAM_NOISE 0x6e6f6973ull
#define STREAM_SAMPLES 0x73616d70ull

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { stop_requested = sig; }

typedef struct {
    int n, C, S, classes;
    float *images;   // (n, C, S, S) in [-1, 1]
    int *labels;
} TrainData;

// Fashion-MNIST's 28 x 28 images centred on an S x S black canvas ([-1, 1], background -1).
static int load_fashion_mnist(TrainData *d, int S) {
    IdxImages im;
    IdxLabels lb;
    if (S < 28) {
        core_set_error("key 'dataset.image_size' = %d: Fashion-MNIST needs at least 28", S);
        return -1;
    }
    if (fashion_mnist_load(NULL, "train", &im, &lb)) return -1;
    d->n = im.n, d->C = 1, d->S = S, d->classes = 10;
    d->images = core_malloc((size_t)im.n * S * S * sizeof(float), "training images");
    d->labels = core_malloc((size_t)im.n * sizeof(int), "training labels");
    int off = (S - 28) / 2;
    for (int i = 0; i < im.n; i++) {
        float *dst = d->images + (size_t)i * S * S;
        for (int k = 0; k < S * S; k++) dst[k] = -1.0f;
        for (int y = 0; y < 28; y++)
            for (int x = 0; x < 28; x++) dst[(y + off) * S + x + off] = im.pixels[((size_t)i * 28 + y) * 28 + x] / 127.5f - 1.0f;
        d->labels[i] = lb.labels[i];
    }
    idx_free_images(&im);
    idx_free_labels(&lb);
    return 0;
}

// The epoch's order: a Fisher-Yates shuffle keyed on (seed, epoch).
static void epoch_order(int *order, int n, uint64_t seed, int64_t epoch) {
    Rng r;
    rng_init(&r, seed ^ STREAM_DATA ^ ((uint64_t)epoch * 0x9E3779B97F4A7C15ull));
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(rng_uniform(&r) * (i + 1));
        int t = order[i];
        order[i] = order[j], order[j] = t;
    }
}

static float learning_rate(const PmfTrainConfig *c, int64_t step, int64_t total, int64_t steps_per_epoch) {
    double warm = c->warmup_epochs * (double)steps_per_epoch;
    double lr = c->learning_rate;
    if (strcmp(c->lr_schedule, "const") && warm > 0 && step < warm) return (float)(lr * (step + 1) / warm);
    if (!strcmp(c->lr_schedule, "warmup_cosine")) {
        double p = (step - warm) / fmax(1.0, total - warm);
        return (float)(lr * 0.5 * (1 + cos(M_PI * fmin(1.0, p))));
    }
    return (float)lr;
}

// Names the first parameter whose gradient is not finite; NULL if all are.
static const char *nonfinite_grad(const ParamStore *ps, double *norm) {
    double s = 0;
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = &ps->tensors[i];
        const float *g = ps->grad + (t->data - ps->data);
        double ts = 0;
        for (int64_t k = 0; k < t->numel; k++) ts += (double)g[k] * g[k];
        if (!isfinite(ts)) return t->name;
        s += ts;
    }
    *norm = sqrt(s);
    return NULL;
}

// This rank's rows of the global batch's noise: rows rank, rank + world, ... (the rows of the
// data it takes), copied to arena memory. With one rank, the batch's noise itself.
static PmfStepNoise noise_rows(Tape *tp, const PmfStepNoise *all, int64_t numel, int rank, int world) {
    if (world == 1) return *all;
    int n = all->B / world;
    PmfStepNoise my = {0};
    my.B = n, my.e = tape_alloc(tp, (size_t)n * numel * sizeof(float));
    float **f[5] = {&my.t, &my.r, &my.t_min, &my.t_max, &my.omega};
    float *const src[5] = {all->t, all->r, all->t_min, all->t_max, all->omega};
    for (int k = 0; k < 5; k++) *f[k] = tape_alloc(tp, (size_t)n * sizeof(float));
    my.fm = tape_alloc(tp, (size_t)n);
    my.drop = tape_alloc(tp, (size_t)n);
    my.row = tape_alloc(tp, (size_t)n * sizeof(int64_t));
    my.step = all->step;
    for (int b = 0; b < n; b++) {
        int g = rank + b * world;
        memcpy(my.e + (size_t)b * numel, all->e + (size_t)g * numel, (size_t)numel * sizeof(float));
        for (int k = 0; k < 5; k++) (*f[k])[b] = src[k][g];
        my.fm[b] = all->fm[g], my.drop[b] = all->drop[g], my.row[b] = all->row[g];
    }
    return my;
}

// 1-NFE samples of every class from fixed noise (the same every time, so grids compare), with
// the parameters `params` swapped in (e.g. an EMA).
static int write_samples(const char *path, PmfModel *m, Tape *tp, const PmfTrainConfig *c, const float *params,
                         int per_class) {
    const PmfConfig *mc = &m->cfg;
    int classes = mc->num_classes, B = classes * per_class;
    int64_t numel = (int64_t)mc->channels * mc->img_size * mc->img_size;
    float *z = core_malloc((size_t)B * numel * sizeof(float), "sample noise");
    int *labels = core_malloc((size_t)B * sizeof(int), "sample labels");
    Rng r;
    rng_init(&r, c->seed ^ STREAM_SAMPLES);
    rng_fill_normal(&r, z, B * numel, 0.0f, mc->noise_scale);
    for (int i = 0; i < B; i++) labels[i] = i / per_class;   // one row per class
    float *saved = NULL;
    if (params) {
        saved = core_malloc((size_t)m->ps.total * sizeof(float), "parameter swap");
        memcpy(saved, m->ps.data, (size_t)m->ps.total * sizeof(float));
        memcpy(m->ps.data, params, (size_t)m->ps.total * sizeof(float));
    }
    tape_reset(tp);
    pmf_sample(tp, m, z, labels, B, c->num_steps, c->omega, c->t_min, c->t_max);
    if (saved) {
        memcpy(m->ps.data, saved, (size_t)m->ps.total * sizeof(float));
        free(saved);
    }
    int rc = pmf_png_grid(path, z, B, mc->channels, mc->img_size, mc->img_size, per_class);
    free(z), free(labels);
    return rc;
}

// A loss-curve plot through gnuplot from the run's metrics.tsv (skipped with a note if absent).
static void plot_losses(const char *out) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "command -v gnuplot >/dev/null && gnuplot -e \"set terminal pngcairo size 900,500 noenhanced; "
             "set output '%s/loss.png.tmp'; set title 'pMF training loss (per-element means of the raw sums)'; "
             "set xlabel 'step'; set ylabel 'loss'; set logscale y; set key top right; set grid; "
             "plot '%s/metrics.tsv' using 1:3 with lines title 'L_u (u-head, V vs v_g)', "
             "'' using 1:4 with lines title 'L_v (v-head, v vs v_g)'\" 2>/dev/null && mv '%s/loss.png.tmp' '%s/loss.png'",
             out, out, out, out);
    if (system(cmd) != 0) fprintf(stderr, "pmf_train: note: no loss plot (gnuplot not found or failed)\n");
}

// A shard folder must hold images of the model's geometry and no more classes than its table.
// Sets d->n to the images per epoch over all ranks (the stream reads them itself).
static int check_shards(const PmfTrainConfig *cfg, TrainData *d, int rank, int world) {
    DsStreamConfig sc = {cfg->data, cfg->batch_size / world, cfg->seed, 0, 0, rank, world, 1};
    DsStream *s = ds_stream_open(&sc, NULL);
    if (!s) return -1;
    int c, h, w;
    int64_t per_epoch;
    ds_stream_shape(s, &c, &h, &w, &per_epoch);
    ds_stream_close(s);
    if (c != cfg->model.channels || h != cfg->model.img_size || w != cfg->model.img_size) {
        core_set_error("key 'dataset.root' = '%s': shards hold %dx%dx%d images, the model expects %dx%dx%d "
                       "(set dataset.image_size, or prepare shards at that resolution)",
                       cfg->data, h, w, c, cfg->model.img_size, cfg->model.img_size, cfg->model.channels);
        return -1;
    }
    per_epoch *= world;   // the stream counts this rank's images; every rank gets as many
    d->n = (int)(per_epoch < 2147483647 ? per_epoch : 2147483647);
    d->C = c, d->S = h, d->classes = cfg->model.num_classes;
    return 0;
}

// mkdir -p: the output folder and any missing parents.
static int make_dirs(const char *path) {
    char buf[1024];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(buf, 0755);
            *p = '/';
        }
    mkdir(buf, 0755);
    return access(buf, W_OK);
}

// Data parallel ranks hold the same bits (the same summed gradient, the same step on each); this
// checks it, before every checkpoint, by a hash of parameters, optimizer state and EMAs. 0 with a
// message if they diverged. *hash (if not NULL) gets this rank's hash.
static int same_on_all_ranks(const PmfTrainState *s, int world, uint64_t *hash) {
    if (world == 1) return 1;
    uint64_t h = pmf_dist_state_hash(s);
    if (hash) *hash = h;
    if (pmf_dist_same_u64(h, "the parameter check")) return 1;
    fprintf(stderr, "\npmf_train: rank %d: after step %" PRId64 " the ranks' parameters or optimizer states differ; "
                    "not writing a checkpoint\n", pmf_dist_rank(), s->step);
    return 0;
}

static double rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

int pmf_train_run(PmfTrainConfig *cfg, int print_model_only) {
    PmfConfig *mc = &cfg->model;
    // Data parallel (pmf/dist.c): this rank's share of every global batch; rank 0 alone logs and
    // writes files. One rank without MPI.
    int rank = pmf_dist_rank(), world = pmf_dist_world(), lead = rank == 0;
    if (lead) {
        printf("pmf_train: model %s: %dx%dx%d images, patch %d (%d tokens), dim %d, %d heads, depth %d+%d (+%d v-head), %s-prediction\n",
               cfg->model_str, mc->img_size, mc->img_size, mc->channels, mc->patch,
               (mc->img_size / mc->patch) * (mc->img_size / mc->patch), mc->dim, mc->heads, mc->depth_shared,
               mc->depth_head, mc->depth_head, mc->pred == PMF_PRED_U ? "u" : "x");
        printf("pmf_train: %.3fM parameters for inference, %.3fM for training; %.2f GMACs per forward\n",
               pmf_param_count(mc, 0) / 1e6, pmf_param_count(mc, 1) / 1e6, pmf_forward_macs(mc) / 1e9);
    }
    if (print_model_only) return 0;
    // Data: the built-in Fashion-MNIST in memory, or a folder of HDF5 shards (pmf_prepare) streamed.
    TrainData data = {0};
    int builtin = !strcmp(cfg->data, "fashion-mnist");
    if (builtin && load_fashion_mnist(&data, mc->img_size)) {
        fprintf(stderr, "pmf_train: %s\n", core_last_error());
        return 1;
    }
    if (!builtin && check_shards(cfg, &data, rank, world)) {
        fprintf(stderr, "pmf_train: %s\n", core_last_error());
        return 1;
    }
    core_set_threads(cfg->threads);
    pmf_dist_set_timeout(cfg->mpi_timeout);
    if (lead && make_dirs(cfg->out)) {
        fprintf(stderr, "pmf_train: cannot create the output folder '%s'\n", cfg->out);
        return 1;
    }
    // B is the global batch: each of the `world` ranks takes BL = B / world rows of it, in
    // micro-batches of MB.
    if (cfg->batch_size % world) {
        fprintf(stderr, "pmf_train: key 'training.batch_size' = %d (the global batch) does not split evenly over %d ranks\n",
                cfg->batch_size, world);
        return 1;
    }
    int B = cfg->batch_size, BL = B / world, MB = cfg->micro_batch ? cfg->micro_batch : BL;
    if (MB > BL || BL % MB) {
        fprintf(stderr, "pmf_train: key 'training.micro_batch' = %d does not divide the per-rank batch %d (training.batch_size %d over %d ranks)\n",
                MB, BL, B, world);
        return 1;
    }
    int64_t steps_per_epoch = data.n / B;   // drop_last, as the released input pipeline
    if (steps_per_epoch < 1) {
        fprintf(stderr, "pmf_train: batch %d is larger than the %d training images\n", B, data.n);
        return 1;
    }
    int64_t total = cfg->steps > 0 ? cfg->steps : (int64_t)cfg->num_epochs * steps_per_epoch;

    // The frozen perceptual networks before the model: a missing weight file stops the run here,
    // with the converter command, before anything else is built.
    PmfObjective hooks = {0};
    PmfPerceptual *percep = NULL;
    if (strcmp(cfg->perceptual, "none") && !(percep = pmf_perceptual_open(cfg, &hooks))) {
        fprintf(stderr, "pmf_train: %s\n", core_last_error());
        free(data.images), free(data.labels);
        return 1;
    }

    PmfModel model;
    pmf_model_init(&model, mc, cfg->seed);
    Muon muon;
    AdamW adamw;
    int use_muon = !strcmp(cfg->optimizer, "muon");
    uint8_t *part = pmf_muon_partition(&model);
    if (use_muon) muon_init(&muon, &model.ps, part, cfg->learning_rate, 0.95f, cfg->adam_b1, cfg->adam_b2, 1e-8f);
    else adamw_init(&adamw, &model.ps, cfg->learning_rate, cfg->adam_b1, cfg->adam_b2, 1e-8f, cfg->weight_decay);
    free(part);
    PmfEma ema;
    pmf_ema_init(&ema, &model.ps, cfg->ema_val, cfg->n_ema);
    char *yaml = pmf_train_config_yaml(cfg);
    PmfTrainState state = {&model, use_muon ? &muon : NULL, use_muon ? NULL : &adamw, &ema, 0, cfg->seed, yaml, 0, 0};
    char path[1100], ckpt[1100];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", cfg->out);
    if (cfg->load_from[0]) {
        if (pmf_checkpoint_load(cfg->load_from, &state)) {
            fprintf(stderr, "pmf_train: cannot resume: %s\n", core_last_error());
            return 1;
        }
        if (lead) printf("pmf_train: resumed from %s at step %" PRId64 "\n", cfg->load_from, state.step);
    }
    DsStream *stream = NULL;
    int32_t *yb32 = NULL;
    if (!builtin) {
        // Every rank's stream hands out as many images per epoch, so rank 0's position (in the
        // checkpoint) is each rank's position in its own order.
        DsStreamConfig sc = {cfg->data, BL, cfg->seed, 0, 0, rank, world, 0};
        DsStreamPos pos = {state.data_epoch, state.data_index};
        stream = ds_stream_open(&sc, &pos);
        if (!stream) {
            fprintf(stderr, "pmf_train: %s\n", core_last_error());
            return 1;
        }
        yb32 = core_malloc((size_t)BL * sizeof(int32_t), "batch labels");
    }
    FILE *jl = NULL, *tsv = NULL;
    if (lead) {
        snprintf(path, sizeof path, "%s/config.yaml", cfg->out);
        FILE *cf = fopen(path, "w");
        if (cf) fputs(yaml, cf), fclose(cf);
        snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->out);
        jl = fopen(path, state.step ? "a" : "w");
        snprintf(path, sizeof path, "%s/metrics.tsv", cfg->out);
        tsv = fopen(path, state.step ? "a" : "w");
        if (!jl || !tsv) {
            fprintf(stderr, "pmf_train: cannot write metrics in '%s'\n", cfg->out);
            return 1;
        }
        if (!state.step) fprintf(tsv, "# step\tloss\tloss_u\tloss_v\tgrad_norm\tlr\n");
    }

    Arena arena, step_arena;
    arena_init(&arena, 64 << 20);
    arena_init(&step_arena, 8 << 20);
    Tape tp, stp;
    tape_init(&tp, &arena);
    tape_init(&stp, &step_arena);
    PmfObjective obj = cfg->objective;
    obj.perceptual = hooks.perceptual, obj.perceptual_ctx = hooks.perceptual_ctx;
    int64_t numel = (int64_t)mc->channels * mc->img_size * mc->img_size;
    int *order = core_malloc((size_t)data.n * sizeof(int), "epoch order");
    float *xb = core_malloc((size_t)BL * numel * sizeof(float), "batch");
    int *yb = core_malloc((size_t)BL * sizeof(int), "batch labels");
    int64_t order_epoch = -1;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    int tty = lead && isatty(fileno(stdout));
    if (lead)
        printf("pmf_train: %" PRId64 " steps of batch %d (micro-batch %d), %s, lr %g, %d threads -> %s\n", total, B, MB,
               cfg->optimizer, cfg->learning_rate, core_threads(), cfg->out);
    if (lead && world > 1)
        printf("pmf_train: %d ranks (MPI), %d images per rank per step, gradients all-reduced (%.1f MB), watchdog %g s\n",
               world, BL, model.ps.total * 4.0 / 1048576.0, pmf_dist_timeout());
    double t_start = core_now(), t_log = t_start;
    // Phase times, summed over every step but the run's first (which also allocates the arena).
    double sec_guid = 0, sec_jvp = 0, sec_back = 0, sec_opt = 0, sec_comm = 0;
    int64_t first_step = state.step, timed_steps = 0;
    int64_t step_log = state.step;
    int rc = 0, stop = 0;   // stop: a signal reached some rank (all ranks agree, after a step)
    while (state.step < total && !stop) {
        int64_t step = state.step;
        // Batch: this rank's rows rank, rank + world, ... of rows [i*B, (i+1)*B) of the epoch's
        // order (the stream deals its images to ranks the same way).
        if (stream) {
            if (ds_stream_next(stream, xb, yb32)) {
                fprintf(stderr, "\npmf_train: step %" PRId64 ": %s\n", step + 1, core_last_error());
                rc = 1;
                break;
            }
            for (int b = 0; b < BL; b++) {
                if (yb32[b] < 0 || yb32[b] >= mc->num_classes) {
                    fprintf(stderr, "\npmf_train: label %d in '%s' is outside the model's %d classes (model.num_classes)\n",
                            yb32[b], cfg->data, mc->num_classes);
                    rc = 1;
                    break;
                }
                yb[b] = yb32[b];
            }
            if (rc) break;
            DsStreamPos pos = ds_stream_tell(stream);
            state.data_epoch = pos.epoch, state.data_index = pos.index;
        } else {
            int64_t epoch = step / steps_per_epoch, first = (step % steps_per_epoch) * B;
            if (epoch != order_epoch) epoch_order(order, data.n, cfg->seed, epoch), order_epoch = epoch;
            for (int b = 0; b < BL; b++) {
                int i = order[first + rank + b * world];
                memcpy(xb + (size_t)b * numel, data.images + (size_t)i * numel, (size_t)numel * sizeof(float));
                yb[b] = data.labels[i];
            }
        }
        // Sample (t, r), conditions and noise for the whole global batch at once; the ranks take
        // their rows and the micro-batches slices of those, so N ranks of K micro-batches see
        // exactly what one batch of N K times the size sees.
        tape_reset(&stp);
        Rng noise;
        rng_init(&noise, cfg->seed ^ STREAM_NOISE);
        noise.offset = (uint64_t)step << 32;
        PmfStepNoise all;
        pmf_draw_noise(&stp, &noise, &obj, mc, B, &all);
        all.step = step;
        PmfStepNoise my = noise_rows(&stp, &all, numel, rank, world);
        // Forward with tangents, loss and backward per micro-batch; gradients accumulate.
        params_zero_grad(&model.ps);
        double loss = 0, lu = 0, lv = 0;
        for (int m0 = 0; m0 < BL; m0 += MB) {
            tape_reset(&tp);
            PmfStepNoise part_n = {MB, my.e + (size_t)m0 * numel, my.t + m0, my.r + m0, my.t_min + m0,
                                   my.t_max + m0, my.omega + m0, my.fm + m0, my.drop + m0, step, my.row + m0};
            PmfLoss L = pmf_loss(&tp, &model, &obj, xb + (size_t)m0 * numel, yb + m0, &part_n);
            float seed_grad = (float)MB / (float)B;   // the loss is a mean over the whole global batch
            double tb = core_now();
            tape_backward(&tp, L.loss, &seed_grad);
            if (step > first_step) sec_guid += L.seconds_guidance, sec_jvp += L.seconds_jvp, sec_back += core_now() - tb;
            loss += L.loss->data[0] * seed_grad;
            for (int i = 0; i < MB; i++) lu += L.L_u[i], lv += L.L_v[i];
        }
        // All-reduce: the sum over ranks of their shares is the global batch's gradient (and
        // loss); every rank then holds the same bits. A signal on any rank stops all of them
        // after this step.
        double tc = core_now(), sums[4] = {loss, lu, lv, stop_requested != 0};
        pmf_dist_sum_f32(model.ps.grad, model.ps.total, "the gradient all-reduce");
        pmf_dist_sum_f64(sums, 4, "the loss all-reduce");
        loss = sums[0], lu = sums[1], lv = sums[2], stop = sums[3] > 0;
        if (step > first_step) sec_comm += core_now() - tc;
        double gnorm = 0;
        const char *bad = !isfinite(loss) ? "the loss" : nonfinite_grad(&model.ps, &gnorm);
        if (bad) {
            fprintf(stderr, "\npmf_train: step %" PRId64 ": non-finite value in %s%s; stopping, the last checkpoint (%s) is untouched\n",
                    step + 1, strcmp(bad, "the loss") ? "the gradient of " : "", bad, ckpt);
            rc = 1;
            break;
        }
        // Optimizer step and EMAs.
        float lr = learning_rate(cfg, step, total, steps_per_epoch);
        double to = core_now();
        if (use_muon) muon.lr = lr, muon_step(&muon, &model.ps);
        else adamw.lr = lr, adamw_step(&adamw, &model.ps);
        if (step > first_step) sec_opt += core_now() - to, timed_steps++;
        state.step = step + 1;
        pmf_ema_update(&ema, &model.ps, state.step, B);
        // Log.
        lu /= (double)B * numel, lv /= (double)B * numel;
        if (lead) {
            fprintf(jl, "{\"step\": %" PRId64 ", \"loss\": %.9g, \"loss_u\": %.9g, \"loss_v\": %.9g, \"grad_norm\": %.9g, \"lr\": %.9g}\n",
                    state.step, loss, lu, lv, gnorm, lr);
            fprintf(tsv, "%" PRId64 "\t%.9g\t%.9g\t%.9g\t%.9g\t%.9g\n", state.step, loss, lu, lv, gnorm, lr);
        }
        if (lead && (state.step == 1 || state.step % cfg->log_per_step == 0 || state.step == total)) {
            fflush(jl), fflush(tsv);
            double now = core_now(), ips = (state.step - step_log) * (double)B / fmax(now - t_log, 1e-9);
            double eta = (total - state.step) * (double)B / fmax(ips, 1e-9);
            printf("%sstep %" PRId64 "/%" PRId64 "  loss_u %.7g  loss_v %.7g  |g| %.3g  %.1f img/s  ETA %.0fs%s", tty ? "\r" : "",
                   state.step, total, lu, lv, gnorm, ips, eta, tty ? "   " : "\n");
            fflush(stdout);
            if (state.step == 1)
                printf("%spmf_train: memory: arena peak %.1f MB, parameters+grads+optimizer+EMAs %.1f MB, max RSS %.0f MB\n",
                       tty ? "\n" : "", (arena.peak + step_arena.peak) / 1048576.0,
                       model.ps.total * 4.0 * (4 + ema.n) / 1048576.0, rss_mb());
            t_log = now, step_log = state.step;
        }
        if (cfg->checkpoint_per_step && state.step % cfg->checkpoint_per_step == 0 && state.step < total) {
            if (!same_on_all_ranks(&state, world, NULL)) {
                rc = 1;
                break;
            }
            if (lead && pmf_checkpoint_save(ckpt, &state)) fprintf(stderr, "\npmf_train: checkpoint failed: %s\n", core_last_error());
        }
        if (lead && cfg->sample_per_step && state.step % cfg->sample_per_step == 0) {
            snprintf(path, sizeof path, "%s/samples_%06" PRId64 ".png", cfg->out, state.step);
            if (write_samples(path, &model, &tp, cfg, ema.params[0], 10)) fprintf(stderr, "\npmf_train: %s\n", core_last_error());
        }
    }
    if (tty) printf("\n");
    uint64_t hash = 0;
    if (rc == 0 && !same_on_all_ranks(&state, world, &hash)) rc = 1;
    if (rc == 0 && lead) {
        if (world > 1)
            printf("pmf_train: parameters, optimizer state and EMAs identical on all %d ranks (hash %016" PRIx64 ")\n", world, hash);
        if (stop) printf("pmf_train: stopped by a signal at step %" PRId64 "; saving a checkpoint to resume from\n", state.step);
        if (pmf_checkpoint_save(ckpt, &state)) {
            fprintf(stderr, "pmf_train: checkpoint failed: %s\n", core_last_error());
            rc = 1;
        } else printf("pmf_train: checkpoint %s (step %" PRId64 ")\n", ckpt, state.step);
        snprintf(path, sizeof path, "%s/samples.png", cfg->out);
        if (write_samples(path, &model, &tp, cfg, ema.params[0], 10) == 0) printf("pmf_train: samples (EMA %g kimg) %s\n", ema.halflife_kimg[0], path);
        snprintf(path, sizeof path, "%s/samples_raw.png", cfg->out);
        write_samples(path, &model, &tp, cfg, NULL, 10);
        fclose(jl), fclose(tsv);
        jl = tsv = NULL;
        plot_losses(cfg->out);
        printf("pmf_train: %.1f s, %.1f img/s overall\n", core_now() - t_start,
               (state.step - first_step) * (double)B / fmax(core_now() - t_start, 1e-9));
        if (timed_steps > 0) {
            double k = 1e3 / timed_steps, tot = sec_guid + sec_jvp + sec_back + sec_opt + sec_comm;
            printf("pmf_train: mean step (batch %d, %" PRId64 " steps): guidance forward %.0f ms, forward with tangents + loss %.0f ms, "
                   "backward %.0f ms, optimizer %.0f ms, all-reduce %.0f ms; %.1f img/s in these phases; arena peak %.0f MB\n",
                   B, timed_steps, sec_guid * k, sec_jvp * k, sec_back * k, sec_opt * k, sec_comm * k,
                   B * timed_steps / fmax(tot, 1e-9), (arena.peak + step_arena.peak) / 1048576.0);
        }
    }
    if (jl) fclose(jl);
    if (tsv) fclose(tsv);
    if (stream) ds_stream_close(stream);
    pmf_perceptual_close(percep);
    free(yb32);
    free(order), free(xb), free(yb), free(yaml), free(data.images), free(data.labels);
    tape_free(&tp), tape_free(&stp);
    arena_free(&arena), arena_free(&step_arena);
    pmf_ema_free(&ema);
    if (use_muon) muon_free(&muon);
    else adamw_free(&adamw);
    pmf_model_free(&model);
    return rc;
}
