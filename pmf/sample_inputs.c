// pmf/sample_inputs.c: what a sampling run starts from, a batch at a time: the labels (a class
// list cycled, every class balanced, or an .npy of class ids) and the noise (image i's slice of
// one seeded stream, so independent of the batch size, or an .npy of raw N(0, 1) values, float32
// NCHW, as the official generate() draws it); both times the model's noise scale. Files are
// checked against the model (shape, class range) and each other (count) before anything runs.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmf/pmf.h"

#define PMF_SAMPLE_MAX_IMAGES 10000000

static int read_labels(const char *path, int num_classes, NpyArray *l) {
    if (npy_read(path, PMF_SAMPLE_MAX_IMAGES, l)) return -1;
    if (l->kind != 'i' || l->ndim != 1 || l->numel < 1) {
        core_set_error("%s: labels must be a 1-D integer array of class ids (got %s, %d-D, %lld values)", path,
                       l->kind == 'i' ? "integers" : "floats", l->ndim, (long long)l->numel);
        npy_free(l);
        return -1;
    }
    for (int64_t i = 0; i < l->numel; i++)
        if (l->i64[i] < 0 || l->i64[i] > num_classes) {
            core_set_error("%s: label %lld of row %lld is outside [0, %d] (%d = unconditional)", path, (long long)l->i64[i],
                           (long long)i, num_classes, num_classes);
            npy_free(l);
            return -1;
        }
    return 0;
}

static int read_noise(const char *path, const PmfConfig *c, NpyArray *z) {
    int64_t per = (int64_t)c->channels * c->img_size * c->img_size;
    if (npy_read(path, (int64_t)PMF_SAMPLE_MAX_IMAGES * per, z)) return -1;
    if (z->kind != 'f' || z->ndim != 4 || z->shape[0] < 1 || z->shape[1] != c->channels || z->shape[2] != c->img_size ||
        z->shape[3] != c->img_size) {
        core_set_error("%s: noise must be floats (N, %d, %d, %d) (NCHW); got a %d-D %s array", path, c->channels,
                       c->img_size, c->img_size, z->ndim, z->kind == 'f' ? "float" : "integer");
        npy_free(z);
        return -1;
    }
    return 0;
}

int pmf_sample_inputs_open(PmfSampleInputs *in, const PmfSampleArgs *a, const PmfConfig *c) {
    memset(in, 0, sizeof *in);
    for (int i = 0; i < a->n_classes; i++)
        if (a->classes[i] < 0 || a->classes[i] > c->num_classes) {
            core_set_error("class %d outside [0, %d] (%d = unconditional)", a->classes[i], c->num_classes, c->num_classes);
            return -1;
        }
    if (a->labels_npy && read_labels(a->labels_npy, c->num_classes, &in->labels)) return -1;
    if (a->noise_npy && read_noise(a->noise_npy, c, &in->noise)) {
        pmf_sample_inputs_close(in);
        return -1;
    }
    // The count: a->n, else the files' rows, else 100; every source given must agree.
    int64_t n = a->n > 0 ? a->n : a->noise_npy ? in->noise.shape[0] : a->labels_npy ? in->labels.numel : 100;
    int64_t rows = a->noise_npy && in->noise.shape[0] != n ? in->noise.shape[0] : a->labels_npy && in->labels.numel != n ? in->labels.numel : -1;
    if (rows >= 0) {
        core_set_error("%s: holds %lld rows for %lld images (--n, --noise and --labels must agree)",
                       a->noise_npy && in->noise.shape[0] != n ? a->noise_npy : a->labels_npy, (long long)rows, (long long)n);
        pmf_sample_inputs_close(in);
        return -1;
    }
    in->n = (int)n;
    return 0;
}

void pmf_sample_inputs_batch(const PmfSampleInputs *in, const PmfSampleArgs *a, const PmfConfig *c, int b0, int B,
                             float *noise, int *labels) {
    int64_t per = (int64_t)c->channels * c->img_size * c->img_size;
    for (int i = 0; i < B; i++)
        labels[i] = in->labels.i64 ? (int)in->labels.i64[b0 + i]
                    : a->n_classes ? a->classes[(b0 + i) % a->n_classes] : (b0 + i) % c->num_classes;
    if (in->noise.f32) {
        // as the official generate(): z = randn(...) * noise_scale, in float32
        const float *src = in->noise.f32 + (size_t)b0 * per;
        for (int64_t k = 0; k < B * per; k++) noise[k] = src[k] * c->noise_scale;
        return;
    }
    // Image i's noise is the i-th slice of one seeded stream: the same for any batch size.
    Rng r;
    rng_init(&r, a->seed);
    r.offset = (uint64_t)b0 * (uint64_t)per;
    rng_fill_normal(&r, noise, B * per, 0.0f, c->noise_scale);
}

void pmf_sample_inputs_close(PmfSampleInputs *in) {
    npy_free(&in->noise), npy_free(&in->labels);
}
