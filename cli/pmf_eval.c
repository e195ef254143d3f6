// cli/pmf_eval.c: FID (and IS) as pytorch-fid's command line computes them, from folders of PNG
// images, HDF5 sample files (pmf_sample --h5) or .npz statistics.
//   pmf_eval --fid PATH1 PATH2 [options]        FID between two sets (each a folder, .h5 or .npz)
//   pmf_eval --save-stats PATH OUT.npz [options] write mu/sigma of a set (pytorch-fid's format)
//   pmf_eval --is PATH [options]                 Inception Score of a set (10 splits)
// The Fashion-MNIST featnet (perceptual/) can replace InceptionV3 (--features featnet): its value
// is a Frechet distance in another feature space, printed as FD-featnet, never as FID.
#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/eval_readers.h"
#include "core/core.h"
#include "eval/eval.h"
#include "perceptual/perceptual.h"
#include "pmf/pmf.h"

#include <unistd.h>

static void usage(void) {
    fprintf(stderr,
            "usage: pmf_eval --fid PATH1 PATH2 | --save-stats PATH OUT.npz | --is PATH  [options]\n"
            "  PATH is a folder of .png images, an HDF5 file with 'images' (N, H, W, C) uint8, a folder of\n"
            "  pmf_prepare shards (shard-*.h5), or an .npz\n"
            "  with 'mu' and 'sigma' (pytorch-fid / ADM reference statistics). PATH1 may also be a\n"
            "  pmf_train checkpoint or a converted official pMF model (.safetensors): N class-balanced\n"
            "  samples are generated first.\n"
            "options:\n"
            "  --weights FILE      InceptionV3 safetensors (default $PMF_INCEPTION_WEIGHTS, else\n"
            "                      pt_inception-2015-12-05.safetensors); make it with\n"
            "                      /usr/bin/python3 tools/convert_inception.py pt_inception-2015-12-05-6726825d.pth OUT\n"
            "  --features NET      inception (default) or featnet (the Fashion-MNIST feature network;\n"
            "                      the result is printed as FD-featnet, not FID)\n"
            "  --featnet-weights F featnet safetensors (default: the committed perceptual/weights one)\n"
            "  --convention C      pytorch-fid (default: [0,1] bilinear half-pixel resize, 2x-1), pmf-jax\n"
            "                      ((x-128)/128 after the same resize), torch-fidelity (TF1 resize, (x-128)/128)\n"
            "  --is                also compute the Inception Score of PATH1 (--fid) or PATH (--save-stats)\n"
            "  --splits N          IS splits (default 10)\n"
            "  --batch N           images per forward pass (default 50)\n"
            "  --max-images N      use only the first N images of each set\n"
            "  --threads N         threads (default: OpenMP's)\n"
            "  --log FILE          append one JSON line with the result\n"
            "  --no-progress       no progress bar\n"
            "  --hash-weights      deterministic random Inception weights (smoke tests; the number means nothing)\n"
            "  --fd-only           only the Frechet distance: no KID, precision/recall (which keep every\n"
            "                      feature vector and compare every pair) and class accuracy\n"
            "with --fid on two image sets (PATH1 generated, PATH2 the reference) pmf_eval also prints KID\n"
            "(100 subsets of 1000), precision and recall (k = 3), and with --features featnet the share of\n"
            "PATH1's samples the featnet classifies as the class they were generated for (labels from an\n"
            "HDF5 file's 'labels' or PNG names ending _class<k>.png)\n"
            "from a checkpoint (PATH1 = CKPT.safetensors):\n"
            "  --n N               samples to generate (default 10000)      --omega W   CFG scale\n"
            "  --t-min A --t-max B guidance interval                         --steps K   NFE\n"
            "                      (omega, interval and steps default to the checkpoint's sampling section;\n"
            "                      a converted official model's: the official evaluation settings)\n"
            "  --ema K             EMA of the checkpoint (default 0; -1 raw) --seed S    noise seed (default 0)\n"
            "  --floor PATH        also the same distance between PATH (e.g. training images) and PATH2\n");
}

typedef struct Args {
    const char *mode;          // "fid", "save-stats", "is"
    const char *path1, *path2; // path2: the second set or the output .npz
    const char *weights, *features, *featnet_weights, *log;
    EvalConvention conv;
    int is, splits, hash_weights, threads;
    EvalRunConfig run;
    PmfSampleArgs gen;         // PATH1 a checkpoint: what to generate
    const char *floor_path;
    int fd_only;               // skip KID and precision/recall (they keep every feature vector)
} Args;

// ---------------------------------------------------------------------------------------------
// The featnet as an EvalFeatureNet (perceptual/ and eval/ meet only here).
typedef struct FeatnetRunner {
    FeatNet net;
    Arena arena;
    Tape tp;
} FeatnetRunner;

// px (n, H, W, C) uint8 -> gray (BT.601 luma for RGB) in [-1, 1], resized to 32 x 32 (bicubic,
// antialiased, as pmf_lpips) when needed -> the featnet's 128-d feature vector.
static int featnet_fn(void *ctx, const uint8_t *px, int n, int H, int W, int C, float *feat, float *logits) {
    FeatnetRunner *r = ctx;
    tape_reset(&r->tp);
    int shape[4] = {n, 1, H, W};
    Tensor *x = tensor_new(&r->tp, 4, shape, "gray");
    size_t HW = (size_t)H * W;
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < HW; k++) {
            const uint8_t *p = px + ((size_t)i * HW + k) * C;
            float v = C == 1 ? p[0] : (299.0f * p[0] + 587.0f * p[1] + 114.0f * p[2]) / 1000.0f;
            x->data[i * HW + k] = v / 127.5f - 1.0f;
        }
    if (H != FEATNET_SIZE || W != FEATNET_SIZE) x = op_resize(&r->tp, x, FEATNET_SIZE, FEATNET_SIZE, RESIZE_BICUBIC, 1);
    Tensor *f = NULL, *z = featnet_forward(&r->tp, &r->net, x, NULL, &f);   // logits: the class it sees
    memcpy(feat, f->data, (size_t)n * FEATNET_FEATURE_DIM * sizeof(float));
    if (logits) memcpy(logits, z->data, (size_t)n * FEATNET_CLASSES * sizeof(float));
    tape_reset(&r->tp);
    return 0;
}

// ---------------------------------------------------------------------------------------------

static int parse(int argc, char **argv, Args *a) {
    memset(a, 0, sizeof *a);
    eval_run_config_default(&a->run);
    a->features = "inception";
    a->splits = 10;
    a->gen = (PmfSampleArgs){NULL, 0, 10000, 100, 0, NAN, NAN, NAN, NULL, 0, 0, NULL, NULL, NULL, 10, NULL, NULL, NULL, NULL};
    a->weights = getenv("PMF_INCEPTION_WEIGHTS");
    if (!a->weights) a->weights = "pt_inception-2015-12-05.safetensors";
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i];
        int has1 = i + 1 < argc, has2 = i + 2 < argc;
        if (!strcmp(f, "--fid") && has2) a->mode = "fid", a->path1 = argv[i + 1], a->path2 = argv[i + 2], i += 2;
        else if (!strcmp(f, "--save-stats") && has2) a->mode = "save-stats", a->path1 = argv[i + 1], a->path2 = argv[i + 2], i += 2;
        else if (!strcmp(f, "--is") && has1 && argv[i + 1][0] != '-' && !a->mode) a->mode = "is", a->path1 = argv[++i], a->is = 1;
        else if (!strcmp(f, "--is")) a->is = 1;
        else if (!strcmp(f, "--weights") && has1) a->weights = argv[++i];
        else if (!strcmp(f, "--features") && has1) a->features = argv[++i];
        else if (!strcmp(f, "--featnet-weights") && has1) a->featnet_weights = argv[++i];
        else if (!strcmp(f, "--convention") && has1) {
            if (eval_convention_parse(argv[++i], &a->conv)) {
                fprintf(stderr, "pmf_eval: %s\n", core_last_error());
                return -1;
            }
        } else if (!strcmp(f, "--splits") && has1) a->splits = atoi(argv[++i]);
        else if (!strcmp(f, "--batch") && has1) a->run.batch = atoi(argv[++i]);
        else if (!strcmp(f, "--max-images") && has1) a->run.max_images = atoll(argv[++i]);
        else if (!strcmp(f, "--threads") && has1) a->threads = atoi(argv[++i]);
        else if (!strcmp(f, "--log") && has1) a->log = argv[++i];
        else if (!strcmp(f, "--no-progress")) a->run.progress = 0;
        else if (!strcmp(f, "--hash-weights")) a->hash_weights = 1;
        else if (!strcmp(f, "--fd-only")) a->fd_only = 1;
        else if (!strcmp(f, "--n") && has1) a->gen.n = atoi(argv[++i]);
        else if (!strcmp(f, "--omega") && has1) a->gen.omega = (float)atof(argv[++i]);
        else if (!strcmp(f, "--t-min") && has1) a->gen.t_min = (float)atof(argv[++i]);
        else if (!strcmp(f, "--t-max") && has1) a->gen.t_max = (float)atof(argv[++i]);
        else if (!strcmp(f, "--steps") && has1) a->gen.steps = atoi(argv[++i]);
        else if (!strcmp(f, "--ema") && has1) a->gen.ema = atoi(argv[++i]);
        else if (!strcmp(f, "--seed") && has1) a->gen.seed = (uint64_t)atoll(argv[++i]);
        else if (!strcmp(f, "--floor") && has1) a->floor_path = argv[++i];
        else if (!strcmp(f, "--help") || !strcmp(f, "-h")) {
            usage();
            exit(0);
        } else {
            fprintf(stderr, "pmf_eval: unknown or incomplete option '%s'\n", f);
            return -1;
        }
    }
    if (!a->mode) {
        fprintf(stderr, "pmf_eval: give --fid PATH1 PATH2, --save-stats PATH OUT.npz or --is PATH\n");
        return -1;
    }
    if (strcmp(a->features, "inception") && strcmp(a->features, "featnet")) {
        fprintf(stderr, "pmf_eval: --features must be inception or featnet (got '%s')\n", a->features);
        return -1;
    }
    if (a->is && strcmp(a->features, "inception")) {
        fprintf(stderr, "pmf_eval: the Inception Score needs --features inception\n");
        return -1;
    }
    if (a->run.batch <= 0 || a->splits <= 0 || a->run.max_images < 0) {
        fprintf(stderr, "pmf_eval: --batch and --splits must be positive\n");
        return -1;
    }
    return 0;
}

// The feature network, opened when the first images need features (statistics files do not).
typedef struct LazyNet {
    const Args *a;
    int use_featnet, loaded;
    Inception inc;
    InceptionRunner ir;
    FeatnetRunner fr;
    EvalFeatureNet real;
} LazyNet;

static int lazy_open(LazyNet *l) {
    const Args *a = l->a;
    if (l->use_featnet) {
        featnet_init(&l->fr.net, 0);
        if (featnet_load(&l->fr.net, a->featnet_weights)) {
            featnet_free(&l->fr.net);
            return -1;
        }
        arena_init(&l->fr.arena, 16 << 20);
        tape_init(&l->fr.tp, &l->fr.arena);
        tape_set_recording(&l->fr.tp, 0);
        l->real = (EvalFeatureNet){"featnet", FEATNET_FEATURE_DIM, FEATNET_CLASSES, featnet_fn, &l->fr};
    } else {
        inception_init(&l->inc);
        if (a->hash_weights) {
            fprintf(stderr, "pmf_eval: --hash-weights: random Inception weights, the value is NOT an FID\n");
            inception_fill_hash(&l->inc);
        } else if (inception_load(&l->inc, a->weights)) {
            inception_free(&l->inc);
            return -1;
        }
        inception_runner_init(&l->ir, &l->inc, a->conv);
        l->real = inception_feature_net(&l->ir);
    }
    l->loaded = 1;
    return 0;
}

static int lazy_fn(void *ctx, const uint8_t *px, int n, int H, int W, int C, float *feat, float *logits) {
    LazyNet *l = ctx;
    if (!l->loaded && lazy_open(l)) return -1;
    return l->real.fn(l->real.ctx, px, n, H, W, C, feat, logits);
}

static void lazy_close(LazyNet *l) {
    if (!l->loaded) return;
    if (l->use_featnet) {
        tape_free(&l->fr.tp), arena_free(&l->fr.arena);
        featnet_free(&l->fr.net);
    } else {
        inception_runner_free(&l->ir);
        inception_free(&l->inc);
    }
}

// What the feature vectors themselves give, next to the Frechet distance (issue: KID, precision and
// recall, and whether the featnet sees the class each sample was asked for).
typedef struct ExtraMetrics {
    int has_kid, has_pr, has_acc;
    double kid, kid_std, precision, recall, accuracy;
    int64_t acc_n;
} ExtraMetrics;

// PATH1 is the generated set, PATH2 the reference. Needs both sets' features (not .npz statistics).
static int extra_metrics(const Args *a, const EvalRunResult *gen, const EvalRunResult *ref, int dim, ExtraMetrics *x) {
    memset(x, 0, sizeof *x);
    if (gen->features && ref->features && !a->fd_only) {
        if (eval_kid(gen->features, gen->n_images, ref->features, ref->n_images, dim, 100, 1000, 0, &x->kid, &x->kid_std))
            return -1;
        if (eval_precision_recall(ref->features, ref->n_images, gen->features, gen->n_images, dim, 3, &x->precision,
                                  &x->recall))
            return -1;
        x->has_kid = x->has_pr = 1;
    }
    // Class accuracy: the featnet's argmax against the label each sample was generated for.
    if (gen->predicted && gen->labels && !strcmp(a->features, "featnet")) {
        int64_t hit = 0;
        for (int64_t i = 0; i < gen->n_images; i++) hit += gen->predicted[i] == gen->labels[i];
        x->accuracy = (double)hit / (double)gen->n_images, x->acc_n = gen->n_images, x->has_acc = 1;
    }
    return 0;
}

static void print_extra(const ExtraMetrics *x, const char *featnet_weights) {
    if (x->has_kid) printf("KID: %.9g +- %.3g (100 subsets of up to 1000, cubic kernel)\n", x->kid, x->kid_std);
    if (x->has_pr) printf("precision: %.7g  recall: %.7g (k = 3)\n", x->precision, x->recall);
    if (x->has_acc)
        printf("class accuracy: %.7g (%lld samples, featnet %s)\n", x->accuracy, (long long)x->acc_n,
               featnet_weights ? featnet_weights : "featnet_fmnist");
}

static void log_json(const Args *a, const char *metric, double value, const EvalRunResult *r1, const EvalRunResult *r2,
                     const EvalFrechet *fr, const ExtraMetrics *x, double seconds) {
    json_object *o = json_object_new_object();
    json_object_object_add(o, "metric", json_object_new_string(metric));
    json_object_object_add(o, "value", json_object_new_double(value));
    json_object_object_add(o, "features", json_object_new_string(a->features));
    if (!strcmp(a->features, "inception")) {
        json_object_object_add(o, "convention", json_object_new_string(eval_convention_name(a->conv)));
        json_object_object_add(o, "weights", json_object_new_string(a->hash_weights ? "hash" : a->weights));
    }
    json_object_object_add(o, "path1", json_object_new_string(a->path1));
    json_object_object_add(o, "n1", json_object_new_int64(r1->from_npz ? -1 : r1->n_images));
    if (r2) {
        json_object_object_add(o, "path2", json_object_new_string(a->path2));
        json_object_object_add(o, "n2", json_object_new_int64(r2->from_npz ? -1 : r2->n_images));
    }
    if (fr) {
        json_object_object_add(o, "mean_term", json_object_new_double(fr->mean_term));
        json_object_object_add(o, "trace_sqrt", json_object_new_double(fr->trace_sqrt));
        json_object_object_add(o, "eig_clamped", json_object_new_int(fr->n_negative));
    }
    if (r1->has_is) {
        json_object_object_add(o, "is_mean", json_object_new_double(r1->is_mean));
        json_object_object_add(o, "is_std", json_object_new_double(r1->is_std));
        json_object_object_add(o, "is_splits", json_object_new_int(a->splits));
    }
    if (x && x->has_kid) {
        json_object_object_add(o, "kid", json_object_new_double(x->kid));
        json_object_object_add(o, "kid_std", json_object_new_double(x->kid_std));
    }
    if (x && x->has_pr) {
        json_object_object_add(o, "precision", json_object_new_double(x->precision));
        json_object_object_add(o, "recall", json_object_new_double(x->recall));
    }
    if (x && x->has_acc) json_object_object_add(o, "class_accuracy", json_object_new_double(x->accuracy));
    json_object_object_add(o, "seconds", json_object_new_double(seconds));
    FILE *f = fopen(a->log, "a");
    if (!f) fprintf(stderr, "pmf_eval: cannot append to log '%s'\n", a->log);
    else {
        fprintf(f, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
        fclose(f);
    }
    json_object_put(o);
}

int main(int argc, char **argv) {
    Args a;
    if (parse(argc, argv, &a)) {
        usage();
        return 2;
    }
    if (a.threads > 0) core_set_threads(a.threads);
    double t0 = core_now();
    int use_featnet = !strcmp(a.features, "featnet");
    // The network is loaded on the first batch of images: two statistics files need none.
    LazyNet lazy = {.a = &a, .use_featnet = use_featnet};
    EvalFeatureNet net = use_featnet ? (EvalFeatureNet){"featnet", FEATNET_FEATURE_DIM, FEATNET_CLASSES, lazy_fn, &lazy}
                                     : (EvalFeatureNet){"inception", INCEPTION_FEATURE_DIM, INCEPTION_N_LOGITS, lazy_fn, &lazy};
    const char *metric = use_featnet ? "FD-featnet" : (a.hash_weights ? "FID(hash-weights)" : "FID");
    // A checkpoint as PATH1: generate its samples into a temporary HDF5 file first (pmf/).
    char gen_path[64] = "";
    size_t l1 = strlen(a.path1);
    if (l1 > 12 && !strcmp(a.path1 + l1 - 12, ".safetensors")) {
        if (a.gen.n < 1 || a.gen.steps < 0) {
            fprintf(stderr, "pmf_eval: --n must be positive and --steps not negative\n");
            return 2;
        }
        snprintf(gen_path, sizeof gen_path, "/tmp/pmf_eval_samples_XXXXXX");
        int fd = mkstemp(gen_path);
        if (fd < 0) {
            fprintf(stderr, "pmf_eval: cannot create a temporary file for the samples\n");
            return 1;
        }
        close(fd);
        a.gen.checkpoint = a.path1, a.gen.h5 = gen_path;
        double tg = core_now();
        if (pmf_sample_resolve(&a.gen, &a.gen) || pmf_sample_run(&a.gen)) {
            fprintf(stderr, "pmf_eval: %s\n", core_last_error());
            unlink(gen_path);
            return 1;
        }
        printf("pmf_eval: %d class-balanced samples from %s (%d NFE, omega %g, interval [%g, %g], %s) in %.1f s\n",
               a.gen.n, a.path1, a.gen.steps, a.gen.omega, a.gen.t_min, a.gen.t_max,
               a.gen.ema < 0 ? "raw weights" : "EMA", core_now() - tg);
        a.path1 = gen_path;
    }
    int rc = 0;
    const EvalReaders *readers = cli_eval_readers();   // dataset/'s shard reader and PNG decoder, for eval/
    EvalRunResult r1, r2;
    memset(&r1, 0, sizeof r1), memset(&r2, 0, sizeof r2);
    EvalRunConfig c1 = a.run;
    c1.is_splits = a.is ? a.splits : 0;
    // Only --fid's two sets feed KID, precision/recall and class accuracy; --fd-only keeps nothing.
    EvalRunConfig c2 = a.run;
    c1.keep_features = c2.keep_features = !strcmp(a.mode, "fid") && !a.fd_only;
    if (eval_stats_from_path(a.path1, readers, &net, &c1, &r1)) {
        fprintf(stderr, "pmf_eval: %s\n", core_last_error());
        rc = 1;
    }
    if (rc == 0 && a.is && !r1.has_is) {
        fprintf(stderr, "pmf_eval: no Inception Score for '%s' (statistics files hold no logits)\n", a.path1);
        rc = 1;
    }
    if (rc == 0 && !strcmp(a.mode, "fid")) {
        if (eval_stats_from_path(a.path2, readers, &net, &c2, &r2)) {
            fprintf(stderr, "pmf_eval: %s\n", core_last_error());
            rc = 1;
        } else {
            EvalFrechet fr;
            if (eval_frechet(&r1.stats, &r2.stats, &fr)) {
                fprintf(stderr, "pmf_eval: %s\n", core_last_error());
                rc = 1;
            } else {
                printf("%s: %.10g\n", metric, fr.distance);
                ExtraMetrics extra;
                if (extra_metrics(&a, &r1, &r2, net.dim, &extra)) {
                    fprintf(stderr, "pmf_eval: %s\n", core_last_error());
                    rc = 1;
                }
                if (fr.n_negative)
                    printf("  (%d eigenvalues below 0, down to %.3g, were clamped to 0)\n", fr.n_negative, fr.most_negative);
                print_extra(&extra, a.featnet_weights);
                if (r1.has_is) printf("IS: %.8g +- %.8g (%d splits, %s)\n", r1.is_mean, r1.is_std, a.splits, a.path1);
                if (a.floor_path) {   // the distance of real images to the reference: the floor
                    EvalRunResult rf;
                    memset(&rf, 0, sizeof rf);
                    EvalFrechet ff;
                    if (eval_stats_from_path(a.floor_path, readers, &net, &a.run, &rf) || eval_frechet(&rf.stats, &r2.stats, &ff)) {
                        fprintf(stderr, "pmf_eval: floor: %s\n", core_last_error());
                        rc = 1;
                    } else printf("%s floor (%s vs %s): %.10g\n", metric, a.floor_path, a.path2, ff.distance);
                    eval_run_result_free(&rf);
                }
                if (a.log) log_json(&a, metric, fr.distance, &r1, &r2, &fr, &extra, core_now() - t0);
            }
        }
    } else if (rc == 0 && !strcmp(a.mode, "save-stats")) {
        if (eval_stats_save_npz(a.path2, &r1.stats)) {
            fprintf(stderr, "pmf_eval: %s\n", core_last_error());
            rc = 1;
        } else {
            printf("pmf_eval: %s statistics of %lld images -> %s\n", net.name, (long long)r1.n_images, a.path2);
            if (r1.has_is) printf("IS: %.8g +- %.8g (%d splits)\n", r1.is_mean, r1.is_std, a.splits);
            if (a.log) log_json(&a, "stats", (double)r1.n_images, &r1, NULL, NULL, NULL, core_now() - t0);
        }
    } else if (rc == 0) {
        printf("IS: %.8g +- %.8g (%d splits, %lld images)\n", r1.is_mean, r1.is_std, a.splits, (long long)r1.n_images);
        if (a.log) log_json(&a, "IS", r1.is_mean, &r1, NULL, NULL, NULL, core_now() - t0);
    }
    eval_run_result_free(&r1), eval_run_result_free(&r2);
    if (gen_path[0]) unlink(gen_path);
    lazy_close(&lazy);
    return rc;
}
