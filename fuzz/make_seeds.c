// fuzz/make_seeds.c: writes the seeds of the targets whose inputs come from pmf's own writers:
// tests/corpus/checkpoint/ (pmf_checkpoint_save of fuzz_checkpoint.c's tiny state) and
// tests/corpus/shard/ (ds_shard_writer). Deterministic; run once from the source root after
// building with -DPMF_FUZZ=ON:   build-fuzz/fuzz/make_seeds tests/corpus
// (tools/make_fuzz_corpus.py writes the npz, idx, png and config seeds.)
#define PMF_FUZZ_REPLAY
#include "fuzz/fuzz_checkpoint.c"

#include <sys/stat.h>

#include "dataset/dataset.h"

static void copy_prefix(const char *from, const char *to, double frac) {
    FILE *f = fopen(from, "rb");
    FUZZ_CHECK(f != NULL);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    long keep = (long)(n * frac);
    char *b = malloc((size_t)n);
    FUZZ_CHECK(b && fread(b, 1, (size_t)n, f) == (size_t)n);
    fclose(f);
    f = fopen(to, "wb");
    FUZZ_CHECK(f && fwrite(b, 1, (size_t)keep, f) == (size_t)keep);
    fclose(f);
    free(b);
}

static void shard(const char *path, int n, int res, int ch, int n_classes) {
    static const char *names[] = {"zero", "one", "two"};
    DsShardMeta m = {res, ch, 0, "fuzz-seed", "adm_center_crop", n_classes, names};
    DsShardWriter *w = ds_shard_writer_open(path, &m);
    FUZZ_CHECK(w != NULL);
    uint8_t *px = malloc((size_t)n * res * res * ch);
    int32_t *lab = malloc(sizeof(int32_t) * (size_t)n);
    for (int i = 0; i < n * res * res * ch; i++) px[i] = (uint8_t)(i * 37 + 11);
    for (int i = 0; i < n; i++) lab[i] = n_classes ? i % n_classes : i;
    FUZZ_CHECK(ds_shard_writer_add(w, px, lab, n) == 0);
    FUZZ_CHECK(ds_shard_writer_finish(w) == 0);
    free(px), free(lab);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: make_seeds CORPUS_DIR (tests/corpus)\n");
        return 2;
    }
    char p[1024], q[1024];
    snprintf(p, sizeof p, "%s/checkpoint", argv[1]);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/shard", argv[1]);
    mkdir(p, 0755);
    (void)fuzz_checkpoint;   // included for its state, not its entry point
    FuzzCkptState *s = fuzz_ckpt_state();
    s->state.step = 7, s->muon.step = 7;
    snprintf(p, sizeof p, "%s/checkpoint/ok_tiny_muon.safetensors", argv[1]);
    FUZZ_CHECK(pmf_checkpoint_save(p, &s->state) == 0);
    snprintf(q, sizeof q, "%s/checkpoint/bad_truncated.safetensors", argv[1]);
    copy_prefix(p, q, 0.6);
    s->state.seed = 7;   // a checkpoint of another run
    snprintf(p, sizeof p, "%s/checkpoint/bad_other_seed.safetensors", argv[1]);
    FUZZ_CHECK(pmf_checkpoint_save(p, &s->state) == 0);
    s->state.seed = FUZZ_CKPT_SEED;
    s->state.data_epoch = 2, s->state.data_index = 96;
    snprintf(p, sizeof p, "%s/checkpoint/ok_tiny_data_position.safetensors", argv[1]);
    FUZZ_CHECK(pmf_checkpoint_save(p, &s->state) == 0);

    snprintf(p, sizeof p, "%s/shard/ok_3x8x8x1.h5", argv[1]);
    shard(p, 3, 8, 1, 3);
    snprintf(q, sizeof q, "%s/shard/bad_truncated.h5", argv[1]);
    copy_prefix(p, q, 0.5);
    snprintf(p, sizeof p, "%s/shard/ok_2x4x4x3_no_classes.h5", argv[1]);
    shard(p, 2, 4, 3, 0);
    snprintf(p, sizeof p, "%s/shard/ok_empty.h5", argv[1]);
    shard(p, 0, 4, 1, 2);
    printf("seeds written under %s/checkpoint and %s/shard\n", argv[1], argv[1]);
    return 0;
}
