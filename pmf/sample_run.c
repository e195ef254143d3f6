// pmf/sample_run.c: the body of pmf_sample. Opens a training checkpoint (the raw or an EMA copy of
// the u-path's weights) or a converted official model (pmf_model_open), and generates images a
// batch at a time with 1 or k network evaluations, writing as it goes: a PNG grid (the first
// PMF_SAMPLE_GRID_MAX images), one PNG per image, an HDF5 shard (dataset/'s format: uint8 NHWC
// "images" and int32 "labels") for evaluation and/or the float samples as .npy. Memory stays one batch's whatever n is, and the
// batch is lowered to what the machine can hold.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset/dataset.h"
#include "pmf/pmf.h"

// What the caller left open (steps 0, omega / interval NAN) comes from the checkpoint's sampling
// section: the settings the run itself sampled with (a converted model's: the official ones).
static PmfSampleArgs sampling_defaults(const PmfSampleArgs *a, const PmfTrainConfig *cfg) {
    PmfSampleArgs r = *a;
    if (r.steps <= 0) r.steps = cfg->num_steps;
    if (isnan(r.omega)) r.omega = cfg->omega;
    if (isnan(r.t_min)) r.t_min = cfg->t_min;
    if (isnan(r.t_max)) r.t_max = cfg->t_max;
    return r;
}

int pmf_sample_resolve(const PmfSampleArgs *a, PmfSampleArgs *out) {
    PmfTrainConfig cfg;
    int inference;
    if (pmf_file_config(a->checkpoint, &cfg, &inference)) return -1;
    *out = sampling_defaults(a, &cfg);
    if (inference) out->ema = -1;   // a converted model holds one set of weights, stored as raw
    if (out->n > 0) return 0;
    // the count of --noise / --labels (checked against each other and the model as the run will)
    PmfSampleInputs in;
    if (pmf_sample_inputs_open(&in, out, &cfg.model)) return -1;
    out->n = in.n;
    pmf_sample_inputs_close(&in);
    return 0;
}

// The largest batch (<= wanted) whose sampling fits in the memory this process may use: the arena
// bytes of one image, measured by sampling one image of zeros, times the batch, plus its buffers.
static int fitting_batch(PmfModel *m, const PmfSampleArgs *a, int64_t numel) {
    Arena arena;
    arena_init(&arena, 16 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    float *z = core_calloc((size_t)numel, sizeof(float), "sample probe");
    int label = 0;
    pmf_sample(&tp, m, z, &label, 1, 1, a->omega, a->t_min, a->t_max);
    int64_t per_image = (int64_t)arena.peak + (int64_t)arena.peak / 10 + numel * (4 + 1) + 64;
    free(z);
    tape_free(&tp);
    arena_free(&arena);
    int64_t avail = pmf_memory_available(), grid = (int64_t)PMF_SAMPLE_GRID_MAX * numel * 4;
    if (avail < 0) return a->batch;
    int64_t fit = (avail - grid - ((int64_t)128 << 20)) / per_image;
    if (fit < 1) {
        core_set_error("not enough memory to sample one image: about %.2f GB needed, %.2f GB available",
                       (per_image + grid) / 1073741824.0, avail / 1073741824.0);
        return 0;
    }
    return fit < a->batch ? (int)fit : a->batch;
}

// Where one batch's images go: the grid buffer, PNG files, the HDF5 shard.
typedef struct SampleSinks {
    float *grid;           // the first grid_n images, NCHW
    int grid_n;
    DsShardWriter *h5;
    uint8_t *px;           // one batch, NHWC uint8
    int32_t *labels32;
    NpyWriter npy;         // the float samples, if a->npy
    int has_npy;
} SampleSinks;

static int write_batch(SampleSinks *o, const PmfSampleArgs *a, const PmfConfig *mc, const float *img,
                       const int *labels, int b0, int B) {
    int S = mc->img_size, C = mc->channels;
    int64_t numel = (int64_t)C * S * S;
    for (int i = b0; i < b0 + B && i < o->grid_n; i++)
        memcpy(o->grid + (size_t)i * numel, img + (size_t)(i - b0) * numel, (size_t)numel * sizeof(float));
    if (o->has_npy && npy_writer_add(&o->npy, img, B * numel)) return -1;
    if (!a->png_dir && !o->h5) return 0;
    for (int i = 0; i < B; i++)   // NCHW floats -> NHWC bytes
        pmf_image_to_u8(img + (size_t)i * numel, C, S, S, o->px + (size_t)i * numel, (size_t)S * C);
    for (int i = 0; i < B; i++) o->labels32[i] = labels[i];
    if (o->h5 && ds_shard_writer_add(o->h5, o->px, o->labels32, B)) return -1;
    for (int i = 0; a->png_dir && i < B; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%06d_class%d.png", a->png_dir, b0 + i, labels[i]);
        if (pmf_png_write(path, o->px + (size_t)i * numel, S, S, C)) return -1;
    }
    return 0;
}

static int sample_all(const PmfSampleArgs *a, PmfModel *m, const PmfSampleInputs *in, SampleSinks *o) {
    const PmfConfig *mc = &m->cfg;
    int n = in->n;
    int64_t numel = (int64_t)mc->channels * mc->img_size * mc->img_size;
    int batch = fitting_batch(m, a, numel);
    if (batch < 1) return -1;
    float *img = core_malloc((size_t)batch * numel * sizeof(float), "samples");
    int *labels = core_malloc((size_t)batch * sizeof(int), "sample labels");
    o->px = core_malloc((size_t)batch * numel, "sample pixels");
    o->labels32 = core_malloc((size_t)batch * sizeof(int32_t), "sample labels");
    Arena arena;
    arena_init(&arena, 64 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    double t0 = core_now();
    int tty = isatty(2), rc = 0;   // a progress line on a terminal only
    for (int b0 = 0; b0 < n && rc == 0; b0 += batch) {
        int B = n - b0 < batch ? n - b0 : batch;
        pmf_sample_inputs_batch(in, a, mc, b0, B, img, labels);
        tape_reset(&tp);
        pmf_sample(&tp, m, img, labels, B, a->steps, a->omega, a->t_min, a->t_max);
        rc = write_batch(o, a, mc, img, labels, b0, B);
        double dt = core_now() - t0;
        if (tty) fprintf(stderr, "\rpmf_sample: %d/%d images  %.1f img/s", b0 + B, n, (b0 + B) / (dt > 0 ? dt : 1e-9));
    }
    if (tty) fprintf(stderr, "\n");
    if (a->seconds) *a->seconds = core_now() - t0;
    tape_free(&tp);
    arena_free(&arena);
    free(img), free(labels);
    return rc;
}

int pmf_sample_run(const PmfSampleArgs *args) {
    PmfTrainConfig cfg;
    PmfModel m;
    int rc = -1;
    SampleSinks o = {0};
    PmfSampleInputs in = {0};
    if (pmf_model_open(args->checkpoint, args->ema, &m, &cfg)) return -1;
    PmfSampleArgs resolved = sampling_defaults(args, &cfg);
    const PmfSampleArgs *a = &resolved;
    const PmfConfig mc = m.cfg;
    if (pmf_sample_inputs_open(&in, a, &mc)) goto done;
    int64_t numel = (int64_t)mc.channels * mc.img_size * mc.img_size;
    if (a->grid) {
        o.grid_n = in.n < PMF_SAMPLE_GRID_MAX ? in.n : PMF_SAMPLE_GRID_MAX;
        o.grid = core_malloc((size_t)o.grid_n * numel * sizeof(float), "sample grid");
    }
    if (a->png_dir && mkdir(a->png_dir, 0755) && access(a->png_dir, W_OK)) {
        core_set_error("cannot create the folder '%s'", a->png_dir);
        goto done;
    }
    char source[1100];   // the shard writer keeps a pointer to it until finish: function scope
    if (a->h5) {
        snprintf(source, sizeof source, "pmf_sample:%s", a->checkpoint);
        DsShardMeta meta = {mc.img_size, mc.channels, 0, source, "none", 0, NULL};
        if (!(o.h5 = ds_shard_writer_open(a->h5, &meta))) goto done;
    }
    int64_t npy_shape[4] = {in.n, mc.channels, mc.img_size, mc.img_size};
    if (a->npy) {
        if (npy_writer_open(&o.npy, a->npy, 4, npy_shape)) goto done;
        o.has_npy = 1;
    }
    if (sample_all(a, &m, &in, &o)) goto done;
    if (o.h5) {
        DsShardWriter *w = o.h5;
        o.h5 = NULL;
        if (ds_shard_writer_finish(w)) goto done;
    }
    if (o.has_npy) {
        o.has_npy = 0;
        if (npy_writer_finish(&o.npy)) goto done;
    }
    if (o.grid && pmf_png_grid(a->grid, o.grid, o.grid_n, mc.channels, mc.img_size, mc.img_size, a->grid_cols)) goto done;
    rc = 0;
done:
    if (o.h5) ds_shard_writer_abort(o.h5);
    if (o.has_npy) npy_writer_abort(&o.npy);
    free(o.grid), free(o.px), free(o.labels32);
    pmf_sample_inputs_close(&in);
    pmf_model_free(&m);
    return rc;
}
