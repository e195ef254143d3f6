// tests/test_eval_shard_reader.c: eval/ reads shards only through the EvalShardReader it is given.
// A fake reader serves images from memory (no HDF5, no dataset/), so these tests see exactly what
// eval asks of a reader and what it makes of the answers:
// - a shard file and a folder of shards (shard-*.h5) give every image once, in order (the kept
//   features equal those of the fake's pixels computed here), with the reader's labels, in reads
//   no larger than the batch, and every shard opened is closed;
// - the reader's errors (open, read) reach the caller with the reader's message, and nothing is
//   left open; a shard with no images, mixed geometries, no reader at all and a file the reader
//   does not claim are refused with a message naming the file.
// dataset/'s real reader behind this interface is tested in test_eval (cli/eval_readers.c).
#include "harness.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "eval/eval.h"

#define FAKE_DIM 3

// One in-memory shard, found by the end of its path.
typedef struct FakeShard {
    const char *suffix;       // "/a.h5", "/shard-00000.h5", ...
    int64_t n;
    int h, w, c;
    const int32_t *labels;    // NULL: none
    int64_t fail_at;          // a read reaching this image fails (-1: never)
    int64_t first;            // pixel of image i is fake_px(first + i, k)
} FakeShard;

typedef struct FakeReader {
    FakeShard *shards;
    int n_shards;
    int opens, closes, claims_asked;
    int64_t largest_read, images_read;
} FakeReader;

typedef struct FakeOpen {
    FakeReader *r;
    FakeShard *s;
    char path[512];
} FakeOpen;

static uint8_t fake_px(int64_t i, int64_t k) { return (uint8_t)((i * 37 + k * 11 + (i * k) % 7) & 255); }

static FakeShard *fake_find(FakeReader *r, const char *path) {
    size_t n = strlen(path);
    for (int i = 0; i < r->n_shards; i++) {
        size_t k = strlen(r->shards[i].suffix);
        if (n >= k && !strcmp(path + n - k, r->shards[i].suffix)) return &r->shards[i];
    }
    return NULL;
}

static int fake_claims(void *ctx, const char *path) {
    FakeReader *r = ctx;
    r->claims_asked++;
    return fake_find(r, path) != NULL;
}

static void *fake_open(void *ctx, const char *path, EvalShardInfo *info) {
    FakeReader *r = ctx;
    FakeShard *s = fake_find(r, path);
    if (!s) {
        core_set_error("fake: shard '%s' is not one of mine", path);
        return NULL;
    }
    FakeOpen *o = calloc(1, sizeof *o);
    o->r = r, o->s = s;
    snprintf(o->path, sizeof o->path, "%s", path);
    info->n = s->n, info->h = s->h, info->w = s->w, info->c = s->c, info->labels = s->labels;
    r->opens++;
    return o;
}

static int fake_read(void *shard, int64_t first, int64_t n, uint8_t *dst) {
    FakeOpen *o = shard;
    FakeShard *s = o->s;
    ck_assert_msg(first >= 0 && n >= 1 && first + n <= s->n, "eval asked for images %lld+%lld of %lld", (long long)first,
                  (long long)n, (long long)s->n);
    if (s->fail_at >= first && s->fail_at < first + n) {
        core_set_error("fake: shard '%s': image %lld cannot be read", o->path, (long long)s->fail_at);
        return -1;
    }
    int64_t img = (int64_t)s->h * s->w * s->c;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < img; k++) dst[i * img + k] = fake_px(s->first + first + i, k);
    if (n > o->r->largest_read) o->r->largest_read = n;
    o->r->images_read += n;
    return 0;
}

static void fake_close(void *shard) {
    FakeOpen *o = shard;
    o->r->closes++;
    free(o);
}

static EvalShardReader fake_reader(FakeReader *r) {
    EvalShardReader e = {r, fake_claims, fake_open, fake_read, fake_close};
    return e;
}

// eval's readers with the fake shard reader and no image decoder (NULL: no shard reader either).
static EvalReaders with_shards(const EvalShardReader *reader) {
    EvalReaders rd = {reader, NULL};
    return rd;
}

// Features of one image: its first byte, its last byte and its mean, all / 255.
static void image_features(const uint8_t *im, int64_t bytes, float *f) {
    double sum = 0;
    for (int64_t k = 0; k < bytes; k++) sum += im[k];
    f[0] = im[0] / 255.0f, f[1] = im[bytes - 1] / 255.0f, f[2] = (float)(sum / bytes / 255.0);
}

static int fake_features(void *ctx, const uint8_t *px, int n, int H, int W, int C, float *feat, float *logits) {
    int64_t bytes = (int64_t)H * W * C;
    for (int i = 0; i < n; i++) image_features(px + i * bytes, bytes, feat + i * FAKE_DIM);
    return 0;
}

// A file at dir/name (eval checks that a path exists before asking the reader).
static void touch(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
    FILE *f = fopen(buf, "wb");
    ck_assert(f && fclose(f) == 0);
}

// The kept features of `path` read through `reader` must be those of images first..first+n-1 of
// fake_px, and its mean their mean.
static void check_features(const char *path, const EvalShardReader *reader, int64_t first, int64_t n, int64_t bytes,
                           EvalRunResult *r) {
    EvalFeatureNet net = {"fake", FAKE_DIM, 0, fake_features, NULL};
    EvalRunConfig cfg;
    eval_run_config_default(&cfg);
    cfg.batch = 4, cfg.progress = 0, cfg.keep_features = 1;
    EvalReaders rd = with_shards(reader);
    ck_assert_msg(eval_stats_from_path(path, &rd, &net, &cfg, r) == 0, "%s", core_last_error());
    ck_assert_int_eq(r->n_images, n);
    uint8_t *im = malloc((size_t)bytes);
    float *want = malloc((size_t)n * FAKE_DIM * sizeof(float));
    double mu[FAKE_DIM] = {0};
    for (int64_t i = 0; i < n; i++) {
        for (int64_t k = 0; k < bytes; k++) im[k] = fake_px(first + i, k);
        image_features(im, bytes, want + i * FAKE_DIM);
        for (int a = 0; a < FAKE_DIM; a++) mu[a] += want[i * FAKE_DIM + a] / (double)n;
    }
    ck_assert_msg(!memcmp(r->features, want, (size_t)n * FAKE_DIM * sizeof(float)), "%s: features differ", path);
    ck_assert(compare_rel_d("mean through the fake reader", r->stats.mu, mu, FAKE_DIM) < 1e-12);
    free(im), free(want);
}

START_TEST(test_shards_come_from_the_reader) {
    char dir[] = "/tmp/pmf_test_eval_reader_XXXXXX";
    ck_assert(mkdtemp(dir));
    char one[1100], folder[1100], part0[1200], part1[1200];
    touch(one, sizeof one, dir, "a.h5");
    snprintf(folder, sizeof folder, "%s/set", dir);
    ck_assert(mkdir(folder, 0700) == 0);
    touch(part0, sizeof part0, folder, "shard-00000.h5");
    touch(part1, sizeof part1, folder, "shard-00001.h5");
    int32_t la[10], lb[7];
    for (int i = 0; i < 10; i++) la[i] = 100 + i;
    for (int i = 0; i < 7; i++) lb[i] = 200 + i;
    // a.h5: 10 gray 5x4 images; the folder: 6 + 7 RGB 3x3 images (continuing one numbering)
    FakeShard shards[3] = {{"/a.h5", 10, 5, 4, 1, la, -1, 0},
                           {"/shard-00000.h5", 6, 3, 3, 3, NULL, -1, 50},
                           {"/shard-00001.h5", 7, 3, 3, 3, lb, -1, 56}};
    FakeReader fr = {shards, 3, 0, 0, 0, 0, 0};
    EvalShardReader reader = fake_reader(&fr);

    EvalRunResult r;
    check_features(one, &reader, 0, 10, 5 * 4 * 1, &r);
    ck_assert_msg(r.labels && !memcmp(r.labels, la, sizeof la), "the reader's labels were not passed on");
    eval_run_result_free(&r);
    ck_assert_int_eq(fr.images_read, 10);
    ck_assert_msg(fr.largest_read <= 4, "a read of %lld images for batches of 4", (long long)fr.largest_read);
    ck_assert_int_eq(fr.opens, 1);
    ck_assert_int_eq(fr.closes, 1);

    // the folder: images 50..62 in name order; one shard without labels: the set has none
    check_features(folder, &reader, 50, 13, 3 * 3 * 3, &r);
    ck_assert_msg(r.labels == NULL, "labels for a set whose first shard has none");
    eval_run_result_free(&r);
    shards[1].labels = lb;   // now both have labels (the first 6 of lb): concatenated in order
    check_features(folder, &reader, 50, 13, 3 * 3 * 3, &r);
    ck_assert(r.labels && !memcmp(r.labels, lb, 6 * sizeof(int32_t)) && !memcmp(r.labels + 6, lb, sizeof lb));
    eval_run_result_free(&r);
    ck_assert_int_eq(fr.opens, 5);
    ck_assert_int_eq(fr.closes, 5);

    // eval_source_open/next directly: one batch never spans two shards
    EvalReaders rd = with_shards(&reader);
    EvalSource *src = eval_source_open(folder, &rd);
    ck_assert_msg(src && eval_source_count(src) == 13 && !strcmp(eval_source_kind(src), "hdf5-shards"), "%s",
                  core_last_error());
    int n, H, W, C, sizes[8], calls = 0;
    while (eval_source_next(src, 4, &n, &H, &W, &C) && calls < 8) sizes[calls++] = n;
    ck_assert_int_eq(n, 0);
    int want_sizes[] = {4, 2, 4, 3};
    ck_assert_int_eq(calls, 4);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(sizes[i], want_sizes[i]);
    eval_source_close(src);
    ck_assert_int_eq(fr.opens, fr.closes);

    unlink(part0), unlink(part1), rmdir(folder), unlink(one), rmdir(dir);
}
END_TEST

// Runs path through reader and expects -1 with every string of want in the message.
static void expect_refused(const char *path, const EvalShardReader *reader, const char *want1, const char *want2) {
    EvalFeatureNet net = {"fake", FAKE_DIM, 0, fake_features, NULL};
    EvalRunConfig cfg;
    eval_run_config_default(&cfg);
    cfg.batch = 4, cfg.progress = 0, cfg.keep_features = 0;
    EvalRunResult r;
    EvalReaders rd = with_shards(reader);
    ck_assert_msg(eval_stats_from_path(path, &rd, &net, &cfg, &r) == -1, "'%s' was accepted", path);
    const char *msg = core_last_error();
    printf("refused: %s\n", msg);
    ck_assert_msg(strstr(msg, want1) && (!want2 || strstr(msg, want2)), "message for '%s': %s", path, msg);
}

START_TEST(test_reader_errors_reach_the_caller) {
    char dir[] = "/tmp/pmf_test_eval_reader_XXXXXX";
    ck_assert(mkdtemp(dir));
    char bad[1100], empty[1100], other[1100], folder[1100], part0[1200], part1[1200];
    touch(bad, sizeof bad, dir, "bad.h5");
    touch(empty, sizeof empty, dir, "empty.h5");
    touch(other, sizeof other, dir, "other.bin");
    snprintf(folder, sizeof folder, "%s/mixed", dir);
    ck_assert(mkdir(folder, 0700) == 0);
    touch(part0, sizeof part0, folder, "shard-00000.h5");
    touch(part1, sizeof part1, folder, "shard-00001.h5");
    FakeShard shards[4] = {{"/bad.h5", 9, 2, 2, 3, NULL, 6, 0},   // image 6 cannot be read
                           {"/empty.h5", 0, 2, 2, 3, NULL, -1, 0},
                           {"/shard-00000.h5", 3, 2, 2, 3, NULL, -1, 0},
                           {"/shard-00001.h5", 3, 4, 4, 3, NULL, -1, 0}};
    FakeReader fr = {shards, 4, 0, 0, 0, 0, 0};
    EvalShardReader reader = fake_reader(&fr);

    expect_refused(bad, &reader, "fake: shard", bad);   // the reader's own message, unchanged
    expect_refused(empty, &reader, "holds no images", empty);
    expect_refused(folder, &reader, part0, part1);      // two geometries: both shards named
    ck_assert_int_eq(fr.opens, 4);                      // each opened shard, the empty one too,
    ck_assert_int_eq(fr.opens, fr.closes);              // is closed again, on every error path
    int asked = fr.claims_asked;
    expect_refused(other, &reader, other, "neither");   // not claimed: eval's own message
    ck_assert_int_eq(fr.claims_asked, asked + 1);
    // no reader: shards are refused, by name, not read some other way
    expect_refused(bad, NULL, bad, "no shard reader");
    expect_refused(folder, NULL, folder, "no shard reader");
    ck_assert_int_eq(fr.opens, 4);

    unlink(part0), unlink(part1), rmdir(folder);
    unlink(bad), unlink(empty), unlink(other), rmdir(dir);
}
END_TEST

int main(void) {
    Suite *s = suite_create("eval_shard_reader");
    TCase *tc = tcase_create("eval_shard_reader");
    tcase_add_test(tc, test_shards_come_from_the_reader);
    tcase_add_test(tc, test_reader_errors_reach_the_caller);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
