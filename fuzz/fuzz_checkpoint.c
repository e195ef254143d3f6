// fuzz/fuzz_checkpoint.c: libFuzzer target for the training checkpoint loader
// (pmf/checkpoint.c: safetensors, then the metadata and every tensor checked against the run's
// model, optimizer and EMAs). The state is a model smaller than "tiny" with Muon and two EMAs,
// built once.
// Any input must load (0) or be refused with a message naming the file, never touching memory
// outside the state's buffers.
#include "pmf/pmf.h"

#include "core/core.h"
#include "fuzz/fuzz_common.h"

#define FUZZ_CKPT_SEED 42

typedef struct FuzzCkptState {
    PmfModel model;
    Muon muon;
    PmfEma ema;
    PmfTrainState state;
} FuzzCkptState;

// The state a checkpoint is loaded into (and the seeds are written from).
static FuzzCkptState *fuzz_ckpt_state(void) {
    static FuzzCkptState *s;
    if (s) return s;
    s = calloc(1, sizeof *s);
    PmfConfig mc;
    FUZZ_CHECK(pmf_preset("tiny", &mc) == 0);
    // Smaller still than "tiny", so a checkpoint (5 copies of the weights) is a small input.
    mc.img_size = 4, mc.patch = 2, mc.dim = 8, mc.heads = 2, mc.mlp_hidden = 8, mc.bottleneck = 4;
    mc.num_classes = 2;
    FUZZ_CHECK(pmf_config_check(&mc) == 0);
    pmf_model_init(&s->model, &mc, FUZZ_CKPT_SEED);
    uint8_t *part = pmf_muon_partition(&s->model);
    muon_init(&s->muon, &s->model.ps, part, 1e-3f, 0.95f, 0.9f, 0.95f, 1e-8f);
    free(part);
    const float halflives[2] = {500, 1000};
    pmf_ema_init(&s->ema, &s->model.ps, halflives, 2);
    PmfTrainState st = {&s->model, &s->muon, NULL, &s->ema, 0, FUZZ_CKPT_SEED, "model:\n  model_str: tiny\n", 0, 0};
    s->state = st;
    return s;
}

static int fuzz_checkpoint(const uint8_t *data, size_t size) {
    FuzzCkptState *s = fuzz_ckpt_state();
    char path[256];
    fuzz_write_file(path, "input.safetensors", data, size);
    int rc = pmf_checkpoint_load(path, &s->state);
    if (rc != 0) FUZZ_CHECK(strstr(core_last_error(), path) != NULL);
    else FUZZ_CHECK(s->state.step >= 0 && s->muon.step >= 0 && s->state.data_epoch >= 0 && s->state.data_index >= 0);
    unlink(path);
    return rc == 0;
}

FUZZ_ENTRY(fuzz_checkpoint)
