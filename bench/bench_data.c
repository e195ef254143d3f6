// bench/bench_data.c: data pipeline throughput on generated JPEGs (default 200 images of 500x375
// to 256 px). Reports, in one run on the same files:
//   decode + ADM centre crop: ours (1 thread, all threads) vs Pillow (one process, same crop), ratio;
//   pmf_prepare end to end (decode, crop, HDF5 shards);
//   shard streaming (ds_stream_next, float NCHW batches) in images/s.
// A benchmark, not a test: nothing here fails on timing.
//   bench_data [n_images] [resolution]
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jpeglib.h>

#include "core/core.h"
#include "dataset/dataset.h"

static void write_jpeg(const char *path, int w, int h, int seed) {
    FILE *f = fopen(path, "wb");
    if (!f) core_fatal("cannot write %s", path);
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
    uint32_t state = (uint32_t)seed * 2654435761u + 1;
    while (c.next_scanline < c.image_height) {
        int y = (int)c.next_scanline;
        for (int x = 0; x < w; x++) {   // smooth shapes plus noise, roughly photo-like entropy
            state = state * 1664525u + 1013904223u;
            int n = (int)(state >> 27) - 16;
            row[3 * x] = (unsigned char)((x * 255 / w + n) & 255);
            row[3 * x + 1] = (unsigned char)(((x ^ y) + seed * 17 + n) & 255);
            row[3 * x + 2] = (unsigned char)((y * 255 / h + n / 2) & 255);
        }
        JSAMPROW rp = row;
        jpeg_write_scanlines(&c, &rp, 1);
    }
    jpeg_finish_compress(&c);
    jpeg_destroy_compress(&c);
    free(row);
    fclose(f);
}

static double ours(char **paths, int n, int res, int threads) {
    uint8_t *out = malloc((size_t)threads * res * res * 3);
    double t0 = core_now();
    int bad = 0;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads) reduction(+ : bad)
    for (int i = 0; i < n; i++) {
        DsImage im;
        if (ds_image_load(paths[i], 0, &im)) {
            bad++;
            continue;
        }
        bad += ds_center_crop(&im, res, out + (size_t)omp_get_thread_num() * res * res * 3, paths[i]) != 0;
        ds_image_free(&im);
    }
    double dt = core_now() - t0;
    free(out);
    if (bad) fprintf(stderr, "bench_data: %d images failed\n", bad);
    return n / dt;
}

// Pillow's rate on the same files with guided-diffusion's center_crop_arr; < 0 if unavailable.
static double pillow(const char *dir, int res) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 - 2>/dev/null <<'EOF'\n"
             "import glob, time\n"
             "import numpy as np\n"
             "from PIL import Image\n"
             "def cca(im, s):\n"
             "    while min(*im.size) >= 2 * s:\n"
             "        im = im.resize(tuple(x // 2 for x in im.size), resample=Image.BOX)\n"
             "    sc = s / min(*im.size)\n"
             "    im = im.resize(tuple(round(x * sc) for x in im.size), resample=Image.BICUBIC)\n"
             "    a = np.array(im); y = (a.shape[0] - s) // 2; x = (a.shape[1] - s) // 2\n"
             "    return a[y:y + s, x:x + s]\n"
             "fs = sorted(glob.glob('%s/*.jpg'))\n"
             "t = time.perf_counter()\n"
             "for f in fs:\n"
             "    with Image.open(f) as im:\n"
             "        im.load(); cca(im.convert('RGB'), %d)\n"
             "print(len(fs) / (time.perf_counter() - t))\n"
             "EOF\n",
             dir, res);
    if (access("/usr/bin/python3", X_OK) != 0) return -1;
    FILE *p = popen(cmd, "r");
    if (!p) return -1;
    double rate = -1;
    if (fscanf(p, "%lf", &rate) != 1) rate = -1;
    pclose(p);
    return rate;
}

int main(int argc, char **argv) {
    core_prefer_passive_threads(argv);   // see core/core.h: spinning waits stall on a shared machine
    int n = argc > 1 ? atoi(argv[1]) : 200, res = argc > 2 ? atoi(argv[2]) : 256;
    int threads = omp_get_max_threads();
    char dir[] = "/tmp/pmf_bench_data_XXXXXX";
    if (!mkdtemp(dir)) core_fatal("mkdtemp failed");
    char **paths = malloc(sizeof(char *) * (size_t)n), lp[600];
    snprintf(lp, sizeof lp, "%s/labels.txt", dir);
    FILE *lf = fopen(lp, "w");
    for (int i = 0; i < n; i++) {
        paths[i] = malloc(600);
        snprintf(paths[i], 600, "%s/img_%04d.jpg", dir, i);
        write_jpeg(paths[i], 500, 375, i);
        fprintf(lf, "img_%04d.jpg %d\n", i, i % 10);
    }
    fclose(lf);
    printf("bench_data: %d JPEGs of 500x375 -> %d px (ADM centre crop), %d threads available\n", n, res, threads);
    ours(paths, n < 20 ? n : 20, res, 1);   // warm the page cache
    double r1 = ours(paths, n, res, 1), rt = ours(paths, n, res, threads);
    double rp = pillow(dir, res);
    printf("decode+crop  ours 1 thread : %8.1f img/s\n", r1);
    printf("decode+crop  ours %d threads: %8.1f img/s\n", threads, rt);
    if (rp > 0) {
        printf("decode+crop  Pillow (1 proc): %8.1f img/s\n", rp);
        printf("ratio ours/Pillow: %.2fx single-thread, %.2fx with %d threads\n", r1 / rp, rt / rp, threads);
    } else {
        printf("Pillow not available\n");
    }

    char out[700];
    snprintf(out, sizeof out, "%s/shards", dir);
    DsPrepareConfig cfg = {.kind = DS_SRC_FOLDER, .input = dir, .label_file = lp, .out_dir = out,
                           .resolution = res, .shard_size = 64, .threads = threads};
    DsPrepareStats st;
    double t0 = core_now();
    if (ds_prepare(&cfg, &st)) core_fatal("prepare: %s", core_last_error());
    printf("pmf_prepare end to end       : %8.1f img/s (%lld images, %d shards)\n", st.written / (core_now() - t0),
           (long long)st.written, st.shards_written);

    int B = 32;
    DsStreamConfig sc = {.dir = out, .batch = B, .seed = 1, .shuffle_buffer = 1000, .flip = 1, .prefetch = 4};
    DsStream *s = ds_stream_open(&sc, NULL);
    if (!s) core_fatal("stream: %s", core_last_error());
    float *x = malloc(sizeof(float) * (size_t)B * 3 * res * res);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)B);
    int batches = 3 * n / B;
    ds_stream_next(s, x, y);   // first batch includes opening shards
    t0 = core_now();
    for (int i = 0; i < batches; i++)
        if (ds_stream_next(s, x, y)) core_fatal("stream: %s", core_last_error());
    double rs = batches * B / (core_now() - t0);
    ds_stream_close(s);
    printf("shard stream (float NCHW)    : %8.1f img/s = %.1f MB/s of %dx%dx3 uint8 images\n", rs,
           rs * res * res * 3 / 1e6, res, res);

    char cmd[800];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "bench_data: could not remove %s\n", dir);
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    free(x);
    free(y);
    return 0;
}
