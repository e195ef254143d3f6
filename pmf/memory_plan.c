// pmf/memory_plan.c: how much memory the process may still use, and the largest micro-batch whose
// predicted peak fits in it. The run measures its own per-micro-batch cost (train.c's dry run);
// this file only knows the machine and the arithmetic.
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pmf/pmf.h"

// "12345", "512M", "4G", "1.5G" -> bytes; -1 if malformed.
static int64_t parse_bytes(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return -1;
    double mul = 1;
    switch (toupper((unsigned char)*end)) {
    case 0: break;
    case 'K': mul = 1024.0, end++; break;
    case 'M': mul = 1024.0 * 1024, end++; break;
    case 'G': mul = 1024.0 * 1024 * 1024, end++; break;
    default: return -1;
    }
    if (*end == 'B' || *end == 'b') end++;
    return *end ? -1 : (int64_t)(v * mul);
}

// The first number of a one-line file (cgroup v2 files), or -1 ("max" or missing).
static int64_t read_number(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[64] = "";
    if (!fgets(buf, sizeof buf, f)) buf[0] = 0;
    fclose(f);
    char *end;
    long long v = strtoll(buf, &end, 10);
    return end == buf ? -1 : (int64_t)v;
}

int64_t pmf_memory_resident(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, rss = 0;
    if (!f) return 0;
    if (fscanf(f, "%lld %lld", &size, &rss) != 2) rss = 0;
    fclose(f);
    return (int64_t)rss * sysconf(_SC_PAGESIZE);
}

int64_t pmf_memory_available(void) {
    // A stated budget (tests, or a user who shares the machine): the bytes the run may still take.
    const char *fake = getenv("PMF_MEMORY_AVAILABLE");
    if (fake && *fake) {
        int64_t bytes = parse_bytes(fake);
        if (bytes >= 0) return bytes;
        fprintf(stderr, "pmf: PMF_MEMORY_AVAILABLE='%s' is not a size (e.g. 8G, 512M); ignored\n", fake);
    }
    int64_t avail = -1;
    FILE *f = fopen("/proc/meminfo", "r");
    if (f) {
        char line[256];
        long long kb;
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "MemAvailable: %lld kB", &kb) == 1) avail = (int64_t)kb * 1024;
        fclose(f);
    }
    // A cgroup v2 limit (containers, CI runners) is often lower than what the kernel has free.
    int64_t max = read_number("/sys/fs/cgroup/memory.max"), cur = read_number("/sys/fs/cgroup/memory.current");
    if (max > 0 && cur >= 0 && (avail < 0 || max - cur < avail)) avail = max - cur;
    // Leave a tenth to the rest of the machine: other processes grow too, and a plan that takes all
    // of what is free now turns their growth into an OOM kill.
    return avail < 0 ? avail : avail - avail / 10;
}

int pmf_memory_pick_micro_batch(int rows, int wanted, int64_t budget, int64_t intercept, int64_t per_row) {
    if (wanted < 1 || wanted > rows) wanted = rows;
    for (int mb = wanted; mb >= 1; mb--)
        if (rows % mb == 0 && intercept + per_row * (int64_t)mb <= budget) return mb;
    return 0;
}
