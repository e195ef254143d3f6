// fuzz/fuzz_shard.c: libFuzzer target for the HDF5 shard reader (dataset/shard_read.c), one file
// per input (the reader's own path: signature, file size, H5Fopen). Any input must be refused with
// a message naming the file, or open as a shard whose claimed sizes are within the limits and
// whose labels and every image (up to FUZZ_SHARD_MAX_READ) read without touching memory outside
// the buffers. libhdf5 itself is not instrumented and has defects of its own on corrupt files
// (README: shards are trusted input; pmf_prepare --verify checks them in a child process): run
// this target with -fork=1 -ignore_crashes=1 and sort its findings by where they crash.
#include "dataset/dataset.h"

#include "core/core.h"
#include "fuzz/fuzz_common.h"

#define FUZZ_SHARD_MAX_READ 64

static int fuzz_shard(const uint8_t *data, size_t size) {
    char path[256];
    fuzz_write_file(path, "input.h5", data, size);
    DsShard s;
    if (ds_shard_open(path, &s) != 0) {
        FUZZ_CHECK(strstr(core_last_error(), path) != NULL);
        unlink(path);
        return 0;
    }
    FUZZ_CHECK(s.n >= 0 && s.n <= DS_SHARD_MAX_IMAGES && s.n <= (int64_t)size / 4);
    FUZZ_CHECK(s.h == s.resolution && s.w == s.resolution && s.resolution >= 1 &&
               s.resolution <= DS_SHARD_MAX_RESOLUTION && (s.c == 1 || s.c == 3));
    FUZZ_CHECK(s.n_classes >= 0 && s.n_classes <= DS_SHARD_MAX_CLASSES);
    for (int64_t i = 0; i < s.n; i++) FUZZ_CHECK(s.labels[i] >= 0 && (s.n_classes == 0 || s.labels[i] < s.n_classes));
    for (int k = 0; k < s.n_classes; k++) FUZZ_CHECK(s.class_names[k] != NULL);
    size_t isz = (size_t)s.h * s.w * s.c;
    uint8_t *px = malloc(isz);
    FUZZ_CHECK(px != NULL);
    for (int64_t i = 0; i < s.n && i < FUZZ_SHARD_MAX_READ; i++)
        if (ds_shard_read(&s, i, px) != 0) FUZZ_CHECK(strstr(core_last_error(), path) != NULL);
    FUZZ_CHECK(ds_shard_read(&s, s.n, px) == -1);   // past the end: refused, not read
    // eval's batch read: a range that runs past the end is refused; one inside is read whole
    int64_t k = s.n < FUZZ_SHARD_MAX_READ ? s.n : FUZZ_SHARD_MAX_READ;
    FUZZ_CHECK(ds_shard_read_range(&s, s.n - k, k + 1, px) == -1);
    uint8_t *batch = k ? malloc((size_t)k * isz) : NULL;
    if (batch && ds_shard_read_range(&s, 0, k, batch) != 0) FUZZ_CHECK(strstr(core_last_error(), path) != NULL);
    free(batch);
    free(px);
    ds_shard_close(&s);
    unlink(path);
    return 1;
}

FUZZ_ENTRY(fuzz_shard)
