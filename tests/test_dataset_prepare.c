// tests/test_dataset_prepare.c: decoding + the ADM centre crop against PIL (goldens written by
// tools/goldens/cases_crop.py from the files in tests/data/), the bad-image seed corpus
// (tests/corpus/jpeg/, through the fuzz target's own checks), pmf_prepare on a folder of JPEGs
// written here with libjpeg and on Fashion-MNIST (HDF5 layout checked with the HDF5 C API),
// resuming after an interruption, and the shard reader's errors on broken HDF5 files.
#include "harness.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <jpeglib.h>

#include "dataset/dataset.h"
#include "fuzz/fuzz_jpeg.c"

#define DATA_DIR PMF_SOURCE_DIR "/tests/data"
#define CORPUS_DIR PMF_SOURCE_DIR "/tests/corpus/jpeg"

// The uint8 tensor `name` of a golden file (safetensors U8), n bytes.
static const uint8_t *golden_u8(const SafeTensors *st, const char *name, int64_t n) {
    const StEntry *e = safetensors_find(st, name);
    ck_assert_msg(e != NULL && e->dtype == ST_U8 && e->numel == n, "golden %s: tensor '%s' missing or not %lld bytes",
                  st->path, name, (long long)n);
    return st->bytes + st->data_start + e->begin;
}

static int max_abs_diff(const uint8_t *a, const uint8_t *b, size_t n, size_t *where) {
    int worst = 0;
    for (size_t i = 0; i < n; i++) {
        int d = abs((int)a[i] - (int)b[i]);
        if (d > worst) worst = d, *where = i;
    }
    return worst;
}

static const char *crop_cases[] = {"rgb_300x200.jpg", "gray_90x100.jpg", "rgb_513x517.jpg", "cmyk_150x97.jpg",
                                   "rgba_40x50.png"};
#define N_CROP_CASES 5

// Decode + crop each tests/data file and compare with PIL's center_crop_arr at 64 px.
START_TEST(crop_matches_pil) {
    const char *name = crop_cases[_i];
    char path[1024], stem[256];
    snprintf(path, sizeof path, "%s/%s", DATA_DIR, name);
    snprintf(stem, sizeof stem, "crop_%s", name);
    *strrchr(stem, '.') = 0;
    SafeTensors g;
    golden_open(&g, stem);
    DsImage im;
    ck_assert_msg(ds_image_load(path, 0, &im) == 0, "%s", core_last_error());
    ck_assert_int_eq(im.c, 3);
    const uint8_t *src = golden_u8(&g, "src", 6);
    const uint8_t *last = im.px + ((size_t)im.h * im.w - 1) * 3;
    for (int ch = 0; ch < 3; ch++) {   // decoded exactly as PIL decodes (same libjpeg, same settings)
        ck_assert_msg(im.px[ch] == src[ch], "%s: pixel (0,0)[%d] %d, PIL %d", name, ch, im.px[ch], src[ch]);
        ck_assert_msg(last[ch] == src[3 + ch], "%s: last pixel [%d] %d, PIL %d", name, ch, last[ch], src[3 + ch]);
    }
    uint8_t out[64 * 64 * 3];
    ck_assert_msg(ds_center_crop(&im, 64, out, name) == 0, "%s", core_last_error());
    size_t where = 0;
    int d = max_abs_diff(out, golden_u8(&g, "out", sizeof out), sizeof out, &where);
    printf("crop %-16s %dx%d -> 64: max |C - PIL| = %d (at %zu)\n", name, im.w, im.h, d, where);
    ck_assert_msg(d <= 1, "%s: max abs diff %d / 255 at byte %zu", name, d, where);
    ds_image_free(&im);
    safetensors_close(&g);
}
END_TEST

// PIL's resize on closed forms: BOX halving of a constant and of a 2x2 checker is exact.
START_TEST(resize_closed_forms) {
    uint8_t src[4 * 4], dst[2 * 2];
    for (int i = 0; i < 16; i++) src[i] = ((i / 4) + (i % 4)) % 2 ? 200 : 100;
    ds_resize(src, 4, 4, 1, dst, 2, 2, DS_FILTER_BOX);
    for (int i = 0; i < 4; i++) ck_assert_int_eq(dst[i], 150);
    memset(src, 77, sizeof src);
    uint8_t up[9 * 7];
    ds_resize(src, 4, 4, 1, up, 9, 7, DS_FILTER_BICUBIC);   // weights sum to one: constants stay
    for (int i = 0; i < 63; i++) ck_assert_int_eq(up[i], 77);
}
END_TEST

// ok_* decode (converted ones say so), bad_* are refused naming the file, others must not crash.
START_TEST(bad_image_corpus) {
    DIR *d = opendir(CORPUS_DIR);
    ck_assert_msg(d != NULL, "cannot open %s", CORPUS_DIR);
    int n_ok = 0, n_bad = 0, n_other = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        const char *name = de->d_name;
        if (name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", CORPUS_DIR, name);
        size_t n;
        unsigned char *b = test_read_file(path, &n);
        LLVMFuzzerTestOneInput(b, n);   // aborts on a broken invariant
        DsImage im;
        int rc = ds_image_decode(b, n, name, 10 * 1000 * 1000, &im);
        if (strncmp(name, "ok_", 3) == 0) {
            ck_assert_msg(rc == 0, "%s should decode: %s", name, core_last_error());
            int want_conv = strstr(name, "gray") || strstr(name, "cmyk") || strstr(name, "rgba") || strstr(name, "palette");
            if (strstr(name, "palette")) want_conv = 0;   // palette PNG is plain RGB after expansion
            ck_assert_msg((im.converted != NULL) == want_conv, "%s: converted = %s", name,
                          im.converted ? im.converted : "no");
            uint8_t out[8 * 8 * 3];
            ck_assert_int_eq(ds_center_crop(&im, 8, out, name), 0);
            ds_image_free(&im);
            n_ok++;
        } else if (strncmp(name, "bad_", 4) == 0) {
            ck_assert_msg(rc == -1, "%s should be refused", name);
            ck_assert_msg(strstr(core_last_error(), name) != NULL, "%s: message does not name it: %s", name,
                          core_last_error());
            if (strstr(name, "30000")) ck_assert_msg(strstr(core_last_error(), "above the limit"), "%s", core_last_error());
            if (!strcmp(name, "bad_truncated.jpg")) ck_assert_msg(strstr(core_last_error(), "truncated"), "%s", core_last_error());
            if (strstr(name, "not_an_image")) ck_assert_msg(strstr(core_last_error(), "not an image"), "%s", core_last_error());
            n_bad++;
        } else {
            if (rc == 0) ds_image_free(&im);
            n_other++;
        }
        free(b);
    }
    closedir(d);
    printf("image corpus: %d ok, %d bad, %d other\n", n_ok, n_bad, n_other);
    ck_assert_int_ge(n_ok, 8);
    ck_assert_int_ge(n_bad, 8);
}
END_TEST

// ---------------------------------------------------------------------------------------------
static void write_jpeg(const char *path, int w, int h, int seed) {
    FILE *f = fopen(path, "wb");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    struct jpeg_compress_struct c;
    struct jpeg_error_mgr err;
    c.err = jpeg_std_error(&err);
    jpeg_create_compress(&c);
    jpeg_stdio_dest(&c, f);
    c.image_width = (JDIMENSION)w;
    c.image_height = (JDIMENSION)h;
    c.input_components = 3;
    c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&c);
    jpeg_set_quality(&c, 90, TRUE);
    jpeg_start_compress(&c, TRUE);
    unsigned char *row = malloc((size_t)w * 3);
    while (c.next_scanline < c.image_height) {
        int y = (int)c.next_scanline;
        for (int x = 0; x < w; x++) {
            row[3 * x] = (unsigned char)(x * 255 / w);
            row[3 * x + 1] = (unsigned char)(y * 255 / h);
            row[3 * x + 2] = (unsigned char)((x + y + 40 * seed) & 255);
        }
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    fclose(f);
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    unsigned char *b = test_read_file(from, &n);
    FILE *f = fopen(to, "wb");
    ck_assert(f != NULL);
    fwrite(b, 1, n, f);
    fclose(f);
    free(b);
}

static void make_tmpdir(char *buf, size_t n, const char *tag) {
    snprintf(buf, n, "/tmp/pmf_%s_XXXXXX", tag);
    ck_assert(mkdtemp(buf) != NULL);
}

static int64_t attr_i64(hid_t f, const char *name) {
    int64_t v = -1;
    hid_t a = H5Aopen(f, name, H5P_DEFAULT);
    ck_assert_msg(a >= 0, "no attribute %s", name);
    H5Aread(a, H5T_NATIVE_INT64, &v);
    H5Aclose(a);
    return v;
}

// The layout promised in dataset.h, read back with the HDF5 C API (not with our reader).
static void check_layout(const char *path, int64_t count, int res, int chans, int n_classes) {
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    ck_assert_msg(f >= 0, "cannot open %s", path);
    ck_assert_int_eq(attr_i64(f, "format_version"), 1);
    ck_assert_int_eq(attr_i64(f, "resolution"), res);
    ck_assert_int_eq(attr_i64(f, "count"), count);
    ck_assert_int_eq(attr_i64(f, "channels"), chans);
    ck_assert(H5Aexists(f, "source") > 0 && H5Aexists(f, "crop_method") > 0);
    hid_t d = H5Dopen2(f, "images", H5P_DEFAULT);
    hid_t t = H5Dget_type(d), sp = H5Dget_space(d), pl = H5Dget_create_plist(d);
    ck_assert(H5Tequal(t, H5T_STD_U8LE) > 0);
    hsize_t dims[4], chunk[4];
    ck_assert_int_eq(H5Sget_simple_extent_ndims(sp), 4);
    H5Sget_simple_extent_dims(sp, dims, NULL);
    ck_assert(dims[0] == (hsize_t)count && dims[1] == (hsize_t)res && dims[2] == (hsize_t)res && dims[3] == (hsize_t)chans);
    ck_assert_int_eq(H5Pget_layout(pl), H5D_CHUNKED);
    ck_assert_int_eq(H5Pget_chunk(pl, 4, chunk), 4);
    ck_assert(chunk[0] == 1 && chunk[1] == (hsize_t)res && chunk[2] == (hsize_t)res && chunk[3] == (hsize_t)chans);
    H5Pclose(pl);
    H5Sclose(sp);
    H5Tclose(t);
    H5Dclose(d);
    d = H5Dopen2(f, "labels", H5P_DEFAULT);
    t = H5Dget_type(d);
    ck_assert(H5Tget_class(t) == H5T_INTEGER && H5Tget_size(t) == 4);
    H5Tclose(t);
    H5Dclose(d);
    d = H5Dopen2(f, "class_names", H5P_DEFAULT);
    sp = H5Dget_space(d);
    ck_assert_int_eq(H5Sget_simple_extent_npoints(sp), n_classes);
    H5Sclose(sp);
    H5Dclose(d);
    H5Fclose(f);
}

static void shard_path(char *buf, size_t n, const char *dir, int k) { snprintf(buf, n, "%s/shard-%05d.h5", dir, k); }

// A folder of 8 JPEGs written here + 2 PIL-golden files + 3 bad items; 3 items per shard.
START_TEST(prepare_folder_and_resume) {
    char in[256], out[256], p[1024];
    make_tmpdir(in, sizeof in, "prep_in");
    make_tmpdir(out, sizeof out, "prep_out");
    snprintf(p, sizeof p, "%s/sub", in);
    mkdir(p, 0777);
    FILE *lf;
    char labels[1024];
    snprintf(labels, sizeof labels, "%s/labels.txt", in);
    lf = fopen(labels, "w");
    ck_assert(lf != NULL);
    for (int i = 0; i < 8; i++) {   // a_0.jpg .. a_7.jpg: class "cat" even, "dog" odd
        snprintf(p, sizeof p, "%s/a_%d.jpg", in, i);
        write_jpeg(p, 40 + 13 * i, 90 - 5 * i, i);
        fprintf(lf, "a_%d.jpg %s\n", i, i % 2 ? "dog" : "cat");
    }
    snprintf(p, sizeof p, "%s/sub/b_rgb.jpg", in);   // PIL golden files (64 px)
    copy_file(DATA_DIR "/rgb_300x200.jpg", p);
    snprintf(p, sizeof p, "%s/sub/c_cmyk.jpg", in);
    copy_file(DATA_DIR "/cmyk_150x97.jpg", p);
    fprintf(lf, "sub/b_rgb.jpg bird\nsub/c_cmyk.jpg cat\n");
    snprintf(p, sizeof p, "%s/d_truncated.jpg", in);
    copy_file(CORPUS_DIR "/bad_truncated.jpg", p);
    snprintf(p, sizeof p, "%s/e_notes.txt", in);
    copy_file(CORPUS_DIR "/bad_not_an_image.jpg", p);
    fprintf(lf, "d_truncated.jpg cat\ne_notes.txt dog\n");
    snprintf(p, sizeof p, "%s/f_nolabel.jpg", in);
    write_jpeg(p, 30, 30, 9);
    fclose(lf);

    DsPrepareConfig cfg = {.kind = DS_SRC_FOLDER, .input = in, .label_file = labels, .out_dir = out,
                           .resolution = 64, .shard_size = 3, .threads = 2};
    DsPrepareStats st;
    ck_assert_msg(ds_prepare(&cfg, &st) == 0, "%s", core_last_error());
    // items: 8 + 2 + 2 bad (12 listed; f_nolabel dropped while listing) -> 4 shards of 3
    ck_assert_int_eq(st.items, 12);
    ck_assert_int_eq(st.written, 10);
    ck_assert_int_eq(st.skipped, 3);     // truncated, not an image, no label
    ck_assert_int_eq(st.converted, 1);   // CMYK
    ck_assert_int_eq(st.shards_written, 4);
    // Sorted listing: a_0..a_7, d_truncated, e_notes, sub/b_rgb, sub/c_cmyk -> shard 3 = b_rgb, c_cmyk.
    shard_path(p, sizeof p, out, 3);
    check_layout(p, 2, 64, 3, 3);
    DsShard s;
    ck_assert_msg(ds_shard_open(p, &s) == 0, "%s", core_last_error());
    ck_assert_int_eq(s.n_classes, 3);
    ck_assert_str_eq(s.class_names[0], "bird");
    ck_assert_str_eq(s.class_names[2], "dog");
    ck_assert_int_eq(s.labels[0], 0);   // bird
    ck_assert_int_eq(s.labels[1], 1);   // cat
    const char *gold[2] = {"crop_rgb_300x200", "crop_cmyk_150x97"};
    uint8_t img[64 * 64 * 3];
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(ds_shard_read(&s, i, img), 0);
        SafeTensors g;
        golden_open(&g, gold[i]);
        size_t where = 0;
        int d = max_abs_diff(img, golden_u8(&g, "out", sizeof img), sizeof img, &where);
        ck_assert_msg(d <= 1, "shard image %d vs PIL %s: max diff %d", i, gold[i], d);
        safetensors_close(&g);
    }
    ds_shard_close(&s);
    shard_path(p, sizeof p, out, 2);   // a_6, a_7, d_truncated(skipped)
    ck_assert_int_eq(ds_shard_open(p, &s), 0);
    ck_assert_int_eq(s.n, 2);
    ck_assert_int_eq(s.labels[0], 1);   // a_6: cat
    ck_assert_int_eq(s.labels[1], 2);   // a_7: dog
    ds_shard_close(&s);

    // Interruption: shard 1 half-written (truncated), shard 2 gone with a stale .tmp, shard 0 kept.
    struct stat st0;
    shard_path(p, sizeof p, out, 0);
    ck_assert_int_eq(stat(p, &st0), 0);
    shard_path(p, sizeof p, out, 1);
    ck_assert_int_eq(truncate(p, 1000), 0);
    ck_assert_msg(ds_shard_open(p, &s) == -1 && strstr(core_last_error(), p), "%s", core_last_error());
    char tmp[1100];
    shard_path(p, sizeof p, out, 2);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    ck_assert_int_eq(rename(p, tmp), 0);
    ck_assert_int_eq(truncate(tmp, 500), 0);
    sleep(1);
    ck_assert_msg(ds_prepare(&cfg, &st) == 0, "%s", core_last_error());
    ck_assert_int_eq(st.shards_kept, 2);
    ck_assert_int_eq(st.shards_written, 2);
    struct stat st1;
    shard_path(p, sizeof p, out, 0);
    ck_assert_int_eq(stat(p, &st1), 0);
    ck_assert(st1.st_mtime == st0.st_mtime && st1.st_ino == st0.st_ino);   // untouched
    for (int k = 0; k < 4; k++) {
        shard_path(p, sizeof p, out, k);
        ck_assert_msg(ds_shard_open(p, &s) == 0, "%s", core_last_error());
        ck_assert_int_eq(s.n, k == 2 || k == 3 ? 2 : 3);
        ds_shard_close(&s);
    }
    ck_assert(access(tmp, F_OK) != 0);   // the stale .tmp was replaced and renamed
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", in, out);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

// Fashion-MNIST at 28 px: the crop is the identity, so shard pixels are the idx bytes exactly.
START_TEST(prepare_fashion_mnist) {
    char out[256];
    make_tmpdir(out, sizeof out, "prep_fm");
    DsPrepareConfig cfg = {.kind = DS_SRC_FASHION_MNIST, .split = "t10k", .out_dir = out, .resolution = 28,
                           .shard_size = 50, .limit = 120};
    DsPrepareStats st;
    ck_assert_msg(ds_prepare(&cfg, &st) == 0, "%s", core_last_error());
    ck_assert_int_eq(st.written, 120);
    ck_assert_int_eq(st.shards_written, 3);
    IdxImages im;
    IdxLabels lb;
    ck_assert(fashion_mnist_load(NULL, "t10k", &im, &lb) == 0);
    char p[1024];
    shard_path(p, sizeof p, out, 2);
    check_layout(p, 20, 28, 1, 10);
    DsShard s;
    ck_assert_msg(ds_shard_open(p, &s) == 0, "%s", core_last_error());
    ck_assert_str_eq(s.class_names[9], "Ankle boot");
    uint8_t img[28 * 28];
    for (int i = 0; i < 20; i++) {
        ck_assert_int_eq(ds_shard_read(&s, i, img), 0);
        ck_assert(memcmp(img, im.pixels + (size_t)(100 + i) * 784, 784) == 0);
        ck_assert_int_eq(s.labels[i], lb.labels[100 + i]);
    }
    ds_shard_close(&s);
    idx_free_images(&im);
    idx_free_labels(&lb);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

// Broken HDF5 files: each refused with a message naming the file and the dataset.
START_TEST(bad_shards) {
    char dir[256], p[1024];
    make_tmpdir(dir, sizeof dir, "badshard");
    DsShard s;
    // Not HDF5 at all.
    snprintf(p, sizeof p, "%s/foreign.h5", dir);
    copy_file(DATA_DIR "/rgb_300x200.jpg", p);
    ck_assert_int_eq(ds_shard_open(p, &s), -1);
    ck_assert_msg(strstr(core_last_error(), p) && strstr(core_last_error(), "not an HDF5"), "%s", core_last_error());
    // Foreign HDF5: float images, no attributes.
    snprintf(p, sizeof p, "%s/float.h5", dir);
    hid_t f = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hsize_t d4[4] = {2, 4, 4, 3};
    hid_t sp = H5Screate_simple(4, d4, NULL);
    hid_t d = H5Dcreate2(f, "images", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(sp);
    H5Fclose(f);
    ck_assert_int_eq(ds_shard_open(p, &s), -1);
    ck_assert_msg(strstr(core_last_error(), p) && strstr(core_last_error(), "format_version"), "%s", core_last_error());
    // Our writer, then the dtype or shape of 'images' replaced: a clear error naming 'images'.
    for (int variant = 0; variant < 3; variant++) {
        snprintf(p, sizeof p, "%s/wrong%d.h5", dir, variant);
        DsShardMeta m = {.resolution = 4, .channels = 3, .source = "test", .crop_method = "none"};
        DsShardWriter *w = ds_shard_writer_open(p, &m);
        ck_assert(w != NULL);
        uint8_t px[2 * 4 * 4 * 3] = {0};
        int32_t lab[2] = {0, 1};
        ck_assert_int_eq(ds_shard_writer_add(w, px, lab, 2), 0);
        ck_assert_int_eq(ds_shard_writer_finish(w), 0);
        ck_assert_msg(ds_shard_open(p, &s) == 0, "%s", core_last_error());
        ds_shard_close(&s);
        f = H5Fopen(p, H5F_ACC_RDWR, H5P_DEFAULT);
        const char *victim = variant == 2 ? "labels" : "images";
        H5Ldelete(f, victim, H5P_DEFAULT);
        hsize_t dd[4] = {2, 4, variant == 1 ? 5 : 4, 3}, dl = 3;
        sp = variant == 2 ? H5Screate_simple(1, &dl, NULL) : H5Screate_simple(4, dd, NULL);
        hid_t type = variant == 0 ? H5T_IEEE_F32LE : variant == 1 ? H5T_STD_U8LE : H5T_STD_I32LE;
        d = H5Dcreate2(f, victim, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
        H5Dclose(d);
        H5Sclose(sp);
        H5Fclose(f);
        ck_assert_int_eq(ds_shard_open(p, &s), -1);
        ck_assert_msg(strstr(core_last_error(), p) && strstr(core_last_error(), victim), "variant %d: %s", variant,
                      core_last_error());
        printf("bad shard %d: %s\n", variant, core_last_error());
    }
    // Truncated: the first half of a good shard.
    snprintf(p, sizeof p, "%s/wrong0.h5", dir);
    char q[1100];
    snprintf(q, sizeof q, "%s/trunc.h5", dir);
    DsShardMeta m = {.resolution = 16, .channels = 3, .source = "test", .crop_method = "none"};
    DsShardWriter *w = ds_shard_writer_open(q, &m);
    uint8_t px[16 * 16 * 3 * 8];
    int32_t lab[8] = {0};
    memset(px, 9, sizeof px);
    ds_shard_writer_add(w, px, lab, 8);
    ck_assert_int_eq(ds_shard_writer_finish(w), 0);
    struct stat stt;
    stat(q, &stt);
    ck_assert_int_eq(truncate(q, stt.st_size / 2), 0);
    int rc = ds_shard_open(q, &s);
    if (rc == 0) {   // metadata survived: the pixels cannot be read
        uint8_t img[16 * 16 * 3];
        int bad = 0;
        for (int i = 0; i < 8; i++) bad |= ds_shard_read(&s, i, img) != 0;
        ds_shard_close(&s);
        ck_assert_msg(bad, "a truncated shard read back fine");
    }
    ck_assert_msg(strstr(core_last_error(), q), "%s", core_last_error());
    printf("truncated shard: %s\n", core_last_error());
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("dataset_prepare");
    TCase *tc = tcase_create("prepare");
    tcase_set_timeout(tc, 600);
    tcase_add_loop_test(tc, crop_matches_pil, 0, N_CROP_CASES);
    tcase_add_test(tc, resize_closed_forms);
    tcase_add_test(tc, bad_image_corpus);
    tcase_add_test(tc, prepare_folder_and_resume);
    tcase_add_test(tc, prepare_fashion_mnist);
    tcase_add_test(tc, bad_shards);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
