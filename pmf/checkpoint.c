// pmf/checkpoint.c: training checkpoints in safetensors (see pmf.h for the layout and why a
// resumed run continues bit for bit).
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmf/pmf.h"

#define CKPT_FORMAT "pmf-checkpoint-1"

uint8_t *pmf_muon_partition(const PmfModel *m) {
    const ParamStore *ps = &m->ps;
    uint8_t *use = core_calloc((size_t)ps->n, 1, "Muon partition");
    for (int i = 0; i < ps->n; i++) {
        const char *n = ps->tensors[i].name;
        size_t len = strlen(n);
        use[i] = ps->tensors[i].ndim == 2 && len > 7 && !strcmp(n + len - 7, ".weight");
    }
    return use;
}

// Every tensor of the store under `prefix`, with data taken from `base` in the store's layout.
static void add_store(StWriter *w, const ParamStore *ps, const char *prefix, const float *base, char **names, int *k) {
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = &ps->tensors[i];
        size_t len = strlen(prefix) + strlen(t->name) + 2;
        char *name = core_malloc(len, "checkpoint name");
        snprintf(name, len, "%s/%s", prefix, t->name);
        st_writer_add(w, name, t->ndim, t->shape, base + (t->data - ps->data));
        names[(*k)++] = name;
    }
}

static int read_store(const SafeTensors *st, const ParamStore *ps, const char *prefix, float *base) {
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = &ps->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "%s/%s", prefix, t->name);
        if (safetensors_read_f32(st, name, t->ndim, t->shape, base + (t->data - ps->data))) return -1;
    }
    return 0;
}

int pmf_checkpoint_save(const char *path, const PmfTrainState *s) {
    const ParamStore *ps = &s->model->ps;
    StWriter *w = st_writer_new();
    int slots = 1 + 2 + (s->ema ? s->ema->n : 0);
    char **names = core_calloc((size_t)slots * ps->n, sizeof(char *), "checkpoint names");
    int k = 0;
    add_store(w, ps, "model", ps->data, names, &k);
    char buf[64];
    if (s->muon) {
        add_store(w, ps, "opt/mu", s->muon->mu, names, &k);
        add_store(w, ps, "opt/nu", s->muon->nu, names, &k);
        st_writer_meta(w, "optimizer", "muon");
        snprintf(buf, sizeof buf, "%" PRId64, s->muon->step);
    } else {
        add_store(w, ps, "opt/m", s->adamw->m, names, &k);
        add_store(w, ps, "opt/v", s->adamw->v, names, &k);
        st_writer_meta(w, "optimizer", "adamw");
        snprintf(buf, sizeof buf, "%" PRId64, s->adamw->step);
    }
    st_writer_meta(w, "optimizer_step", buf);
    for (int e = 0; s->ema && e < s->ema->n; e++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "ema%d", e);
        add_store(w, ps, prefix, s->ema->params[e], names, &k);
        snprintf(buf, sizeof buf, "ema%d_halflife_kimg", e);
        char v[32];
        snprintf(v, sizeof v, "%.9g", s->ema->halflife_kimg[e]);
        st_writer_meta(w, buf, v);
    }
    st_writer_meta(w, "format", CKPT_FORMAT);
    snprintf(buf, sizeof buf, "%" PRId64, s->step);
    st_writer_meta(w, "step", buf);
    snprintf(buf, sizeof buf, "%" PRIu64, s->seed);
    st_writer_meta(w, "seed", buf);
    if (s->config_yaml) st_writer_meta(w, "config", s->config_yaml);
    snprintf(buf, sizeof buf, "%" PRId64, s->data_epoch);
    st_writer_meta(w, "data_epoch", buf);
    snprintf(buf, sizeof buf, "%" PRId64, s->data_index);
    st_writer_meta(w, "data_index", buf);
    int rc = st_writer_save(w, path);
    st_writer_free(w);
    for (int i = 0; i < k; i++) free(names[i]);
    free(names);
    return rc;
}

static int meta_int64(const SafeTensors *st, const char *key, int64_t *out) {
    const char *v = safetensors_meta(st, key);
    char *end;
    if (!v || !*v) {
        core_set_error("%s: checkpoint metadata has no '%s'", st->path, key);
        return -1;
    }
    long long x = strtoll(v, &end, 10);
    if (*end || x < 0) {
        core_set_error("%s: checkpoint metadata '%s' = '%s' is not a count", st->path, key, v);
        return -1;
    }
    *out = x;
    return 0;
}

int pmf_checkpoint_load(const char *path, PmfTrainState *s) {
    SafeTensors st;
    if (safetensors_open(&st, path)) return -1;
    int rc = -1;
    const char *fmt = safetensors_meta(&st, "format"), *opt = safetensors_meta(&st, "optimizer");
    const ParamStore *ps = &s->model->ps;
    int64_t step, opt_step, seed;
    if (!fmt || strcmp(fmt, CKPT_FORMAT)) {
        core_set_error("%s: not a pmf checkpoint (format '%s', expected '%s')", path, fmt ? fmt : "none", CKPT_FORMAT);
        goto done;
    }
    if (!opt || strcmp(opt, s->muon ? "muon" : "adamw")) {
        core_set_error("%s: written with optimizer '%s', this run uses '%s'", path, opt ? opt : "?", s->muon ? "muon" : "adamw");
        goto done;
    }
    if (meta_int64(&st, "step", &step) || meta_int64(&st, "optimizer_step", &opt_step) || meta_int64(&st, "seed", &seed)) goto done;
    if ((uint64_t)seed != s->seed) {
        core_set_error("%s: written by a run with seed %lld, this run has seed %llu", path, (long long)seed, (unsigned long long)s->seed);
        goto done;
    }
    if (read_store(&st, ps, "model", ps->data)) goto done;
    if (s->muon) {
        if (read_store(&st, ps, "opt/mu", s->muon->mu) || read_store(&st, ps, "opt/nu", s->muon->nu)) goto done;
        s->muon->step = opt_step;
    } else {
        if (read_store(&st, ps, "opt/m", s->adamw->m) || read_store(&st, ps, "opt/v", s->adamw->v)) goto done;
        s->adamw->step = opt_step;
    }
    for (int e = 0; s->ema && e < s->ema->n; e++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, "ema%d", e);
        if (read_store(&st, ps, prefix, s->ema->params[e])) goto done;
    }
    s->step = step;
    s->data_epoch = s->data_index = 0;   // absent in checkpoints of the built-in data's runs
    if (safetensors_meta(&st, "data_epoch") &&
        (meta_int64(&st, "data_epoch", &s->data_epoch) || meta_int64(&st, "data_index", &s->data_index)))
        goto done;
    rc = 0;
done:
    safetensors_close(&st);
    return rc;
}
