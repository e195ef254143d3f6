// cli/pmf_prepare.c: images -> HDF5 shards for training. Flags -> DsPrepareConfig -> ds_prepare.
//   pmf_prepare --imagenet /data/imagenet/train --res 256 --out /data/in256
//   pmf_prepare --folder pics/ --labels labels.txt --res 64 --out shards/
//   pmf_prepare --fashion-mnist [DIR] --split train --res 32 --out fm32/
//   pmf_prepare --verify fm32/ [--timeout SECONDS]   (checks every shard in a child process)
// Rerunning the same command after an interruption keeps finished shards and redoes the rest.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/core.h"
#include "dataset/dataset.h"

static void usage(void) {
    fprintf(stderr,
            "usage: pmf_prepare (--imagenet TRAIN_DIR | --folder DIR --labels FILE | --fashion-mnist [DIR])\n"
            "                   --res N --out DIR [--split train|t10k] [--shard-size N] [--threads N]\n"
            "                   [--max-pixels N] [--limit N] [--quiet] [--pad-small]\n"
            "       pmf_prepare --verify DIR [--timeout SECONDS]\n"
            "  --verify DIR       open and read every shard of DIR, each in a child process (a crash or\n"
            "                     hang inside libhdf5 is reported as a damaged file); exit 1 if any is\n"
            "                     damaged. --timeout: seconds per shard (default 60)\n"
            "  --pad-small        centre images no larger than --res on a black canvas instead of\n"
            "                     upscaling them (pmf_train's Fashion-MNIST convention: 28 on 32)\n");
}

int main(int argc, char **argv) {
    core_prefer_passive_threads(argv);   // see core/core.h: spinning waits stall on a shared machine
    DsPrepareConfig cfg = {.kind = -1, .progress = isatty(2)};
    const char *verify = NULL;
    double timeout = 60;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        int has_v = v && strncmp(v, "--", 2) != 0;
        if (!strcmp(a, "--imagenet") && has_v) cfg.kind = DS_SRC_IMAGENET, cfg.input = v, i++;
        else if (!strcmp(a, "--folder") && has_v) cfg.kind = DS_SRC_FOLDER, cfg.input = v, i++;
        else if (!strcmp(a, "--fashion-mnist")) {
            cfg.kind = DS_SRC_FASHION_MNIST;
            if (has_v) cfg.input = v, i++;
        } else if (!strcmp(a, "--labels") && has_v) cfg.label_file = v, i++;
        else if (!strcmp(a, "--split") && has_v) cfg.split = v, i++;
        else if (!strcmp(a, "--out") && has_v) cfg.out_dir = v, i++;
        else if (!strcmp(a, "--res") && has_v) cfg.resolution = atoi(v), i++;
        else if (!strcmp(a, "--shard-size") && has_v) cfg.shard_size = atoi(v), i++;
        else if (!strcmp(a, "--threads") && has_v) cfg.threads = atoi(v), i++;
        else if (!strcmp(a, "--max-pixels") && has_v) cfg.max_pixels = atoll(v), i++;
        else if (!strcmp(a, "--limit") && has_v) cfg.limit = atoll(v), i++;
        else if (!strcmp(a, "--verify") && has_v) verify = v, i++;
        else if (!strcmp(a, "--timeout") && has_v) timeout = atof(v), i++;
        else if (!strcmp(a, "--quiet")) cfg.progress = 0;
        else if (!strcmp(a, "--pad-small")) cfg.pad_small = 1;
        else {
            fprintf(stderr, "pmf_prepare: unknown or incomplete flag '%s'\n", a);
            usage();
            return 2;
        }
    }
    if (verify) {
        int n = 0, bad = ds_shard_verify_dir(verify, timeout > 0 ? timeout : 60, stdout, &n);
        if (bad < 0) {
            fprintf(stderr, "pmf_prepare: %s\n", core_last_error());
            return 2;
        }
        fprintf(stderr, "pmf_prepare: %d shard files checked, %d damaged\n", n, bad);
        return bad ? 1 : 0;
    }
    if ((int)cfg.kind < 0 || !cfg.out_dir || cfg.resolution <= 0) {
        usage();
        return 2;
    }
    DsPrepareStats st = {0};
    int rc = ds_prepare(&cfg, &st);
    if (rc) fprintf(stderr, "pmf_prepare: %s\n", core_last_error());
    fprintf(stderr, "pmf_prepare: %lld items: %lld written, %lld skipped, %lld converted; shards: %d written, %d kept\n",
            (long long)st.items, (long long)st.written, (long long)st.skipped, (long long)st.converted,
            st.shards_written, st.shards_kept);
    return rc ? 1 : 0;
}
