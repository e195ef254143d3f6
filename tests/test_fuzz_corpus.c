// tests/test_fuzz_corpus.c: runs the fuzzers' seed sets (tests/corpus/<target>/) through each
// fuzz target's own checks, so CI covers them (under ASan too) without clang or libFuzzer:
// safetensors, npz, npy, idx, png, shard, config (with its round trip) and checkpoint. (The jpeg
// corpus is replayed by test_dataset_prepare.c.) ok_* files must parse, bad_* files must be
// refused with a message; anything else (saved crash inputs) must only not crash.
#include "harness.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz/fuzz_safetensors.c"
#define PMF_FUZZ_REPLAY   // the targets below without their libFuzzer entry points
#include "fuzz/fuzz_checkpoint.c"
#include "fuzz/fuzz_config.c"
#include "fuzz/fuzz_idx.c"
#include "fuzz/fuzz_npy.c"
#include "fuzz/fuzz_npz.c"
#include "fuzz/fuzz_png.c"
#include "fuzz/fuzz_shard.c"

#define CORPUS_DIR PMF_SOURCE_DIR "/tests/corpus/safetensors"


// Every file of tests/corpus/<dir>/ through `fn` (which aborts on a broken promise); ok_* must be
// accepted, bad_* refused; at least min_ok and min_bad of them, so an emptied folder fails.
static void replay(const char *dir, int (*fn)(const uint8_t *, size_t), int min_ok, int min_bad) {
    char root[1024];
    snprintf(root, sizeof root, "%s/tests/corpus/%s", PMF_SOURCE_DIR, dir);
    DIR *d = opendir(root);
    ck_assert_msg(d != NULL, "cannot open %s", root);
    int n_ok = 0, n_bad = 0, n_other = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.' || strcmp(name, "README.md") == 0) continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", root, name);
        size_t n;
        unsigned char *b = test_read_file(path, &n);
        int accepted = fn(b, n);
        if (strncmp(name, "ok_", 3) == 0) {
            ck_assert_msg(accepted, "%s/%s should be accepted: %s", dir, name, core_last_error());
            n_ok++;
        } else if (strncmp(name, "bad_", 4) == 0) {
            ck_assert_msg(!accepted, "%s/%s should be refused", dir, name);
            n_bad++;
        } else {
            n_other++;
        }
        free(b);
    }
    closedir(d);
    printf("corpus %s: %d ok, %d bad, %d other files\n", dir, n_ok, n_bad, n_other);
    ck_assert_int_ge(n_ok, min_ok);
    ck_assert_int_ge(n_bad, min_bad);
}

// safetensors: the target's checks (a refusal names the source), then the parse itself.
static int safetensors_accepts(const uint8_t *data, size_t size) {
    LLVMFuzzerTestOneInput(data, size);   // aborts on a broken invariant
    SafeTensors st;
    if (safetensors_parse(&st, data, size, "corpus-file") != 0) return 0;
    int ok = st.file_size > 0;
    safetensors_close(&st);
    return ok;
}

START_TEST(corpus_files) { replay("safetensors", safetensors_accepts, 3, 5); }
END_TEST

// The parsed content of two seed files, so a reader that "parses" by skipping work fails here.
START_TEST(corpus_contents) {
    SafeTensors st;
    ck_assert_msg(safetensors_open(&st, CORPUS_DIR "/ok_mixed_dtypes_meta.safetensors") == 0, "%s", core_last_error());
    ck_assert_int_eq(st.n_entries, 5);
    ck_assert_str_eq(safetensors_meta(&st, "step"), "3");
    float h[4], d[2];
    const int s22[2] = {2, 2}, s2[1] = {2};
    ck_assert_int_eq(safetensors_read_f32(&st, "h", 2, s22, h), 0);
    ck_assert(h[0] == 1.0f && h[1] == -2.0f && h[2] > 1e30f && h[3] == 0x1p-24f);
    ck_assert_int_eq(safetensors_read_f32(&st, "d", 1, s2, d), 0);
    ck_assert(d[0] == 1.5f && d[1] == (float)-0.1);
    safetensors_close(&st);
    ck_assert_int_eq(safetensors_open(&st, CORPUS_DIR "/bad_overlap_hidden.safetensors"), -1);
    ck_assert_msg(strstr(core_last_error(), "overlap") != NULL, "%s", core_last_error());
}
END_TEST

START_TEST(corpus_npz) { replay("npz", fuzz_npz, 5, 5); }
END_TEST
START_TEST(corpus_npy) { replay("npy", fuzz_npy, 5, 4); }
END_TEST
START_TEST(corpus_idx) { replay("idx", fuzz_idx, 4, 4); }
END_TEST
START_TEST(corpus_png) { replay("png", fuzz_png, 8, 6); }
END_TEST
START_TEST(corpus_shard) { replay("shard", fuzz_shard, 3, 1); }
END_TEST
START_TEST(corpus_config) { replay("config", fuzz_config, 5, 5); }
END_TEST
START_TEST(corpus_checkpoint) { replay("checkpoint", fuzz_checkpoint, 2, 2); }
END_TEST

int main(void) {
    Suite *s = suite_create("fuzz_corpus");
    TCase *tc = tcase_create("safetensors");
    tcase_add_test(tc, corpus_files);
    tcase_add_test(tc, corpus_contents);
    suite_add_tcase(s, tc);
    TCase *readers = tcase_create("readers");
    tcase_add_test(readers, corpus_npz);
    tcase_add_test(readers, corpus_npy);
    tcase_add_test(readers, corpus_idx);
    tcase_add_test(readers, corpus_png);
    tcase_add_test(readers, corpus_shard);
    tcase_add_test(readers, corpus_config);
    tcase_add_test(readers, corpus_checkpoint);
    suite_add_tcase(s, readers);
    return run_suite(s);
}
