// pmf/pmf.h: the one public header of the method: the JiT-style pixel generator with prefix-token
// conditioning and two heads, and (later) the pMF objective, samplers and training loop.
// Spec: ../shared/spec/pmf-spec.md sections 5, 6 and 9.
#ifndef PMF_PMF_H
#define PMF_PMF_H

#include "core/core.h"

// Prefix tokens (spec 6.1): class 8 | omega 4 | t_min 2 | t_max 2 | time 4, then the patches.
#define PMF_CLASS_TOKENS 8
#define PMF_OMEGA_TOKENS 4
#define PMF_TMIN_TOKENS 2
#define PMF_TMAX_TOKENS 2
#define PMF_TIME_TOKENS 4
#define PMF_PREFIX 20
#define PMF_TIME_FREQ 256   // sinusoid width of the timestep embedders

typedef enum { PMF_PRED_X, PMF_PRED_U } PmfPrediction;
// x = c_skip(t) z + c_out(t) net (spec 5.6); NONE is plain x-prediction (c_skip = 0).
typedef enum { PMF_PRECOND_NONE, PMF_PRECOND_LINEAR, PMF_PRECOND_EDM, PMF_PRECOND_SCM } PmfPrecond;

typedef struct PmfConfig {
    char name[32];
    int img_size, channels, patch;
    int dim, heads, mlp_hidden;
    int depth_shared, depth_head;   // depth = shared + u-head (spec 6.4); the v-head repeats the head
    int bottleneck;                 // d' of the bottleneck patch embedding; 0 = plain linear embed
    int num_classes;                // label table has num_classes + 1 rows (the last is null)
    float noise_scale;
    int with_v_head;                // 1 for training; inference builds only the u-head
    PmfPrediction pred;             // what the heads output: an image (default) or a velocity
    PmfPrecond precond;             // x-prediction only
} PmfConfig;

// Presets: "B/16", "L/16", "H/16", "B/32", "L/32", "H/32" (the paper's), and CPU presets
// ("S/4" for 32 x 32 x 1, "tiny" for the golden tests). Returns 0, or -1 with a message.
int pmf_preset(const char *name, PmfConfig *cfg);
// Checks a configuration; -1 with a message naming the offending field.
int pmf_config_check(const PmfConfig *cfg);
// Parameter count (with or without the v-head) and multiply-accumulates of one forward pass of
// the u-path (trunk + u-head), per image.
int64_t pmf_param_count(const PmfConfig *cfg, int with_v_head);
double pmf_forward_macs(const PmfConfig *cfg);

typedef struct PmfBlock {
    Tensor *norm1, *wq, *wk, *wv, *wo, *q_norm, *k_norm, *attn_scale;
    Tensor *norm2, *w1, *w3, *w2, *mlp_scale;
} PmfBlock;

typedef struct PmfFinal {
    Tensor *norm, *w, *b;
} PmfFinal;

typedef struct PmfEmbedder {
    Tensor *w1, *b1, *w2, *b2;
} PmfEmbedder;

typedef struct PmfModel {
    PmfConfig cfg;
    ParamStore ps;
    Tensor *patch_w1, *patch_b1, *patch_w2, *patch_b2;   // w2/b2 NULL for the plain embedding
    Tensor *cls_tokens, *omega_tokens, *tmin_tokens, *tmax_tokens, *time_tokens;
    Tensor *label_embed, *pos_embed;
    PmfEmbedder te_h, te_omega, te_tmin, te_tmax;
    PmfBlock *trunk, *u_head, *v_head;
    PmfFinal u_final, v_final;
} PmfModel;

// Declares every parameter under the reference's names (tools/reference/pmf_ref.py) and
// initialises them as spec 6.3 from `seed`.
void pmf_model_init(PmfModel *m, const PmfConfig *cfg, uint64_t seed);
void pmf_model_free(PmfModel *m);

// Conditioning of one batch. Tensors are (B); h may carry a tangent (the JVP's h' = 1).
typedef struct PmfCond {
    Tensor *h, *omega, *t_min, *t_max;
    const int *labels;   // B labels in [0, num_classes]; num_classes = null
} PmfCond;

// Network outputs: the heads' raw outputs (B, C, H, W): images for x-prediction, velocities for
// u-prediction. want_u / want_v choose the heads; the v-head never carries tangents.
typedef struct PmfHeads {
    Tensor *u_out, *v_out;
} PmfHeads;

PmfHeads pmf_forward(Tape *tp, PmfModel *m, Tensor *z, const PmfCond *c, int want_u, int want_v);

// ---------------------------------------------------------------------------------------------
// Objective (spec 5.3, the released code's variant)

typedef enum {
    PMF_TR_TRIANGLE,    // the pMF sampler: 0 <= r <= t, a share of rows with r = t
    PMF_TR_FM_ONLY,     // ablation: r = t everywhere (flow matching)
    PMF_TR_R0_ONLY,     // ablation: r = 0 everywhere (consistency-like)
    PMF_TR_BOTH_LINES,  // ablation: half r = t, half r = 0
} PmfTrSampler;

// Per-sample perceptual term: given pred_x and x (B, C, H, W), t, the step and each sample's row in
// the step's global batch (its random crop follows them), returns a (B) tensor of already weighted
// per-sample losses to add, or NULL. pmf_perceptual_open provides one.
typedef Tensor *(*PmfPerceptualFn)(void *ctx, Tape *tp, Tensor *pred_x, Tensor *x, const float *t, int64_t step,
                                   const int64_t *rows);

typedef struct PmfObjective {
    PmfTrSampler sampler;
    float p_mean, p_std;       // logit-normal (t, r)
    float data_proportion;     // share of rows with r = t
    int tr_uniform;            // 10% of rows get (U(0,1), U(0,1)) pairs
    int cfg;                   // 1: guided target with power-law omega and interval; 0: v_g = v_t
    float cfg_max, cfg_beta;   // omega in [1, 1 + cfg_max], density ~ omega^-beta
    float class_dropout;
    float norm_eps, norm_p;    // adaptive weighting L / sg((L + eps)^p) (the official adp_wt_fn)
    PmfPerceptualFn perceptual;
    void *perceptual_ctx;
} PmfObjective;

// x-prediction's preconditioner at time t: X = c_skip z + c_out net, with dc_skip/dt and dc_out/dt
// (pmf/README.md gives the formulas and their sources).
void pmf_precond_coeffs(PmfPrecond p, float t, float *c_skip, float *c_out, float *dc_skip, float *dc_out);

// The adaptive weight 1 / (L + eps)^p that multiplies a per-sample loss L (held constant).
float pmf_adaptive_weight(float L, float eps, float p);

// The spec's B/16 settings (P 0.8/0.8, r = t share 0.5, cfg on, beta 1, omega in [1, 8],
// dropout 0.1, eps 0.01).
void pmf_objective_default(PmfObjective *o);

// All the randomness of one step, drawn up front so a step is a pure function of it (tests feed
// the same numbers to the PyTorch reference).
typedef struct PmfStepNoise {
    int B;
    float *e;                    // (B, C, H, W), already times noise_scale
    float *t, *r, *t_min, *t_max, *omega;
    uint8_t *fm, *drop;          // r == t rows; class-dropped rows
    int64_t step;                // the training step these draws belong to (0 from pmf_draw_noise)
    int64_t *row;                // each row's index in the step's global batch (0..B-1 from pmf_draw_noise)
} PmfStepNoise;

// Draws noise for a batch of B images of the model's geometry, e ~ N(0, noise_scale^2) with the
// model's noise scale (the one noise_scale: PmfConfig's), in arena memory from tp.
void pmf_draw_noise(Tape *tp, Rng *rng, const PmfObjective *o, const PmfConfig *mc, int B, PmfStepNoise *n);

typedef struct PmfLoss {
    Tensor *loss;                 // (1): mean_b(adp(L_u) + adp(L_v) + perceptual)
    float *L_u, *L_v;             // raw per-sample sums (B), before the adaptive weighting
    Tensor *u, *v;                // u-head and v-head velocities (B, C, H, W)
    Tensor *x_u;                  // the u-head's x-prediction (pred_x)
    float *du_dt, *V, *v_g;       // (B * C * H * W) each; du_dt NULL when every row has r = t
    double seconds_guidance;      // wall time of the no-gradient v-head pass (targets, v_c2)
    double seconds_jvp;           // wall time of the forward with tangents and the loss
} PmfLoss;

// One pMF loss evaluation (guidance calls, the JVP forward, the loss) on the tape; call
// tape_backward(tp, out.loss, NULL) afterwards for the gradients.
PmfLoss pmf_loss(Tape *tp, PmfModel *m, const PmfObjective *o, const float *x, const int *labels,
                 const PmfStepNoise *n);
// Network rows the guidance pass evaluates for row i of n: 1 without CFG, else 1 to 3 (calls whose
// output repeats another or is never read are skipped, see guidance_part in pmf/objective.c).
int pmf_guidance_rows(const PmfObjective *o, const PmfStepNoise *n, int i);

// The gradient of one training step (pmf/step.c): pmf_loss and backward on every micro-batch of
// the rows in n (this rank's share of a global batch of global_batch rows), summed into m->ps.grad
// (zeroed first).
typedef struct PmfStepper PmfStepper;    // the step's tapes and arenas, kept from step to step
typedef struct PmfStepStats {
    double loss;                          // this rank's share of the global batch's mean loss
    double L_u, L_v;                      // sums of the raw per-sample sums over the rows
    double seconds_guidance, seconds_jvp, seconds_backward;
} PmfStepStats;
// micro_batch 0: the whole batch at once. lanes: threads that each take a contiguous part of the
// rows with single-threaded ops (see pmf/step.c); 0 = one per thread, 1 = all threads in every op.
PmfStepper *pmf_stepper_new(int micro_batch, int lanes);
// Without micro-batching a lane still runs its rows a few at a time, to keep each op's tensors in
// cache: 0 (the default) chooses the rows from the model, -1 runs the whole lane at once.
void pmf_stepper_set_chunk_rows(PmfStepper *s, int rows);
int pmf_step_chunk_rows(const PmfConfig *c);            // the rows 0 chooses for this model
void pmf_stepper_free(PmfStepper *s);
int pmf_stepper_lanes(const PmfStepper *s, int rows);   // lanes a step of `rows` rows will use
size_t pmf_stepper_peak_bytes(const PmfStepper *s);     // arenas and the lanes' gradient buffers
PmfStepStats pmf_step_gradient(PmfStepper *s, PmfModel *m, const PmfObjective *o, const float *x, const int *y,
                               const PmfStepNoise *n, int global_batch);

// ---------------------------------------------------------------------------------------------
// Sampling (spec 9): z starts as N(0, I) * noise_scale, then `steps` steps on t = linspace(1, 0):
// z <- z - (t - r) u(z, h = t - r, omega, t_min, t_max, y). One step is the 1-NFE generator.
// The velocity of a head output, shared by training and sampling: x-prediction gives
// (z - X) / clip(t, 0.05, 1) (X with the preconditioner), u-prediction the output itself.
// With `with_tangent`, the result carries the derivative along t' = 1 (z's own tangent included).
Tensor *pmf_velocity(Tape *tp, const PmfConfig *c, Tensor *net, Tensor *z, const float *t, int with_tangent);

// z (B, C, H, W) in place: noise in, images out. No tape is recorded.
void pmf_sample(Tape *tp, PmfModel *m, float *z, const int *labels, int B, int steps, float omega,
                float t_min, float t_max);

// pmf_sample's body: images from a training checkpoint (its config is in the metadata) or from a
// converted official model (tools/convert_weights.py pmf).
typedef struct PmfSampleArgs {
    const char *checkpoint;
    int ema;                     // -1: the raw weights; k: the checkpoint's EMA k (ema<k>/...);
                                 // a converted model has one set of weights and ignores it
    int n, batch, steps;         // images (0: the --noise/--labels rows, else 100), images per
                                 // forward, network evaluations (1 = 1-NFE; 0: the file's sampling.num_steps)
    float omega, t_min, t_max;   // CFG scale and interval (network conditions, free at sampling); NAN:
                                 // the file's sampling.omega / t_min / t_max (a converted model: the
                                 // official evaluation settings)
    const int *classes;          // cycled through; NULL = class-balanced over every class
    int n_classes;
    uint64_t seed;
    const char *grid, *png_dir, *h5;   // outputs (any may be NULL)
    int grid_cols;
    const char *noise_npy;       // raw N(0, 1) noise (n, C, H, W) float32 .npy, times the noise scale
    const char *labels_npy;      // class ids (n) .npy, any integer dtype
    const char *npy;             // output: the samples (n, C, H, W) float32 .npy before rounding
    double *seconds;             // if set: receives the generation's wall time (loading excluded)
} PmfSampleArgs;
// Generates a batch at a time (the batch lowered to what fits in memory), writing each batch out:
// memory does not grow with n. The grid shows the first PMF_SAMPLE_GRID_MAX images.
#define PMF_SAMPLE_GRID_MAX 256
int pmf_sample_run(const PmfSampleArgs *a);
// a with what it leaves open filled in from its checkpoint and input files (what pmf_sample_run
// will use).
int pmf_sample_resolve(const PmfSampleArgs *a, PmfSampleArgs *out);
// A run's inputs: the --noise / --labels files (checked against the model and each other; -1 with
// a message naming the file) and n (a->n, else the files' rows, else 100). _batch gives images
// b0 .. b0+B-1 their starting noise (times the noise scale; from the file, or the seed's stream at
// image b0, so any batch size gives the same images) and labels.
typedef struct PmfSampleInputs {
    NpyArray noise, labels;   // empty unless given
    int n;
} PmfSampleInputs;
int pmf_sample_inputs_open(PmfSampleInputs *in, const PmfSampleArgs *a, const PmfConfig *c);
void pmf_sample_inputs_batch(const PmfSampleInputs *in, const PmfSampleArgs *a, const PmfConfig *c, int b0, int B,
                             float *noise, int *labels);
void pmf_sample_inputs_close(PmfSampleInputs *in);

// ---------------------------------------------------------------------------------------------
// Training configuration: YAML files with the official configs' keys (spec 8), overridable from
// the command line as key=value. Unknown keys, wrong types and impossible combinations are errors
// that name the key.

typedef struct PmfTrainConfig {
    char model_str[32];       // model.model_str: B/16 ... (also pMF_B_16 / MiT_B_16), S/4, tiny
    PmfConfig model;          // filled from the preset, then from model.* overrides
    PmfObjective objective;
    // perceptual
    char perceptual[24];      // model.perceptual: none | featnet | featnet+features | lpips | lpips+convnext | convnext
    char perceptual_weights[512];   // model.perceptual_weights: VGG16 trunk safetensors (lpips)
    char convnext_weights[512];     // model.convnext_weights: ConvNeXt-V2 safetensors (convnext)
    float lpips_lambda, convnext_lambda, perceptual_max_t;
    // training
    char optimizer[8];        // training.optimizer: muon | adamw
    char lr_schedule[24];     // training.lr_schedule: const | warmup_const | warmup_cosine
    float learning_rate, warmup_epochs, adam_b1, adam_b2, weight_decay;
    int num_epochs;
    int64_t steps;            // training.steps: overrides num_epochs when > 0
    int batch_size, micro_batch;
    float ema_val[4];         // EMA half-lives in kimg
    int n_ema;
    int log_per_step, checkpoint_per_step, sample_per_step;
    uint64_t seed;
    int threads;
    float mpi_timeout;        // training.mpi_timeout: seconds a rank waits for the others (MPI)
    // sampling during training
    int num_steps;
    float omega, t_min, t_max;
    // data and output
    char data[512];           // dataset.root: "fashion-mnist" (built in) or a shard folder
    int image_size;           // dataset.image_size
    char out[512];            // output folder
    char load_from[512];      // checkpoint to resume from
} PmfTrainConfig;

void pmf_train_config_default(PmfTrainConfig *c);
// Apply a YAML file; -1 with a message naming the file and the key.
int pmf_train_config_load(PmfTrainConfig *c, const char *path);
// Apply one "section.key=value" override; -1 with a message naming the key.
int pmf_train_config_set(PmfTrainConfig *c, const char *key, const char *value);
// Resolve the model preset and cross-check the whole configuration.
int pmf_train_config_finish(PmfTrainConfig *c);
// The configuration as YAML (stored in checkpoints and run folders).
char *pmf_train_config_yaml(const PmfTrainConfig *c);

// A model for inference from a pmf_train checkpoint (its raw weights, ema = -1, or EMA k) or from
// an official pMF model converted by tools/convert_weights.py pmf (metadata format
// PMF_INFERENCE_FORMAT: weights under "model/", no EMAs, `ema` ignored). The u-path only; cfg gets
// the file's stored configuration (architecture, noise scale, sampling.* defaults). -1 with a
// message naming the file and the tensor.
#define PMF_INFERENCE_FORMAT "pmf-inference-1"
int pmf_model_open(const char *path, int ema, PmfModel *m, PmfTrainConfig *cfg);
int pmf_is_inference_file(const SafeTensors *st);
// Only the stored configuration of such a file; *inference (if given): 1 for a converted model.
int pmf_file_config(const char *path, PmfTrainConfig *cfg, int *inference);

// ---------------------------------------------------------------------------------------------
// EMAs (spec 7.2): EDM-style power EMAs, several at once. After optimizer step `step` (counted
// from 1) with batch B: halflife = min(H_kimg * 1000, step * B * 0.05) images,
// beta = 0.5^(B / max(halflife, 1e-8)), ema = beta ema + (1 - beta) params.
typedef struct PmfEma {
    int n;
    float halflife_kimg[4];
    float *params[4];        // each ps->total floats, in the store's layout
    int64_t total;
} PmfEma;

void pmf_ema_init(PmfEma *e, const ParamStore *ps, const float *halflife_kimg, int n);
void pmf_ema_update(PmfEma *e, const ParamStore *ps, int64_t step, int batch);
void pmf_ema_free(PmfEma *e);

// ---------------------------------------------------------------------------------------------
// Checkpoints: one safetensors file with the model ("model/<name>"), the optimizer state
// ("opt/<slot>/<name>"), the EMAs ("ema<k>/<name>") and, as metadata, the step, the optimizer's
// step, the RNG seed and the configuration. Written atomically (temp file, fsync, rename), so a
// crash while writing leaves the previous checkpoint intact. Every random draw is a function of
// (seed, step) and the data position is stored (data_epoch, data_index metadata), so a resumed
// run continues bit for bit.
typedef struct PmfTrainState {
    PmfModel *model;
    Muon *muon;              // exactly one of muon / adamw is set
    AdamW *adamw;
    PmfEma *ema;
    int64_t step;
    uint64_t seed;
    const char *config_yaml;
    int64_t data_epoch, data_index;   // the shard stream's position (0, 0 for the built-in data)
} PmfTrainState;

int pmf_checkpoint_save(const char *path, const PmfTrainState *s);
// Loads into an initialised state of the same configuration; -1 with a message on any mismatch.
int pmf_checkpoint_load(const char *path, PmfTrainState *s);

// Muon partition by name (spec 7.1, 15.3): the 2-D ".weight" tensors (attention, SwiGLU, the
// timestep embedders' linears, the final linears); everything else goes to the Adam branch.
uint8_t *pmf_muon_partition(const PmfModel *m);

// ---------------------------------------------------------------------------------------------
// Images out: 8-bit PNG through libpng, written atomically. A grid tiles B images (C, H, W) in
// [-1, 1] into `cols` columns with a 2-pixel border.
int pmf_png_write(const char *path, const uint8_t *pixels, int width, int height, int channels);
int pmf_png_grid(const char *path, const float *images, int B, int C, int H, int W, int cols);
// One image (C, H, W) in [-1, 1] -> interleaved bytes (H, W, C), rounded as the torch evaluation
// does (spec 9); rows of px start row_bytes apart (W * C for a lone image, wider inside a grid).
void pmf_image_to_u8(const float *img, int C, int H, int W, uint8_t *px, size_t row_bytes);

// The perceptual terms of the objective on perceptual/'s frozen networks (model.perceptual =
// featnet | featnet+features | lpips | convnext | lpips+convnext): sets o->perceptual and
// o->perceptual_ctx. NULL with a message on failure.
typedef struct PmfPerceptual PmfPerceptual;
PmfPerceptual *pmf_perceptual_open(const PmfTrainConfig *c, PmfObjective *o);
// The random resized crop (spec 5.5) that every term uses for the sample in global row `row` of
// step `step`, for H x W images: box = {top, left, height, width}.
void pmf_perceptual_crop(const PmfPerceptual *p, int64_t step, int64_t row, int H, int W, int box[4]);
void pmf_perceptual_close(PmfPerceptual *p);

// ---------------------------------------------------------------------------------------------
// A training run (pmf/train.c) as named steps: open (data, perceptual networks, model, optimizer,
// EMAs, resume, memory plan, outputs), then step and log until done, finish (final checkpoint,
// grids, plot), close (frees whatever was opened, on every path).
typedef struct PmfRun PmfRun;
PmfRun *pmf_run_open(PmfTrainConfig *cfg);   // NULL with a message; nothing is left allocated
int pmf_run_done(const PmfRun *r);           // the last step is done, or a signal asked to stop
int pmf_run_step(PmfRun *r);                 // batch, noise, loss, backward, optimizer, EMAs; -1 with a message
int pmf_run_log(PmfRun *r);                  // metrics, progress, periodic checkpoints and grids
int pmf_run_finish(PmfRun *r);
void pmf_run_close(PmfRun *r);
// The whole run (open, steps, finish, close): 0, or 1 after printing the reason.
int pmf_train(PmfTrainConfig *cfg);
// The model's geometry, parameter counts and GMACs, as the run prints them first.
void pmf_train_print_model(const PmfTrainConfig *cfg);
// training.lr_schedule at optimizer step `step` (from 0) of `total`.
float pmf_learning_rate(const PmfTrainConfig *c, int64_t step, int64_t total, int64_t steps_per_epoch);

// Memory (pmf/memory_plan.c). The run predicts its peak from two measured dry runs before its
// first step and lowers the micro-batch until it fits (the update stays the full batch's).
typedef struct PmfMemoryPlan {
    int64_t resident;            // bytes resident when the plan was made
    int64_t intercept, per_row;  // a micro-batch of mb rows needs intercept + per_row mb arena bytes
    int64_t other;               // gradients, optimizer moments, noise, batch, grids, margin
    int64_t available;           // what the process could still use (-1: unknown)
    int micro_batch;             // the choice
} PmfMemoryPlan;
const PmfMemoryPlan *pmf_run_memory_plan(const PmfRun *r);
// Bytes this process may still use: 90% of min(MemAvailable, cgroup memory.max - memory.current), or
// PMF_MEMORY_AVAILABLE=SIZE (e.g. 2G: tests, or a user sharing the machine). -1 if unknown.
int64_t pmf_memory_available(void);
int64_t pmf_memory_resident(void);
// The largest divisor mb <= wanted of rows with intercept + per_row mb <= budget; 0 if none.
int pmf_memory_pick_micro_batch(int rows, int wanted, int64_t budget, int64_t intercept, int64_t per_row);

// ---------------------------------------------------------------------------------------------
// Data parallel training (pmf/dist.c, docs/cluster.md): under `mpirun -np N` each rank trains on
// its share of every global batch, gradients are summed over the ranks, and every rank takes the
// same optimizer step. Without MPI built in (PMF_WITH_MPI) the world is one rank and the
// collectives do nothing. Collectives run under a watchdog: waiting longer than the timeout
// (training.mpi_timeout, default 600 s) or an MPI error stops the whole job with a message.
// Test hook: PMF_DIST_FAULT=hang:R:K / exit:R:K (rank R hangs / exits before its K-th collective).
// MPI_Init when launched by mpirun/srun (else one rank); -1 with a message when a multi-rank
// launch finds no MPI in this build.
int pmf_dist_init(int *argc, char ***argv);
void pmf_dist_finalize(void);
int pmf_dist_built(void);                      // 1 if this build has MPI
int pmf_dist_rank(void);
int pmf_dist_world(void);
void pmf_dist_set_timeout(double seconds);
double pmf_dist_timeout(void);
void pmf_dist_sum_f32(float *x, int64_t n, const char *what);   // in place; `what` names it in errors
void pmf_dist_sum_f64(double *x, int n, const char *what);
int pmf_dist_any(int flag, const char *what);                    // 1 if any rank's flag is set
void pmf_dist_barrier(const char *what);
int pmf_dist_same_u64(uint64_t v, const char *what);             // 1 if every rank holds the same v
uint64_t pmf_dist_state_hash(const PmfTrainState *s);            // parameters, optimizer, EMAs, step
void pmf_dist_abort(int code, const char *why);                  // prints why, ends every rank

#endif
