// tests/test_dataset_idx.c: the idx reader on Debian's Fashion-MNIST files (counts, sizes and the
// first labels as published with the data set) and on broken files (clear errors, no crash).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "dataset/dataset.h"
#include "harness.h"

START_TEST(fashion_mnist_train_and_test) {
    IdxImages im;
    IdxLabels lb;
    ck_assert_msg(fashion_mnist_load(NULL, "train", &im, &lb) == 0, "%s", core_last_error());
    ck_assert_int_eq(im.n, 60000);
    ck_assert_int_eq(im.h, 28);
    ck_assert_int_eq(im.w, 28);
    // The first ten training labels of Fashion-MNIST (zalandoresearch/fashion-mnist).
    const int first[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    for (int i = 0; i < 10; i++) ck_assert_int_eq(lb.labels[i], first[i]);
    int count[10] = {0};
    for (int i = 0; i < lb.n; i++) count[lb.labels[i]]++;
    for (int k = 0; k < 10; k++) ck_assert_int_eq(count[k], 6000);   // balanced: 6000 per class
    idx_free_images(&im);
    idx_free_labels(&lb);
    ck_assert(fashion_mnist_load(NULL, "t10k", &im, &lb) == 0);
    ck_assert_int_eq(im.n, 10000);
    idx_free_images(&im);
    idx_free_labels(&lb);
}
END_TEST

static void write_file(const char *path, const unsigned char *b, size_t n, int gz) {
    if (gz) {
        gzFile f = gzopen(path, "wb");
        ck_assert(f != NULL);
        gzwrite(f, b, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        ck_assert(f != NULL);
        fwrite(b, 1, n, f);
        fclose(f);
    }
}

START_TEST(bad_idx_files) {
    char path[] = "/tmp/pmf_idx_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    IdxImages im;
    IdxLabels lb;
    // Plain (not gzip) 2 images of 2x2: accepted.
    unsigned char ok[16 + 8] = {0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8};
    write_file(path, ok, sizeof ok, 0);
    ck_assert_msg(idx_load_images(path, &im) == 0, "%s", core_last_error());
    ck_assert_int_eq(im.pixels[7], 8);
    idx_free_images(&im);
    // Truncated body.
    write_file(path, ok, sizeof ok - 3, 1);
    ck_assert_int_eq(idx_load_images(path, &im), -1);
    ck_assert_msg(strstr(core_last_error(), "truncated") && strstr(core_last_error(), path), "%s", core_last_error());
    // Wrong magic (a label file read as images).
    unsigned char lab[9] = {0, 0, 8, 1, 0, 0, 0, 1, 3};
    write_file(path, lab, sizeof lab, 1);
    ck_assert_int_eq(idx_load_images(path, &im), -1);
    ck_assert_msg(strstr(core_last_error(), "magic"), "%s", core_last_error());
    ck_assert_int_eq(idx_load_labels(path, &lb), 0);
    idx_free_labels(&lb);
    // Too short for a header; zero dimension.
    write_file(path, ok, 2, 0);
    ck_assert_int_eq(idx_load_images(path, &im), -1);
    unsigned char zero[16] = {0, 0, 8, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2};
    write_file(path, zero, sizeof zero, 0);
    ck_assert_int_eq(idx_load_images(path, &im), -1);
    ck_assert_msg(strstr(core_last_error(), "dimension"), "%s", core_last_error());
    // Missing file.
    unlink(path);
    ck_assert_int_eq(idx_load_images(path, &im), -1);
    ck_assert_msg(strstr(core_last_error(), "cannot open"), "%s", core_last_error());
}
END_TEST

int main(void) {
    Suite *s = suite_create("dataset_idx");
    TCase *tc = tcase_create("idx");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fashion_mnist_train_and_test);
    tcase_add_test(tc, bad_idx_files);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
