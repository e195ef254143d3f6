// pmf/train.c: a training run as a few named steps (llm.c's loop, SQLite's open / step / close):
//   pmf_run_open     config -> data, perceptual networks, model, optimizer, EMAs, resume, memory
//                    plan, outputs (each stage its own function; any failure frees what was opened)
//   pmf_run_step     batch, sample (t, r) and noise, forward with tangents and the loss, backward,
//                    all-reduce, optimizer step, EMAs
//   pmf_run_log      log, periodic samples and checkpoints
//   pmf_run_finish   final checkpoint, sample grids, loss plot, timing summary
//   pmf_run_close    frees everything, whatever stage the run reached
// Every random draw is a function of (seed, step), so a resumed run repeats an unbroken one.
// Test hook: PMF_TRAIN_FAULT=<stage> makes that stage of pmf_run_open (or "step", "finish") fail.
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pmf/train_internal.h"

// Independent Philox streams (keys) derived from the run's seed.
#define STREAM_NOISE 0x6e6f6973ull
#define STREAM_SAMPLES 0x73616d70ull
#define STREAM_DRY_RUN 0x64727972ull
#define GRID_CLASSES 10   // sample grids: at most 10 classes x 10 images, whatever the data
#define GRID_PER_CLASS 10

static volatile sig_atomic_t stop_requested = 0;
static void on_signal(int sig) { stop_requested = sig; }

struct PmfRun {
    PmfTrainConfig *cfg;
    const PmfConfig *mc;
    int rank, world, lead, tty;
    int B, BL, MB;                   // global batch, this rank's rows, micro-batch
    int lanes;                       // batch-parallel lanes of the step (pmf/step.c; 0 = one per thread)
    int64_t numel, steps_per_epoch, total;
    PmfTrainData data;
    PmfPerceptual *percep;
    PmfObjective obj;
    PmfModel model;
    Muon muon;
    AdamW adamw;
    PmfEma ema;
    int has_model, has_opt, has_ema, use_muon;
    char *yaml;
    PmfTrainState state;
    PmfMemoryPlan plan;
    PmfStepper *stepper;             // the step's tapes (pmf/step.c)
    Arena arena, step_arena;         // the sample grids' activations; the step's noise
    Tape tp, stp;
    int has_arenas;
    float *xb;                       // this rank's batch
    int *yb;
    FILE *jl, *tsv;
    char ckpt[1100];
    int stop;                        // a signal reached some rank (all ranks agree, after a step)
    // The last step's numbers, for the log.
    double loss, lu, lv, gnorm;
    float lr;
    // Phase times, summed over every step but the run's first (which also allocates the arena).
    double t_start, t_log, sec_guid, sec_jvp, sec_back, sec_opt, sec_comm;
    int64_t first_step, step_log, timed_steps;
};

static int fault(const char *stage) {
    const char *f = getenv("PMF_TRAIN_FAULT");
    if (!f || strcmp(f, stage)) return 0;
    core_set_error("injected failure at stage '%s' (PMF_TRAIN_FAULT)", stage);
    return 1;
}

// The official schedules (utils/lr_utils.py on optax): `step` counts the updates already made, so
// the first update of a warm-up gets 0. warmup_const: linear 0 -> lr over warm = warmup_epochs x
// steps_per_epoch steps, then lr. warmup_cosine: optax.warmup_cosine_decay_schedule with the
// official decay_steps = max(total - warm, 1), which counts the warm-up again: the cosine runs over
// max(total - 2 warm, 1) steps and the schedule then stays at 0 (lr_min_factor 0).
float pmf_learning_rate(const PmfTrainConfig *c, int64_t step, int64_t total, int64_t steps_per_epoch) {
    double warm = floor(c->warmup_epochs * (double)steps_per_epoch), lr = c->learning_rate;
    if (!strcmp(c->lr_schedule, "const")) return (float)lr;
    if (warm > 0 && step < warm) return (float)(lr * step / warm);
    if (!strcmp(c->lr_schedule, "warmup_cosine")) {
        double decay = fmax(fmax(total - warm, 1.0) - warm, 1.0);
        return (float)(lr * 0.5 * (1 + cos(M_PI * fmin(step - warm, decay) / decay)));
    }
    return (float)lr;
}

void pmf_train_print_model(const PmfTrainConfig *cfg) {
    const PmfConfig *mc = &cfg->model;
    printf("pmf_train: model %s: %dx%dx%d images, patch %d (%d tokens), dim %d, %d heads, depth %d+%d (+%d v-head), %s-prediction, noise scale %g\n",
           cfg->model_str, mc->img_size, mc->img_size, mc->channels, mc->patch,
           (mc->img_size / mc->patch) * (mc->img_size / mc->patch), mc->dim, mc->heads, mc->depth_shared,
           mc->depth_head, mc->depth_head, mc->pred == PMF_PRED_U ? "u" : "x", mc->noise_scale);
    printf("pmf_train: %.3fM parameters for inference, %.3fM for training; %.2f GMACs per forward\n",
           pmf_param_count(mc, 0) / 1e6, pmf_param_count(mc, 1) / 1e6, pmf_forward_macs(mc) / 1e9);
}

// ---------------------------------------------------------------------------------------------
// Open, stage by stage. Each returns 0, or -1 with a message; pmf_run_close frees what they made.

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

// B is the global batch: each of the `world` ranks takes BL = B / world rows of it, in
// micro-batches of MB (the memory plan may lower MB).
static int open_data(PmfRun *r) {
    PmfTrainConfig *cfg = r->cfg;
    if (fault("data") || pmf_train_data_open(&r->data, cfg, r->rank, r->world)) return -1;
    if (cfg->batch_size % r->world) {
        core_set_error("key 'training.batch_size' = %d (the global batch) does not split evenly over %d ranks",
                       cfg->batch_size, r->world);
        return -1;
    }
    r->B = cfg->batch_size, r->BL = r->B / r->world, r->MB = cfg->micro_batch ? cfg->micro_batch : r->BL;
    if (r->MB > r->BL || r->BL % r->MB) {
        core_set_error("key 'training.micro_batch' = %d does not divide the per-rank batch %d (training.batch_size %d over %d ranks)",
                       r->MB, r->BL, r->B, r->world);
        return -1;
    }
    r->steps_per_epoch = r->data.n / r->B;   // drop_last, as the released input pipeline
    if (r->steps_per_epoch < 1) {
        core_set_error("batch %d is larger than the %d training images", r->B, r->data.n);
        return -1;
    }
    r->total = cfg->steps > 0 ? cfg->steps : (int64_t)cfg->num_epochs * r->steps_per_epoch;
    r->numel = (int64_t)r->mc->channels * r->mc->img_size * r->mc->img_size;
    return 0;
}

// The frozen perceptual networks before the model: a missing weight file stops the run here, with
// the converter command, before anything large is built.
static int open_perceptual(PmfRun *r) {
    r->obj = r->cfg->objective;
    if (fault("perceptual")) return -1;
    if (strcmp(r->cfg->perceptual, "none") && !(r->percep = pmf_perceptual_open(r->cfg, &r->obj))) return -1;
    return 0;
}

static int open_model(PmfRun *r) {
    PmfTrainConfig *cfg = r->cfg;
    if (fault("model")) return -1;
    pmf_model_init(&r->model, r->mc, cfg->seed);
    r->has_model = 1;
    r->use_muon = !strcmp(cfg->optimizer, "muon");
    uint8_t *part = pmf_muon_partition(&r->model);
    if (r->use_muon) muon_init(&r->muon, &r->model.ps, part, cfg->learning_rate, 0.95f, cfg->adam_b1, cfg->adam_b2, 1e-8f);
    else adamw_init(&r->adamw, &r->model.ps, cfg->learning_rate, cfg->adam_b1, cfg->adam_b2, 1e-8f, cfg->weight_decay);
    free(part);
    r->has_opt = 1;
    pmf_ema_init(&r->ema, &r->model.ps, cfg->ema_val, cfg->n_ema);
    r->has_ema = 1;
    r->yaml = pmf_train_config_yaml(cfg);
    r->state = (PmfTrainState){&r->model, r->use_muon ? &r->muon : NULL, r->use_muon ? NULL : &r->adamw, &r->ema, 0,
                               cfg->seed, r->yaml, 0, 0};
    return 0;
}

static int open_resume(PmfRun *r) {
    if (fault("resume")) return -1;
    if (r->cfg->load_from[0]) {
        if (pmf_checkpoint_load(r->cfg->load_from, &r->state)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "cannot resume: %s", core_last_error());
            core_set_error("%s", msg);
            return -1;
        }
        if (r->lead) printf("pmf_train: resumed from %s at step %" PRId64 "\n", r->cfg->load_from, r->state.step);
    }
    if (fault("stream")) return -1;
    return pmf_train_data_start(&r->data, r->cfg, r->BL, (DsStreamPos){r->state.data_epoch, r->state.data_index});
}

// The arena bytes one micro-batch of `rows` rows needs: a whole step (guidance pass, JVP forward,
// loss with every perceptual term, backward) on a fresh arena, every row below the perceptual
// threshold so that no network is skipped. Parameters, optimizer and EMAs are untouched; the
// gradient it leaves is zeroed by the first real step.
static int64_t dry_run_bytes(PmfRun *r, int rows) {
    Arena a;
    arena_init(&a, 16 << 20);
    Tape tp;
    tape_init(&tp, &a);
    Rng rng;
    rng_init(&rng, STREAM_DRY_RUN);
    PmfStepNoise n;
    pmf_draw_noise(&tp, &rng, &r->obj, r->mc, rows, &n);
    for (int i = 0; i < rows; i++) n.t[i] = 0.5f * r->cfg->perceptual_max_t, n.r[i] = n.fm[i] ? n.t[i] : 0.5f * n.t[i];
    float *x = tape_alloc(&tp, (size_t)rows * r->numel * sizeof(float));
    int *y = tape_alloc(&tp, (size_t)rows * sizeof(int));
    memset(x, 0, (size_t)rows * r->numel * sizeof(float));
    memset(y, 0, (size_t)rows * sizeof(int));
    PmfLoss L = pmf_loss(&tp, &r->model, &r->obj, x, y, &n);
    tape_backward(&tp, L.loss, NULL);
    int64_t bytes = (int64_t)a.peak;
    tape_free(&tp);
    arena_free(&a);
    params_zero_grad(&r->model.ps);
    return bytes;
}

// Predicts the peak from two measured dry runs (micro-batch 1 and 2: arena = intercept + per_row mb)
// plus what the step adds outside the arena, and lowers the micro-batch until it fits in the memory
// this process may use (cgroup limit or MemAvailable; PMF_MEMORY_AVAILABLE states one).
static int open_memory_plan(PmfRun *r) {
    if (fault("memory")) return -1;
    PmfMemoryPlan *p = &r->plan;
    p->resident = pmf_memory_resident();
    int64_t m1 = dry_run_bytes(r, 1), m2 = r->BL >= 2 ? dry_run_bytes(r, 2) : 2 * m1;
    int64_t per_row = m2 > m1 ? m2 - m1 : m1, intercept = m1 > per_row ? m1 - per_row : 0;
    // The arena's chunks hold a little more than its peak use: 10% and one 64 MB chunk of slack.
    p->per_row = per_row + per_row / 10;
    p->intercept = intercept + intercept / 10 + ((int64_t)64 << 20);
    // The step's lanes (pmf/step.c, one per thread) split the rows but each has its own arena (an
    // intercept each) and all but the first their own parameter gradients.
    int lanes = core_threads() < r->BL ? core_threads() : r->BL;
    if (lanes < 1) lanes = 1;
    p->intercept *= lanes;
    // Outside the arena: gradients and optimizer moments (allocated zeroed, so not yet resident),
    // the lanes' gradients, the step's noise for the global batch, the batch, the grids' noise,
    // and a margin.
    int64_t params = r->model.ps.total * (int64_t)sizeof(float);
    p->other = params * (3 + lanes - 1) + 3 * (int64_t)r->B * r->numel * 4 + (int64_t)r->BL * r->numel * 4 +
               (int64_t)GRID_CLASSES * GRID_PER_CLASS * r->numel * 4 + ((int64_t)256 << 20);
    p->available = pmf_memory_available();
    int wanted = r->MB;
    if (p->available < 0) {   // nothing to compare with (no /proc): keep what was asked
        p->micro_batch = wanted;
        return 0;
    }
    int64_t budget = p->available - p->other;
    double gb = 1.0 / (1 << 30);
    // Without micro-batching each lane runs a few rows at a time (pmf/step.c), so the arenas hold
    // lanes x chunk rows, not the batch.
    int per_lane = (r->BL + lanes - 1) / lanes, chunk = pmf_step_chunk_rows(r->mc);
    if (wanted == r->BL && chunk < per_lane && p->intercept + p->per_row * lanes * chunk <= budget) {
        p->micro_batch = wanted;
        if (r->lead)
            printf("pmf_train: memory: predicted %.2f GB more for the batch of %d, %d lanes of %d rows at a time "
                   "(%.2f GB available)\n", (p->intercept + p->per_row * lanes * chunk + p->other) * gb, r->BL, lanes,
                   chunk, p->available * gb);
        r->lanes = 0;
        return 0;
    }
    p->micro_batch = pmf_memory_pick_micro_batch(r->BL, wanted, budget, p->intercept, p->per_row);
    if (p->micro_batch == 0) {
        core_set_error("not enough memory: micro-batch 1 needs about %.2f GB more (%.2f GB arena + %.2f GB gradients, "
                       "optimizer, noise and batch) but %.2f GB are available; use a smaller model or resolution",
                       (p->intercept + p->per_row + p->other) * gb, (p->intercept + p->per_row) * gb, p->other * gb,
                       p->available * gb);
        return -1;
    }
    int64_t need = p->intercept + p->per_row * p->micro_batch + p->other;
    if (r->lead && p->micro_batch < wanted)
        printf("pmf_train: memory: batch %d does not fit as micro-batches of %d; using micro-batches of %d "
               "(predicted %.2f GB of %.2f GB available; the update is the full batch's)\n",
               r->BL, wanted, p->micro_batch, need * gb, p->available * gb);
    else if (r->lead)
        printf("pmf_train: memory: predicted %.2f GB more for micro-batches of %d (%.2f GB available)\n", need * gb,
               p->micro_batch, p->available * gb);
    r->MB = p->micro_batch;
    // Micro-batched steps run one lane (threads inside every op): lanes would each hold a
    // micro-batch's arena, more memory than the plan above allows for.
    r->lanes = r->MB < r->BL ? 1 : 0;
    return 0;
}

static int open_outputs(PmfRun *r) {
    PmfTrainConfig *cfg = r->cfg;
    char path[1100];
    if (fault("outputs")) return -1;
    snprintf(r->ckpt, sizeof r->ckpt, "%s/checkpoint.safetensors", cfg->out);
    if (!r->lead) return 0;
    if (make_dirs(cfg->out)) {
        core_set_error("cannot create the output folder '%s'", cfg->out);
        return -1;
    }
    snprintf(path, sizeof path, "%s/config.yaml", cfg->out);
    FILE *cf = fopen(path, "w");
    if (cf) fputs(r->yaml, cf), fclose(cf);
    snprintf(path, sizeof path, "%s/metrics.jsonl", cfg->out);
    r->jl = fopen(path, r->state.step ? "a" : "w");
    snprintf(path, sizeof path, "%s/metrics.tsv", cfg->out);
    r->tsv = fopen(path, r->state.step ? "a" : "w");
    if (!r->jl || !r->tsv) {
        core_set_error("cannot write metrics in '%s'", cfg->out);
        return -1;
    }
    if (!r->state.step) fprintf(r->tsv, "# step\tloss\tloss_u\tloss_v\tgrad_norm\tlr\n");
    return 0;
}

static void open_step_memory(PmfRun *r) {
    r->stepper = pmf_stepper_new(r->MB, r->lanes);
    arena_init(&r->arena, 64 << 20);
    arena_init(&r->step_arena, 8 << 20);
    tape_init(&r->tp, &r->arena);
    tape_init(&r->stp, &r->step_arena);
    r->has_arenas = 1;
    r->xb = core_malloc((size_t)r->BL * r->numel * sizeof(float), "batch");
    r->yb = core_malloc((size_t)r->BL * sizeof(int), "batch labels");
}

PmfRun *pmf_run_open(PmfTrainConfig *cfg) {
    PmfRun *r = core_calloc(1, sizeof *r, "training run");
    r->cfg = cfg, r->mc = &cfg->model;
    r->rank = pmf_dist_rank(), r->world = pmf_dist_world(), r->lead = r->rank == 0;
    r->tty = r->lead && isatty(fileno(stdout));
    if (r->lead) pmf_train_print_model(cfg);
    core_set_threads(cfg->threads);
    pmf_dist_set_timeout(cfg->mpi_timeout);
    if (open_data(r) || open_perceptual(r) || open_model(r) || open_resume(r) || open_memory_plan(r) || open_outputs(r)) {
        pmf_run_close(r);
        return NULL;
    }
    open_step_memory(r);
    stop_requested = 0;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    if (r->lead)
        printf("pmf_train: %" PRId64 " steps of batch %d (micro-batch %d), %s, lr %g, %d threads -> %s\n", r->total, r->B,
               r->MB, cfg->optimizer, cfg->learning_rate, core_threads(), cfg->out);
    if (r->lead && r->world > 1)
        printf("pmf_train: %d ranks (MPI), %d images per rank per step, gradients all-reduced (%.1f MB), watchdog %g s\n",
               r->world, r->BL, r->model.ps.total * 4.0 / 1048576.0, pmf_dist_timeout());
    r->t_start = r->t_log = core_now();
    r->first_step = r->step_log = r->state.step;
    return r;
}

// ---------------------------------------------------------------------------------------------
// One step

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

int pmf_run_done(const PmfRun *r) { return r->stop || r->state.step >= r->total; }

int pmf_run_step(PmfRun *r) {
    int64_t step = r->state.step, numel = r->numel;
    int B = r->B;
    // Batch.
    DsStreamPos pos;
    if (fault("step") || pmf_train_data_batch(&r->data, step, r->steps_per_epoch, B, r->mc->num_classes, r->xb, r->yb, &pos))
        return -1;
    r->state.data_epoch = pos.epoch, r->state.data_index = pos.index;
    // Sample (t, r), conditions and noise for the whole global batch at once; the ranks take their
    // rows and the micro-batches slices of those, so N ranks of K micro-batches see exactly what
    // one batch of N K times the size sees.
    tape_reset(&r->stp);
    Rng noise;
    rng_init(&noise, r->cfg->seed ^ STREAM_NOISE);
    noise.offset = (uint64_t)step << 32;
    PmfStepNoise all;
    pmf_draw_noise(&r->stp, &noise, &r->obj, r->mc, B, &all);
    all.step = step;
    PmfStepNoise my = noise_rows(&r->stp, &all, numel, r->rank, r->world);
    // Forward with tangents, loss and backward per micro-batch; gradients accumulate.
    int timed = step > r->first_step;
    PmfStepStats st = pmf_step_gradient(r->stepper, &r->model, &r->obj, r->xb, r->yb, &my, B);
    if (timed) r->sec_guid += st.seconds_guidance, r->sec_jvp += st.seconds_jvp, r->sec_back += st.seconds_backward;
    double loss = st.loss, lu = st.L_u, lv = st.L_v;
    // All-reduce: the sum over ranks of their shares is the global batch's gradient (and loss);
    // every rank then holds the same bits. A signal on any rank stops all of them after this step.
    double tc = core_now(), sums[4] = {loss, lu, lv, stop_requested != 0};
    pmf_dist_sum_f32(r->model.ps.grad, r->model.ps.total, "the gradient all-reduce");
    pmf_dist_sum_f64(sums, 4, "the loss all-reduce");
    loss = sums[0], lu = sums[1], lv = sums[2], r->stop = sums[3] > 0;
    if (timed) r->sec_comm += core_now() - tc;
    double gnorm = 0;
    const char *bad = !isfinite(loss) ? "the loss" : nonfinite_grad(&r->model.ps, &gnorm);
    if (bad) {
        core_set_error("step %" PRId64 ": non-finite value in %s%s; stopping, the last checkpoint (%s) is untouched",
                       step + 1, strcmp(bad, "the loss") ? "the gradient of " : "", bad, r->ckpt);
        return -1;
    }
    // Optimizer step and EMAs.
    float lr = pmf_learning_rate(r->cfg, step, r->total, r->steps_per_epoch);
    double to = core_now();
    if (r->use_muon) r->muon.lr = lr, muon_step(&r->muon, &r->model.ps);
    else r->adamw.lr = lr, adamw_step(&r->adamw, &r->model.ps);
    if (timed) r->sec_opt += core_now() - to, r->timed_steps++;
    r->state.step = step + 1;
    pmf_ema_update(&r->ema, &r->model.ps, r->state.step, B);
    r->loss = loss, r->lu = lu / ((double)B * numel), r->lv = lv / ((double)B * numel), r->gnorm = gnorm, r->lr = lr;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Log, samples, checkpoints

// Data parallel ranks hold the same bits (the same summed gradient, the same step on each); this
// checks it, before every checkpoint, by a hash of parameters, optimizer state and EMAs. 0 with a
// message if they diverged. *hash (if not NULL) gets this rank's hash.
static int same_on_all_ranks(const PmfRun *r, uint64_t *hash) {
    if (r->world == 1) return 1;
    uint64_t h = pmf_dist_state_hash(&r->state);
    if (hash) *hash = h;
    if (pmf_dist_same_u64(h, "the parameter check")) return 1;
    core_set_error("rank %d: after step %" PRId64 " the ranks' parameters or optimizer states differ; not writing a checkpoint",
                   pmf_dist_rank(), r->state.step);
    return 0;
}

// 1-NFE samples from fixed noise (the same every time, so grids compare), with `params` swapped in
// (e.g. an EMA): one row per class, at most GRID_CLASSES classes spread over the label table, 10 per
// class, generated MB at a time in the step's arena, so a grid stays small at any resolution.
static int write_samples(PmfRun *r, const char *path, const float *params) {
    const PmfConfig *mc = r->mc;
    int classes = mc->num_classes < GRID_CLASSES ? mc->num_classes : GRID_CLASSES, n = classes * GRID_PER_CLASS;
    float *z = core_malloc((size_t)n * r->numel * sizeof(float), "sample noise");
    int *labels = core_malloc((size_t)n * sizeof(int), "sample labels");
    Rng rng;
    rng_init(&rng, r->cfg->seed ^ STREAM_SAMPLES);
    rng_fill_normal(&rng, z, n * r->numel, 0.0f, mc->noise_scale);
    for (int i = 0; i < n; i++) labels[i] = (int)((int64_t)(i / GRID_PER_CLASS) * mc->num_classes / classes);
    float *saved = NULL;
    if (params) {
        saved = core_malloc((size_t)r->model.ps.total * sizeof(float), "parameter swap");
        memcpy(saved, r->model.ps.data, (size_t)r->model.ps.total * sizeof(float));
        memcpy(r->model.ps.data, params, (size_t)r->model.ps.total * sizeof(float));
    }
    for (int b0 = 0; b0 < n; b0 += r->MB) {
        int b = n - b0 < r->MB ? n - b0 : r->MB;
        tape_reset(&r->tp);
        pmf_sample(&r->tp, &r->model, z + (size_t)b0 * r->numel, labels + b0, b, r->cfg->num_steps, r->cfg->omega,
                   r->cfg->t_min, r->cfg->t_max);
    }
    if (saved) {
        memcpy(r->model.ps.data, saved, (size_t)r->model.ps.total * sizeof(float));
        free(saved);
    }
    int rc = pmf_png_grid(path, z, n, mc->channels, mc->img_size, mc->img_size, GRID_PER_CLASS);
    free(z), free(labels);
    return rc;
}

static double rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

int pmf_run_log(PmfRun *r) {
    int64_t step = r->state.step;
    if (r->lead) {
        fprintf(r->jl, "{\"step\": %" PRId64 ", \"loss\": %.9g, \"loss_u\": %.9g, \"loss_v\": %.9g, \"grad_norm\": %.9g, \"lr\": %.9g}\n",
                step, r->loss, r->lu, r->lv, r->gnorm, r->lr);
        fprintf(r->tsv, "%" PRId64 "\t%.9g\t%.9g\t%.9g\t%.9g\t%.9g\n", step, r->loss, r->lu, r->lv, r->gnorm, r->lr);
    }
    if (r->lead && (step == 1 || step % r->cfg->log_per_step == 0 || step == r->total)) {
        fflush(r->jl), fflush(r->tsv);
        double now = core_now(), ips = (step - r->step_log) * (double)r->B / fmax(now - r->t_log, 1e-9);
        double eta = (r->total - step) * (double)r->B / fmax(ips, 1e-9);
        printf("%sstep %" PRId64 "/%" PRId64 "  loss_u %.7g  loss_v %.7g  |g| %.3g  %.1f img/s  ETA %.0fs%s", r->tty ? "\r" : "",
               step, r->total, r->lu, r->lv, r->gnorm, ips, eta, r->tty ? "   " : "\n");
        fflush(stdout);
        if (step == r->first_step + 1)
            printf("%spmf_train: memory: arena peak %.1f MB, parameters+grads+optimizer+EMAs %.1f MB, max RSS %.0f MB\n",
                   r->tty ? "\n" : "", (pmf_stepper_peak_bytes(r->stepper) + r->arena.peak + r->step_arena.peak) / 1048576.0,
                   r->model.ps.total * 4.0 * (4 + r->ema.n) / 1048576.0, rss_mb());
        r->t_log = now, r->step_log = step;
    }
    if (r->cfg->checkpoint_per_step && step % r->cfg->checkpoint_per_step == 0 && step < r->total) {
        if (!same_on_all_ranks(r, NULL)) return -1;
        if (r->lead && pmf_checkpoint_save(r->ckpt, &r->state))
            fprintf(stderr, "\npmf_train: checkpoint failed: %s\n", core_last_error());
    }
    if (r->lead && r->cfg->sample_per_step && step % r->cfg->sample_per_step == 0) {
        char path[1100];
        snprintf(path, sizeof path, "%s/samples_%06" PRId64 ".png", r->cfg->out, step);
        if (write_samples(r, path, r->ema.params[0])) fprintf(stderr, "\npmf_train: %s\n", core_last_error());
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Finish and close

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

static void print_timing(const PmfRun *r) {
    double now = core_now();
    printf("pmf_train: %.1f s, %.1f img/s overall\n", now - r->t_start,
           (r->state.step - r->first_step) * (double)r->B / fmax(now - r->t_start, 1e-9));
    if (r->timed_steps == 0) return;
    double k = 1e3 / r->timed_steps, tot = r->sec_guid + r->sec_jvp + r->sec_back + r->sec_opt + r->sec_comm;
    printf("pmf_train: mean step (batch %d, %" PRId64 " steps): guidance forward %.0f ms, forward with tangents + loss %.0f ms, "
           "backward %.0f ms, optimizer %.0f ms, all-reduce %.0f ms; %.1f img/s in these phases; arena peak %.0f MB\n",
           r->B, r->timed_steps, r->sec_guid * k, r->sec_jvp * k, r->sec_back * k, r->sec_opt * k, r->sec_comm * k,
           r->B * r->timed_steps / fmax(tot, 1e-9), (pmf_stepper_peak_bytes(r->stepper) + r->arena.peak + r->step_arena.peak) / 1048576.0);
}

int pmf_run_finish(PmfRun *r) {
    if (r->tty) printf("\n");
    uint64_t hash = 0;
    if (fault("finish") || !same_on_all_ranks(r, &hash)) return -1;
    if (!r->lead) return 0;
    if (r->world > 1)
        printf("pmf_train: parameters, optimizer state and EMAs identical on all %d ranks (hash %016" PRIx64 ")\n", r->world, hash);
    if (r->stop) printf("pmf_train: stopped by a signal at step %" PRId64 "; saving a checkpoint to resume from\n", r->state.step);
    if (pmf_checkpoint_save(r->ckpt, &r->state)) {
        char msg[1024];
        snprintf(msg, sizeof msg, "checkpoint failed: %s", core_last_error());
        core_set_error("%s", msg);
        return -1;
    }
    printf("pmf_train: checkpoint %s (step %" PRId64 ")\n", r->ckpt, r->state.step);
    char path[1100];
    snprintf(path, sizeof path, "%s/samples.png", r->cfg->out);
    if (write_samples(r, path, r->ema.params[0]) == 0) printf("pmf_train: samples (EMA %g kimg) %s\n", r->ema.halflife_kimg[0], path);
    else fprintf(stderr, "pmf_train: %s\n", core_last_error());
    snprintf(path, sizeof path, "%s/samples_raw.png", r->cfg->out);
    write_samples(r, path, NULL);
    fclose(r->jl), fclose(r->tsv);
    r->jl = r->tsv = NULL;
    plot_losses(r->cfg->out);
    print_timing(r);
    return 0;
}

void pmf_run_close(PmfRun *r) {
    if (!r) return;
    if (r->jl) fclose(r->jl);
    if (r->tsv) fclose(r->tsv);
    pmf_train_data_close(&r->data);
    pmf_perceptual_close(r->percep);
    free(r->xb), free(r->yb), free(r->yaml);
    if (r->has_arenas) {
        pmf_stepper_free(r->stepper);
        tape_free(&r->tp), tape_free(&r->stp);
        arena_free(&r->arena), arena_free(&r->step_arena);
    }
    if (r->has_ema) pmf_ema_free(&r->ema);
    if (r->has_opt && r->use_muon) muon_free(&r->muon);
    if (r->has_opt && !r->use_muon) adamw_free(&r->adamw);
    if (r->has_model) pmf_model_free(&r->model);
    free(r);
}

const PmfMemoryPlan *pmf_run_memory_plan(const PmfRun *r) { return &r->plan; }

int pmf_train(PmfTrainConfig *cfg) {
    PmfRun *r = pmf_run_open(cfg);
    int rc = r ? 0 : -1;
    while (rc == 0 && !pmf_run_done(r))
        if (pmf_run_step(r) || pmf_run_log(r)) rc = -1;
    if (rc == 0) rc = pmf_run_finish(r);
    if (rc) fprintf(stderr, "\npmf_train: %s\n", core_last_error());
    pmf_run_close(r);
    return rc ? 1 : 0;
}
