// fuzz/fuzz_config.c: libFuzzer target for the YAML training configuration (pmf/train_config.c):
// load, then finish (preset resolution and cross-checks). Any input must be refused with a
// message (naming the file when the YAML or a key is wrong), or resolve to a configuration that
// passes the round trip a run depends on: written out as YAML (as in config.yaml and in every
// checkpoint), it loads back and resolves to the same configuration, whose YAML is the same text.
#include "pmf/pmf.h"

#include "core/core.h"
#include <string.h>
#include "fuzz/fuzz_common.h"

static int fuzz_config(const uint8_t *data, size_t size) {
    char path[256];
    fuzz_write_file(path, "input.yaml", data, size);
    PmfTrainConfig c;
    pmf_train_config_default(&c);
    if (pmf_train_config_load(&c, path) != 0) {
        FUZZ_CHECK(strstr(core_last_error(), path) != NULL);
        unlink(path);
        return 0;
    }
    unlink(path);
    if (pmf_train_config_finish(&c) != 0) {
        FUZZ_CHECK(core_last_error()[0] != 0);
        return 0;
    }
    char *y1 = pmf_train_config_yaml(&c);
    fuzz_write_file(path, "written.yaml", (const uint8_t *)y1, strlen(y1));
    PmfTrainConfig r;
    pmf_train_config_default(&r);
    int rc = pmf_train_config_load(&r, path);
    if (rc == 0) rc = pmf_train_config_finish(&r);
    if (rc != 0) fprintf(stderr, "round trip: the written config is refused: %s\n%s", core_last_error(), y1);
    FUZZ_CHECK(rc == 0);
    char *y2 = pmf_train_config_yaml(&r);
    if (strcmp(y1, y2)) fprintf(stderr, "round trip: written\n%s\nreads back as\n%s", y1, y2);
    FUZZ_CHECK(strcmp(y1, y2) == 0);
    FUZZ_CHECK(strcmp(r.model.name, c.model.name) == 0);   // the rest field by field, without padding
    const PmfConfig *a = &r.model, *b = &c.model;
    FUZZ_CHECK(a->img_size == b->img_size && a->channels == b->channels && a->patch == b->patch && a->dim == b->dim &&
               a->heads == b->heads && a->mlp_hidden == b->mlp_hidden && a->depth_shared == b->depth_shared &&
               a->depth_head == b->depth_head && a->bottleneck == b->bottleneck && a->num_classes == b->num_classes &&
               a->noise_scale == b->noise_scale && a->with_v_head == b->with_v_head && a->pred == b->pred &&
               a->precond == b->precond);
    free(y1), free(y2);
    unlink(path);
    return 1;
}

FUZZ_ENTRY(fuzz_config)
