// tests/test_dataset_stream.c: the shard stream on synthetic shards whose pixels and labels encode
// each image's global index, so every batch can be checked against a closed form: each epoch is a
// permutation (no image lost or repeated), pixels land in NCHW as x / 127.5 - 1 (mirrored when
// flipped), ranks are disjoint, the order depends on the seed only, and a saved position restored
// in a fresh reader gives the same batches as the reader that kept going.
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dataset/dataset.h"

#define R 8     // resolution
#define CH 3
#define TOTAL 150
static const int shard_sizes[] = {37, 50, 0, 23, 40};
#define N_SHARDS 5

static char dir[256];

static uint8_t pixel(int g, int y, int x, int c) { return (uint8_t)((g * 7 + y * 29 + x * 3 + c * 101) & 255); }

static void make_shards(void) {
    snprintf(dir, sizeof dir, "/tmp/pmf_stream_XXXXXX");
    ck_assert(mkdtemp(dir) != NULL);
    int g = 0;
    uint8_t *img = malloc((size_t)R * R * CH * 64);
    int32_t lab[64];
    for (int k = 0; k < N_SHARDS; k++) {
        char p[512];
        snprintf(p, sizeof p, "%s/shard-%05d.h5", dir, k);
        DsShardMeta m = {.resolution = R, .channels = CH, .first_index = g, .source = "test", .crop_method = "none"};
        DsShardWriter *w = ds_shard_writer_open(p, &m);
        ck_assert_msg(w != NULL, "%s", core_last_error());
        for (int i = 0; i < shard_sizes[k]; i++, g++) {
            for (int y = 0; y < R; y++)
                for (int x = 0; x < R; x++)
                    for (int c = 0; c < CH; c++) img[(size_t)i * R * R * CH + (y * R + x) * CH + c] = pixel(g, y, x, c);
            lab[i] = g;
        }
        ck_assert_int_eq(ds_shard_writer_add(w, img, lab, shard_sizes[k]), 0);
        ck_assert_int_eq(ds_shard_writer_finish(w), 0);
    }
    ck_assert_int_eq(g, TOTAL);
    free(img);
}

static void remove_shards(void) {
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}

// Checks image b of a batch against the closed form; returns 1 if it is mirrored.
static int check_image(const float *x, int g) {
    int same = 1, mirrored = 1;
    for (int c = 0; c < CH; c++)
        for (int y = 0; y < R; y++)
            for (int xx = 0; xx < R; xx++) {
                float v = x[(c * R + y) * R + xx];
                same &= v == pixel(g, y, xx, c) / 127.5f - 1.0f;
                mirrored &= v == pixel(g, y, R - 1 - xx, c) / 127.5f - 1.0f;
            }
    ck_assert_msg(same || mirrored, "image %d: pixels match neither the image nor its mirror", g);
    return !same;
}

static DsStream *open_stream(int batch, uint64_t seed, int buffer, int flip, int rank, int world, const DsStreamPos *p) {
    DsStreamConfig cfg = {.dir = dir, .batch = batch, .seed = seed, .shuffle_buffer = buffer, .flip = flip,
                          .rank = rank, .world = world, .prefetch = 3};
    DsStream *s = ds_stream_open(&cfg, p);
    ck_assert_msg(s != NULL, "%s", core_last_error());
    return s;
}

// Reads one epoch's labels (per_epoch / batch batches) into lab; checks pixels; counts flips.
static int read_epoch(DsStream *s, int batch, int *lab, int *n_flipped) {
    int64_t per;
    ds_stream_shape(s, NULL, NULL, NULL, &per);
    int nb = (int)(per / batch), n = 0;
    float *x = malloc(sizeof(float) * (size_t)batch * CH * R * R);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)batch);
    for (int b = 0; b < nb; b++) {
        ck_assert_msg(ds_stream_next(s, x, y) == 0, "%s", core_last_error());
        for (int i = 0; i < batch; i++) {
            ck_assert(y[i] >= 0 && y[i] < TOTAL);
            int f = check_image(x + (size_t)i * CH * R * R, y[i]);
            if (n_flipped) *n_flipped += f;
            else ck_assert_msg(!f, "image %d flipped with flip off", y[i]);
            lab[n++] = y[i];
        }
    }
    free(x);
    free(y);
    return n;
}

START_TEST(epochs_are_permutations) {
    make_shards();
    DsStream *s = open_stream(10, 42, 16, 0, 0, 1, NULL);
    int c, h, w;
    int64_t per;
    ds_stream_shape(s, &c, &h, &w, &per);
    ck_assert(c == CH && h == R && w == R && per == TOTAL);
    int e0[TOTAL], e1[TOTAL];
    ck_assert_int_eq(read_epoch(s, 10, e0, NULL), TOTAL);
    ck_assert_int_eq(read_epoch(s, 10, e1, NULL), TOTAL);
    DsStreamPos p = ds_stream_tell(s);
    ck_assert(p.epoch == 1 && p.index == TOTAL);
    ds_stream_close(s);
    int seen0[TOTAL] = {0}, seen1[TOTAL] = {0}, in_place = 0, same_epochs = 1;
    for (int i = 0; i < TOTAL; i++) {
        seen0[e0[i]]++;
        seen1[e1[i]]++;
        in_place += e0[i] == i;
        same_epochs &= e0[i] == e1[i];
    }
    for (int i = 0; i < TOTAL; i++) ck_assert_msg(seen0[i] == 1 && seen1[i] == 1, "image %d seen %d / %d times", i, seen0[i], seen1[i]);
    ck_assert_msg(in_place < 15, "%d of %d images in their stored place: not shuffled", in_place, TOTAL);
    ck_assert_msg(!same_epochs, "two epochs in the same order");
    // Same seed: same order. Another seed: another order.
    int again[TOTAL], other[TOTAL];
    s = open_stream(10, 42, 16, 0, 0, 1, NULL);
    read_epoch(s, 10, again, NULL);
    ds_stream_close(s);
    ck_assert(memcmp(again, e0, sizeof e0) == 0);
    s = open_stream(10, 43, 16, 0, 0, 1, NULL);
    read_epoch(s, 10, other, NULL);
    ds_stream_close(s);
    ck_assert(memcmp(other, e0, sizeof e0) != 0);
    // Shuffle buffer of one: shards in a random order, each read front to back.
    int seq[TOTAL], breaks = 0;
    s = open_stream(10, 7, 1, 0, 0, 1, NULL);
    read_epoch(s, 10, seq, NULL);
    ds_stream_close(s);
    for (int i = 1; i < TOTAL; i++) breaks += seq[i] != seq[i - 1] + 1;
    ck_assert_msg(breaks <= N_SHARDS - 1, "%d breaks in a buffer-1 order", breaks);
    remove_shards();
}
END_TEST

START_TEST(flip_and_ranks) {
    make_shards();
    int lab[TOTAL], flipped = 0;
    DsStream *s = open_stream(5, 1, 32, 1, 0, 1, NULL);
    read_epoch(s, 5, lab, &flipped);
    ds_stream_close(s);
    ck_assert_msg(flipped > TOTAL / 4 && flipped < 3 * TOTAL / 4, "%d of %d flipped (p = 0.5)", flipped, TOTAL);
    // world 4: 37 per rank (drop-last), disjoint.
    int seen[TOTAL] = {0}, total = 0;
    for (int r = 0; r < 4; r++) {
        s = open_stream(37, 3, 8, 0, r, 4, NULL);
        int64_t per;
        ds_stream_shape(s, NULL, NULL, NULL, &per);
        ck_assert_int_eq(per, TOTAL / 4);
        total += read_epoch(s, 37, lab, NULL);
        for (int i = 0; i < 37; i++) seen[lab[i]]++;
        ds_stream_close(s);
    }
    ck_assert_int_eq(total, 148);
    for (int i = 0; i < TOTAL; i++) ck_assert_msg(seen[i] <= 1, "image %d given to two ranks", i);
    remove_shards();
}
END_TEST

// Read k batches, save the position, read m more; a fresh reader restored there reads the same m.
START_TEST(resume_position) {
    make_shards();
    const int B = 8, k = 15, m = 9;   // 18 batches per epoch: the m batches cross into epoch 1
    for (int variant = 0; variant < 2; variant++) {
        int flip = variant, rank = variant, world = variant + 1;
        size_t xs = (size_t)B * CH * R * R;
        float *x = malloc(sizeof(float) * xs * m), *x2 = malloc(sizeof(float) * xs);
        int32_t *y = malloc(sizeof(int32_t) * (size_t)B * m), y2[8];
        DsStream *s = open_stream(B, 99, 20, flip, rank, world, NULL);
        for (int i = 0; i < k; i++) ck_assert(ds_stream_next(s, x, y) == 0);
        DsStreamPos pos = ds_stream_tell(s);
        for (int i = 0; i < m; i++) ck_assert(ds_stream_next(s, x + xs * i, y + (size_t)B * i) == 0);
        DsStreamPos end = ds_stream_tell(s);
        ds_stream_close(s);
        ck_assert_int_eq(pos.epoch, variant == 0 ? 0 : 1);
        ck_assert_int_ge(end.epoch, 1);
        DsStream *t = open_stream(B, 99, 20, flip, rank, world, &pos);
        for (int i = 0; i < m; i++) {
            ck_assert(ds_stream_next(t, x2, y2) == 0);
            ck_assert_msg(memcmp(y2, y + (size_t)B * i, sizeof y2) == 0, "variant %d batch %d: labels differ", variant, i);
            ck_assert_msg(memcmp(x2, x + xs * i, sizeof(float) * xs) == 0, "variant %d batch %d: pixels differ", variant, i);
        }
        DsStreamPos end2 = ds_stream_tell(t);
        ck_assert(end2.epoch == end.epoch && end2.index == end.index);
        ds_stream_close(t);
        free(x);
        free(x2);
        free(y);
    }
    remove_shards();
}
END_TEST

START_TEST(bad_folders) {
    make_shards();
    DsStreamConfig cfg = {.dir = dir, .batch = 200};
    ck_assert(ds_stream_open(&cfg, NULL) == NULL);   // fewer images than a batch
    ck_assert_msg(strstr(core_last_error(), "fewer than one batch"), "%s", core_last_error());
    char p[512];
    snprintf(p, sizeof p, "%s/shard-00009.h5", dir);   // a foreign file among the shards
    FILE *f = fopen(p, "wb");
    fputs("not hdf5 at all, just text that is long enough", f);
    fclose(f);
    cfg.batch = 4;
    ck_assert(ds_stream_open(&cfg, NULL) == NULL);
    ck_assert_msg(strstr(core_last_error(), p), "%s", core_last_error());
    remove(p);
    cfg.dir = "/nonexistent/pmf";
    ck_assert(ds_stream_open(&cfg, NULL) == NULL);
    ck_assert_msg(strstr(core_last_error(), "/nonexistent/pmf"), "%s", core_last_error());
    remove_shards();
}
END_TEST

int main(void) {
    Suite *s = suite_create("dataset_stream");
    TCase *tc = tcase_create("stream");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, epochs_are_permutations);
    tcase_add_test(tc, flip_and_ranks);
    tcase_add_test(tc, resume_position);
    tcase_add_test(tc, bad_folders);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
