// cli/pmf_train.c: train a pMF generator. Thin: flags and YAML become a PmfTrainConfig, then
// pmf_train does the work; under mpirun each process is one data parallel rank
// (docs/cluster.md).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmf/pmf.h"

static const struct {
    const char *flag, *key;
} flags[] = {
    {"--res", "dataset.image_size"}, {"--patch", "model.patch"}, {"--model", "model.model_str"},
    {"--pred", "model.pred"}, {"--optimizer", "training.optimizer"}, {"--perceptual", "model.perceptual"},
    {"--data", "dataset.root"}, {"--steps", "training.steps"}, {"--epochs", "training.num_epochs"},
    {"--batch", "training.batch_size"}, {"--micro-batch", "training.micro_batch"}, {"--lr", "training.learning_rate"},
    {"--seed", "training.seed"}, {"--out", "out"}, {"--resume", "load_from"}, {"--threads", "training.threads"},
    {"--omega", "sampling.omega"}, {"--log-every", "training.log_per_step"},
    {"--checkpoint-every", "training.checkpoint_per_step"}, {"--sample-every", "training.sample_per_step"},
    {"--mpi-timeout", "training.mpi_timeout"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: pmf_train [--config FILE.yml] [flags] [section.key=value ...]\n"
               "Trains a pixel MeanFlow generator. Flags (each is a config key):\n");
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) fprintf(f, "  %-20s %s\n", flags[i].flag, flags[i].key);
    fprintf(f, "  --print-model        print parameter counts and GMACs of the paper's presets and this model, then exit\n"
               "Example: pmf_train --res 512 --patch 32   (the paper's B/32)\n"
               "         pmf_train --model S/4 --steps 2000 --batch 64 --out runs/fmnist\n"
               "         mpirun -np 4 pmf_train --model S/4 --batch 256 --out runs/fmnist   (data parallel:\n"
               "         the global batch 256 is split over 4 ranks; docs/cluster.md)\n");
}

int main(int argc, char **argv) {
    core_prefer_passive_threads(argv);   // see core/core.h: spinning waits stall on a shared machine
    PmfTrainConfig cfg;
    pmf_train_config_default(&cfg);
    int print_model = 0;
    // The config file first, so flags and key=value pairs override it whatever their order.
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--config")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "pmf_train: --config needs a file\n");
                return 2;
            }
            if (pmf_train_config_load(&cfg, argv[i + 1])) {
                fprintf(stderr, "pmf_train: %s\n", core_last_error());
                return 2;
            }
        }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--print-model")) {
            print_model = 1;
            continue;
        }
        if (!strcmp(a, "--config")) {
            i++;
            continue;
        }
        const char *key = NULL, *value = NULL;
        char buf[1024];
        if (!strncmp(a, "--", 2)) {
            for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++)
                if (!strcmp(a, flags[k].flag)) key = flags[k].key;
            if (!key) {
                fprintf(stderr, "pmf_train: unknown flag '%s' (see --help)\n", a);
                return 2;
            }
            if (i + 1 >= argc) {
                fprintf(stderr, "pmf_train: %s needs a value\n", a);
                return 2;
            }
            value = argv[++i];
        } else {
            const char *eq = strchr(a, '=');
            if (!eq || eq == a || (size_t)(eq - a) >= sizeof buf) {
                fprintf(stderr, "pmf_train: '%s' is neither a flag nor section.key=value\n", a);
                return 2;
            }
            snprintf(buf, sizeof buf, "%.*s", (int)(eq - a), a);
            key = buf, value = eq + 1;
        }
        if (pmf_train_config_set(&cfg, key, value)) {
            fprintf(stderr, "pmf_train: %s\n", core_last_error());
            return 2;
        }
    }
    // One rank, or MPI_Init when mpirun / srun started this process (a build without MPI refuses).
    if (pmf_dist_init(&argc, &argv)) {
        fprintf(stderr, "pmf_train: %s\n", core_last_error());
        return 2;
    }
    if (print_model && pmf_dist_rank() == 0) {
        static const char *papers[] = {"B/16", "L/16", "H/16", "B/32", "L/32", "H/32"};
        printf("%-6s %8s %12s %12s %10s %12s\n", "model", "image", "params inf", "params train", "GMACs fwd", "GMACs train*");
        for (int i = 0; i < 6; i++) {
            PmfConfig c;
            pmf_preset(papers[i], &c);
            // Training work per image: 3 guidance forwards of trunk + v-head, the JVP forward
            // (about 2 forwards) and backward (about 2) of trunk + both heads; an estimate.
            double f = pmf_forward_macs(&c) / 1e9;
            printf("%-6s %5dx%-3d %11.3fM %11.3fM %10.2f %12.1f\n", papers[i], c.img_size, c.img_size,
                   pmf_param_count(&c, 0) / 1e6, pmf_param_count(&c, 1) / 1e6, f, 7 * f);
        }
        printf("* estimate: 7 forwards per training image (guidance 3, JVP forward ~2, backward ~2)\n");
    }
    if (pmf_train_config_finish(&cfg)) {
        fprintf(stderr, "pmf_train: %s\n", core_last_error());
        pmf_dist_finalize();
        return 2;
    }
    int rc = 0;
    if (print_model) pmf_train_print_model(&cfg);
    else rc = pmf_train(&cfg);
    // A rank that failed alone would leave the others waiting in a collective: end them all.
    if (rc && pmf_dist_world() > 1) pmf_dist_abort(rc, "training failed on this rank (see above)");
    pmf_dist_finalize();
    return rc;
}
