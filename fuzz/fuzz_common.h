// fuzz/fuzz_common.h: what the file-reading fuzz targets share. Readers that take a path get
// the input written to a per-process temporary file first (on /dev/shm when there is one, so it
// stays in memory). Each target's body is `static int fuzz_<name>(data, size)`, which checks the
// reader's promises (aborting when one is broken) and returns 1 if the reader accepted the input,
// 0 if it refused it. The libFuzzer entry point is added unless PMF_FUZZ_REPLAY is defined, which
// is how tests/test_fuzz_corpus.c includes several targets into one program to replay their seed
// corpora in CI (and checks that ok_* seeds are accepted and bad_* seeds refused).
#ifndef PMF_FUZZ_COMMON_H
#define PMF_FUZZ_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// Invariant broken: abort so libFuzzer (or the corpus test) reports the input.
#define FUZZ_CHECK(cond) \
    do { \
        if (!(cond)) abort(); \
    } while (0)

#ifdef PMF_FUZZ_REPLAY
#define FUZZ_ENTRY(fn)
#else
#define FUZZ_ENTRY(fn) \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size); \
    int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) { \
        fn(data, size); \
        return 0; \
    }
#endif

// The input as a file named <dir>/pmf_fuzz_<pid>_<stem>; path must hold 256 bytes.
static inline void fuzz_write_file(char *path, const char *stem, const uint8_t *data, size_t size) {
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, 256, "%s/pmf_fuzz_%d_%s", dir, (int)getpid(), stem);
    FILE *f = fopen(path, "wb");
    FUZZ_CHECK(f != NULL);
    FUZZ_CHECK(size == 0 || fwrite(data, 1, size, f) == size);
    FUZZ_CHECK(fclose(f) == 0);
}

#endif
