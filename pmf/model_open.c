// pmf/model_open.c: a model for inference from a file: a pmf_train checkpoint (raw weights or one
// of its EMAs) or an official pMF model converted by tools/convert_weights.py pmf (format
// "pmf-inference-1": the released weights under "model/", no EMAs, the architecture and the
// official evaluation settings in the same "config" YAML a checkpoint stores). Both build the
// same PmfModel: the converter maps the official pmfDiT onto pmf's names and every part of the
// official forward is pmf's own (tools/convert_pmf.py lists what was compared; the goldens of
// tools/goldens/cases_official_pmf.py prove it on the official code).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pmf/pmf.h"

// The file's stored configuration, parsed by the same loader as a config file.
static int config_from_file(const SafeTensors *st, PmfTrainConfig *cfg) {
    const char *yaml = safetensors_meta(st, "config");
    if (!yaml) {
        core_set_error("%s: metadata has no 'config' (neither a pmf_train checkpoint nor a converted pMF model)", st->path);
        return -1;
    }
    char tmp[] = "/tmp/pmf_model_config_XXXXXX";
    int fd = mkstemp(tmp);
    if (fd < 0) {
        core_set_error("cannot create a temporary file for the config of '%s'", st->path);
        return -1;
    }
    FILE *f = fdopen(fd, "w");
    fputs(yaml, f);
    fclose(f);
    pmf_train_config_default(cfg);
    int rc = pmf_train_config_load(cfg, tmp);
    unlink(tmp);
    if (rc == 0) rc = pmf_train_config_finish(cfg);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: its stored config: %s", st->path, core_last_error());
        core_set_error("%s", msg);
    }
    return rc;
}

int pmf_is_inference_file(const SafeTensors *st) {
    const char *fmt = safetensors_meta(st, "format");
    return fmt && !strcmp(fmt, PMF_INFERENCE_FORMAT);
}

int pmf_model_open(const char *path, int ema, PmfModel *m, PmfTrainConfig *cfg) {
    memset(m, 0, sizeof *m);
    // The config first (the file is read and let go), then the model without gradients, then the
    // file again for the weights: at most one copy of the file and one of the weights in memory
    // (B/16: 0.95 GB at the peak, not 1.4; H/32: 7.6 GB, not 11.4).
    if (pmf_file_config(path, cfg, NULL)) return -1;
    PmfConfig mc = cfg->model;
    mc.with_v_head = 0;   // inference builds the u-path only
    pmf_model_init(m, &mc, 0);
    params_drop_grads(&m->ps);
    SafeTensors st;
    if (safetensors_open(&st, path)) {
        pmf_model_free(m);
        return -1;
    }
    int inference = pmf_is_inference_file(&st);
    char prefix[16] = "model";
    if (ema >= 0 && !inference) snprintf(prefix, sizeof prefix, "ema%d", ema);   // a converted file has one set
    int rc = 0;
    for (int i = 0; i < m->ps.n && !rc; i++) {
        Tensor *t = &m->ps.tensors[i];
        char name[300];
        snprintf(name, sizeof name, "%s/%s", prefix, t->name);
        if (!safetensors_find(&st, name)) {
            core_set_error("%s: no tensor '%s'%s", path, name, ema >= 0 && !inference ? " (is there such an EMA? try --ema -1 for the raw weights)" : "");
            rc = -1;
        } else if (safetensors_read_f32(&st, name, t->ndim, t->shape, t->data)) rc = -1;
    }
    // A converted file holds exactly the model: anything else means another converter or version.
    for (int i = 0; inference && !rc && i < st.n_entries; i++) {
        const char *n = st.entries[i].name;
        if (strncmp(n, "model/", 6) || !params_find(&m->ps, n + 6)) {
            core_set_error("%s: unexpected tensor '%s' in a converted model", path, n);
            rc = -1;
        }
    }
    safetensors_close(&st);
    if (rc) pmf_model_free(m);
    return rc;
}

int pmf_file_config(const char *path, PmfTrainConfig *cfg, int *inference) {
    SafeTensors st;
    if (safetensors_open(&st, path)) return -1;
    int rc = config_from_file(&st, cfg);
    if (inference) *inference = pmf_is_inference_file(&st);
    safetensors_close(&st);
    return rc;
}
