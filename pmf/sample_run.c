// pmf/sample_run.c: the body of pmf_sample. Loads a training checkpoint (its configuration is in
// the metadata), picks the raw or an EMA copy of the u-path's weights, and generates images in
// batches with 1 or k network evaluations, writing a PNG grid, one PNG per image, and/or an HDF5
// file (uint8 NHWC "images" and "labels") for evaluation.
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pmf/pmf.h"

// The checkpoint's stored configuration, parsed by the same loader as a config file.
static int config_from_checkpoint(const SafeTensors *st, PmfTrainConfig *cfg) {
    const char *yaml = safetensors_meta(st, "config");
    if (!yaml) {
        core_set_error("%s: checkpoint metadata has no 'config' (not a pmf_train checkpoint?)", st->path);
        return -1;
    }
    char tmp[] = "/tmp/pmf_sample_config_XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0) {
        core_set_error("cannot create a temporary file for the checkpoint's config");
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    fputs(yaml, f);
    fclose(f);
    pmf_train_config_default(cfg);
    int rc = pmf_train_config_load(cfg, tmp);
    unlink(tmp);
    if (rc == 0) rc = pmf_train_config_finish(cfg);
    return rc;
}

static int write_h5(const char *path, const float *img, const int *labels, int n, int C, int S) {
    char tmp[1100];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    hid_t f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (f < 0) {
        core_set_error("cannot create HDF5 file '%s'", tmp);
        return -1;
    }
    uint8_t *px = core_malloc((size_t)n * C * S * S, "HDF5 pixels");
    for (int i = 0; i < n; i++)   // NCHW floats in [-1, 1] -> NHWC uint8
        for (int c = 0; c < C; c++)
            for (int k = 0; k < S * S; k++) {
                float v = (img[((size_t)i * C + c) * S * S + k] + 1.0f) * 127.5f + 0.5f;
                px[((size_t)i * S * S + k) * C + c] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
            }
    hsize_t dims[4] = {(hsize_t)n, (hsize_t)S, (hsize_t)S, (hsize_t)C}, ldims[1] = {(hsize_t)n};
    hid_t sp = H5Screate_simple(4, dims, NULL), lsp = H5Screate_simple(1, ldims, NULL);
    hid_t d = H5Dcreate2(f, "images", H5T_STD_U8LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    hid_t l = H5Dcreate2(f, "labels", H5T_STD_I32LE, lsp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e1 = H5Dwrite(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, px);
    herr_t e2 = H5Dwrite(l, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, labels);
    H5Dclose(d), H5Dclose(l), H5Sclose(sp), H5Sclose(lsp);
    herr_t e3 = H5Fclose(f);
    free(px);
    if (e1 < 0 || e2 < 0 || e3 < 0 || rename(tmp, path)) {
        core_set_error("writing HDF5 file '%s' failed", path);
        return -1;
    }
    return 0;
}

// What the caller left open (steps 0, omega / interval NAN) comes from the checkpoint's sampling
// section: the settings the run itself sampled with.
static PmfSampleArgs sampling_defaults(const PmfSampleArgs *a, const PmfTrainConfig *cfg) {
    PmfSampleArgs r = *a;
    if (r.steps <= 0) r.steps = cfg->num_steps;
    if (isnan(r.omega)) r.omega = cfg->omega;
    if (isnan(r.t_min)) r.t_min = cfg->t_min;
    if (isnan(r.t_max)) r.t_max = cfg->t_max;
    return r;
}

int pmf_sample_resolve(const PmfSampleArgs *a, PmfSampleArgs *out) {
    SafeTensors st;
    if (safetensors_open(&st, a->checkpoint)) return -1;
    PmfTrainConfig cfg;
    int rc = config_from_checkpoint(&st, &cfg);
    if (rc == 0) *out = sampling_defaults(a, &cfg);
    safetensors_close(&st);
    return rc;
}

int pmf_sample_run(const PmfSampleArgs *args) {
    SafeTensors st;
    if (safetensors_open(&st, args->checkpoint)) return -1;
    PmfTrainConfig cfg;
    int rc = -1;
    if (config_from_checkpoint(&st, &cfg)) goto done_st;
    PmfSampleArgs resolved = sampling_defaults(args, &cfg);
    const PmfSampleArgs *a = &resolved;
    PmfConfig mc = cfg.model;
    mc.with_v_head = 0;   // inference builds the u-path only
    PmfModel m;
    pmf_model_init(&m, &mc, 0);
    char prefix[16] = "model";
    if (a->ema >= 0) snprintf(prefix, sizeof prefix, "ema%d", a->ema);
    for (int i = 0; i < m.ps.n; i++) {
        Tensor *t = &m.ps.tensors[i];
        char name[300];
        snprintf(name, sizeof name, "%s/%s", prefix, t->name);
        if (!safetensors_find(&st, name)) {
            core_set_error("%s: no tensor '%s'%s", a->checkpoint, name, a->ema >= 0 ? " (is there such an EMA? try --ema -1 for the raw weights)" : "");
            goto done_model;
        }
        if (safetensors_read_f32(&st, name, t->ndim, t->shape, t->data)) goto done_model;
    }
    int n = a->n, classes = mc.num_classes;
    int64_t numel = (int64_t)mc.channels * mc.img_size * mc.img_size;
    float *img = core_malloc((size_t)n * numel * sizeof(float), "samples");
    int *labels = core_malloc((size_t)n * sizeof(int), "sample labels");
    for (int i = 0; i < n; i++) {
        int k = a->n_classes ? a->classes[i % a->n_classes] : i % classes;   // class-balanced by default
        if (k < 0 || k > classes) {
            core_set_error("class %d outside [0, %d] (%d = unconditional)", k, classes, classes);
            free(img), free(labels);
            goto done_model;
        }
        labels[i] = k;
    }
    Rng r;
    rng_init(&r, a->seed);
    rng_fill_normal(&r, img, n * numel, 0.0f, mc.noise_scale);
    Arena arena;
    arena_init(&arena, 64 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    double t0 = core_now();
    int tty = isatty(2);   // a progress line on a terminal only
    for (int b0 = 0; b0 < n; b0 += a->batch) {
        int B = n - b0 < a->batch ? n - b0 : a->batch;
        tape_reset(&tp);
        pmf_sample(&tp, &m, img + (size_t)b0 * numel, labels + b0, B, a->steps, a->omega, a->t_min, a->t_max);
        double dt = core_now() - t0;
        if (tty) fprintf(stderr, "\rpmf_sample: %d/%d images  %.1f img/s", b0 + B, n, (b0 + B) / (dt > 0 ? dt : 1e-9));
    }
    if (tty) fprintf(stderr, "\n");
    rc = 0;
    if (a->grid && pmf_png_grid(a->grid, img, n, mc.channels, mc.img_size, mc.img_size, a->grid_cols) != 0) rc = -1;
    if (rc == 0 && a->png_dir) {
        mkdir(a->png_dir, 0755);
        uint8_t *px = core_malloc((size_t)numel, "png");
        for (int i = 0; i < n && rc == 0; i++) {
            for (int64_t k = 0; k < mc.img_size * mc.img_size; k++)
                for (int c = 0; c < mc.channels; c++) {
                    float v = (img[(size_t)i * numel + (size_t)c * mc.img_size * mc.img_size + k] + 1.0f) * 127.5f + 0.5f;
                    px[k * mc.channels + c] = (uint8_t)(v < 0 ? 0 : (v > 255 ? 255 : v));
                }
            char path[1200];
            snprintf(path, sizeof path, "%s/%06d_class%d.png", a->png_dir, i, labels[i]);
            if (pmf_png_write(path, px, mc.img_size, mc.img_size, mc.channels)) rc = -1;
        }
        free(px);
    }
    if (rc == 0 && a->h5 && write_h5(a->h5, img, labels, n, mc.channels, mc.img_size)) rc = -1;
    tape_free(&tp);
    arena_free(&arena);
    free(img), free(labels);
done_model:
    pmf_model_free(&m);
done_st:
    safetensors_close(&st);
    return rc;
}
