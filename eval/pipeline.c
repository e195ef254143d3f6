// eval/pipeline.c: from a path to statistics: image sources (a folder of PNGs, an HDF5 shard or a
// folder of them, read through the EvalReaders the caller gives), InceptionV3 as a feature
// network, the batch loop with its progress bar, the streaming mean/covariance and Inception Score.
// Not here: the network (inception.c), the numbers (frechet.c), the .npz format (npz.c), the shard
// format and PNG decoding (their one readers, in dataset/, are reached only through EvalReaders;
// see eval.h for why).
#include "eval.h"

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

// ---------------------------------------------------------------------------------------------
// Sources

typedef enum { SRC_PNG, SRC_HDF5, SRC_SHARDS } SourceKind;

struct EvalSource {
    SourceKind kind;
    char *path;
    int64_t n, pos;
    // PNG folder, each file decoded by `images`
    const EvalImageDecoder *images;
    char **files;
    uint8_t *pending;            // an image read but not yet returned (its size differed)
    int pend_h, pend_w, pend_c;
    // one HDF5 shard, open in its reader
    const EvalShardReader *reader;
    void *shard;
    const int32_t *shard_labels;   // (n) the reader's; NULL: none
    int H, W, C;
    // a folder of pmf_prepare shards: one HDF5 source per shard, read in name order
    EvalSource **parts;
    int n_parts, part;
    // the batch handed out
    uint8_t *buf;
    size_t cap;
};

static EvalSource *open_shard(const char *path, const EvalShardReader *reader);

// pmf_prepare's output folder (shard-*.h5) as one set; every shard must hold the same geometry.
static EvalSource *open_shards(const char *path, char **names, int n_names, const EvalShardReader *reader) {
    EvalSource *s = core_calloc(1, sizeof *s, "eval source");
    s->kind = SRC_SHARDS;
    s->path = strdup(path);
    s->parts = core_calloc((size_t)n_names, sizeof *s->parts, "eval shards");
    for (int i = 0; i < n_names; i++) {
        EvalSource *p = open_shard(names[i], reader);
        if (!p) {
            eval_source_close(s);
            return NULL;
        }
        s->parts[s->n_parts++] = p;
        if (i == 0) s->H = p->H, s->W = p->W, s->C = p->C;
        else if (p->H != s->H || p->W != s->W || p->C != s->C) {
            core_set_error("eval: shard '%s' holds %dx%dx%d images, '%s' %dx%dx%d", names[i], p->H, p->W, p->C, names[0],
                           s->H, s->W, s->C);
            eval_source_close(s);
            return NULL;
        }
        s->n += p->n;
    }
    return s;
}

static int has_ext(const char *name, const char *ext) {
    size_t n = strlen(name), e = strlen(ext);
    if (n <= e) return 0;
    for (size_t i = 0; i < e; i++)
        if (tolower((unsigned char)name[n - e + i]) != ext[i]) return 0;
    return 1;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static EvalSource *open_folder(const char *path, const EvalReaders *readers) {
    DIR *d = opendir(path);
    if (!d) {
        core_set_error("eval: cannot open folder '%s'", path);
        return NULL;
    }
    EvalSource *s = core_calloc(1, sizeof *s, "eval source");
    s->kind = SRC_PNG;
    s->path = strdup(path);
    int64_t cap = 0, other = 0;
    const char *other_ext[] = {".jpg", ".jpeg", ".bmp", ".pgm", ".ppm", ".tif", ".tiff", ".webp"};
    char **shards = NULL;
    int n_shards = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (!strncmp(e->d_name, "shard-", 6) && has_ext(e->d_name, ".h5")) {
            shards = realloc(shards, (size_t)(n_shards + 1) * sizeof(char *));
            if (!shards) core_fatal("eval: out of memory listing '%s'", path);
            size_t len = strlen(path) + strlen(e->d_name) + 2;
            shards[n_shards] = core_malloc(len, "file name");
            snprintf(shards[n_shards++], len, "%s/%s", path, e->d_name);
        } else if (has_ext(e->d_name, ".png")) {
            if (s->n == cap) {
                cap = cap ? 2 * cap : 256;
                s->files = realloc(s->files, (size_t)cap * sizeof(char *));
                if (!s->files) core_fatal("eval: out of memory listing '%s'", path);
            }
            size_t len = strlen(path) + strlen(e->d_name) + 2;
            s->files[s->n] = core_malloc(len, "file name");
            snprintf(s->files[s->n], len, "%s/%s", path, e->d_name);
            s->n++;
        } else {
            for (size_t k = 0; k < sizeof other_ext / sizeof *other_ext; k++) other += has_ext(e->d_name, other_ext[k]);
        }
    }
    closedir(d);
    if (n_shards && s->n == 0 && !other) {   // a shard folder (pmf_prepare), not images
        qsort(shards, (size_t)n_shards, sizeof(char *), cmp_str);
        eval_source_close(s);
        EvalSource *sh = NULL;
        if (readers && readers->shards) sh = open_shards(path, shards, n_shards, readers->shards);
        else core_set_error("eval: folder '%s' holds HDF5 shards (shard-*.h5) but no shard reader was given", path);
        for (int i = 0; i < n_shards; i++) free(shards[i]);
        free(shards);
        return sh;
    }
    for (int i = 0; i < n_shards; i++) free(shards[i]);
    free(shards);
    if (other) {
        core_set_error("eval: folder '%s' holds %lld non-PNG images (JPEG, BMP, ...); only PNG is read (pytorch-fid "
                       "would read them too, so the statistics would differ)", path, (long long)other);
        eval_source_close(s);
        return NULL;
    }
    if (s->n == 0) {
        core_set_error("eval: folder '%s' holds no .png images", path);
        eval_source_close(s);
        return NULL;
    }
    if (!readers || !readers->images) {
        core_set_error("eval: folder '%s' holds PNG images but no image decoder was given", path);
        eval_source_close(s);
        return NULL;
    }
    s->images = readers->images;
    qsort(s->files, (size_t)s->n, sizeof(char *), cmp_str);
    return s;
}

// One shard (pmf_sample --h5, or one of pmf_prepare's) through the caller's reader, which checks
// its layout and sizes before reading pixels (cli/eval_readers.c's does).
static EvalSource *open_shard(const char *path, const EvalShardReader *reader) {
    EvalShardInfo info = {0};
    void *shard = reader->open(reader->ctx, path, &info);
    if (!shard) return NULL;   // the reader's message names the file
    // The reader is code, not a file, but its numbers size our buffers: refuse nonsense here too.
    if (info.n <= 0 || info.h <= 0 || info.w <= 0 || info.c <= 0 || info.h > 65536 || info.w > 65536 || info.c > 4) {
        if (info.n == 0) core_set_error("eval: shard '%s' holds no images", path);
        else core_set_error("eval: shard '%s': the reader reports %lld images of %dx%dx%d", path, (long long)info.n,
                            info.h, info.w, info.c);
        reader->close(shard);
        return NULL;
    }
    EvalSource *s = core_calloc(1, sizeof *s, "eval source");
    s->kind = SRC_HDF5;
    s->path = strdup(path);
    s->reader = reader, s->shard = shard, s->shard_labels = info.labels;
    s->n = info.n, s->H = info.h, s->W = info.w, s->C = info.c;
    return s;
}

EvalSource *eval_source_open(const char *path, const EvalReaders *readers) {
    const EvalShardReader *shards = readers ? readers->shards : NULL;
    struct stat stt;
    if (stat(path, &stt) != 0) {
        core_set_error("eval: '%s' does not exist", path);
        return NULL;
    }
    if (S_ISDIR(stt.st_mode)) return open_folder(path, readers);
    if (shards && shards->claims(shards->ctx, path)) return open_shard(path, shards);
    if (!shards && (has_ext(path, ".h5") || has_ext(path, ".hdf5"))) {
        core_set_error("eval: '%s' looks like an HDF5 shard but no shard reader was given", path);
        return NULL;
    }
    core_set_error("eval: '%s' is neither a folder of PNG images, an HDF5 file nor an .npz of statistics", path);
    return NULL;
}

int64_t eval_source_count(const EvalSource *s) { return s->n; }

// "<anything>_class<k>.png" -> k; -1 if the name does not say.
static int32_t png_name_class(const char *path) {
    const char *p = strrchr(path, '/');
    p = strstr(p ? p : path, "_class");
    if (!p) return -1;
    char *end;
    long k = strtol(p + 6, &end, 10);
    return end == p + 6 || strcasecmp(end, ".png") || k < 0 || k > 1000000 ? -1 : (int32_t)k;
}

int eval_source_labels(EvalSource *s, int32_t **labels) {
    *labels = NULL;
    int32_t *l = core_malloc((size_t)(s->n > 0 ? s->n : 1) * sizeof(int32_t), "labels");
    int rc = 0;
    if (s->kind == SRC_HDF5) {
        if (s->shard_labels) memcpy(l, s->shard_labels, (size_t)s->n * sizeof(int32_t));
        else rc = 1;
    } else if (s->kind == SRC_SHARDS) {   // labels for the set only if every shard has them
        int64_t at = 0;
        for (int i = 0; i < s->n_parts && rc == 0; i++) {
            if (s->parts[i]->shard_labels)
                memcpy(l + at, s->parts[i]->shard_labels, (size_t)s->parts[i]->n * sizeof(int32_t));
            else rc = 1;
            at += s->parts[i]->n;
        }
    } else
        for (int64_t i = 0; i < s->n && rc == 0; i++)
            if ((l[i] = png_name_class(s->files[i])) < 0) rc = 1;
    if (rc) free(l);
    else *labels = l;
    return rc;
}
const char *eval_source_kind(const EvalSource *s) {
    return s->kind == SRC_PNG ? "png-folder" : s->kind == SRC_SHARDS ? "hdf5-shards" : "hdf5";
}

static void ensure(EvalSource *s, size_t bytes) {
    if (bytes > s->cap) {
        free(s->buf);
        s->buf = core_malloc(bytes, "eval batch pixels");
        s->cap = bytes;
    }
}

// One PNG through the caller's decoder (its message names the file). The decoder is code, not a
// file, but its numbers size our buffers: refuse nonsense here too.
static uint8_t *decode_png(const EvalSource *s, const char *path, int *H, int *W, int *C) {
    *H = *W = *C = 0;
    uint8_t *px = s->images->decode_file(s->images->ctx, path, H, W, C);
    if (px && (*H <= 0 || *W <= 0 || *H > 65536 || *W > 65536 || (*C != 1 && *C != 3))) {
        core_set_error("eval: PNG '%s': the decoder reports %dx%dx%d pixels (C must be 1 or 3)", path, *H, *W, *C);
        free(px);
        return NULL;
    }
    return px;
}

const uint8_t *eval_source_next(EvalSource *s, int max_n, int *n, int *H, int *W, int *C) {
    *n = 0;
    if (s->pos >= s->n && !s->pending) return NULL;
    if (s->kind == SRC_SHARDS) {   // batches never span shards: the next call moves on
        while (s->part < s->n_parts) {
            const uint8_t *r = eval_source_next(s->parts[s->part], max_n, n, H, W, C);
            if (*n < 0) return NULL;
            if (r) {
                s->pos += *n;
                return r;
            }
            s->part++;
        }
        return NULL;
    }
    if (s->kind == SRC_HDF5) {
        int k = (int)(s->n - s->pos < max_n ? s->n - s->pos : max_n);
        size_t img = (size_t)s->H * s->W * s->C;
        ensure(s, (size_t)k * img);
        if (s->reader->read(s->shard, s->pos, k, s->buf)) {   // the reader's message names the file
            *n = -1;
            return NULL;
        }
        s->pos += k;
        *n = k, *H = s->H, *W = s->W, *C = s->C;
        return s->buf;
    }
    int h0 = 0, w0 = 0, c0 = 0, k = 0;
    while (k < max_n) {
        uint8_t *img;
        int h, w, c;
        if (s->pending) img = s->pending, h = s->pend_h, w = s->pend_w, c = s->pend_c, s->pending = NULL;
        else {
            if (s->pos >= s->n) break;
            img = decode_png(s, s->files[s->pos], &h, &w, &c);
            if (!img) {
                *n = -1;
                return NULL;
            }
            s->pos++;
        }
        if (k == 0) h0 = h, w0 = w, c0 = c;
        else if (h != h0 || w != w0 || c != c0) {   // another size: it starts the next batch
            s->pending = img, s->pend_h = h, s->pend_w = w, s->pend_c = c;
            break;
        }
        size_t bytes = (size_t)h * w * c;
        if (k == 0) ensure(s, (size_t)max_n * bytes);
        memcpy(s->buf + (size_t)k * bytes, img, bytes);
        free(img);
        k++;
    }
    *n = k, *H = h0, *W = w0, *C = c0;
    return k ? s->buf : NULL;
}

void eval_source_close(EvalSource *s) {
    if (!s) return;
    for (int i = 0; i < s->n_parts; i++) eval_source_close(s->parts[i]);
    free(s->parts);
    if (s->shard) s->reader->close(s->shard);
    for (int64_t i = 0; i < s->n && s->files; i++) free(s->files[i]);
    free(s->files), free(s->pending), free(s->buf), free(s->path);
    free(s);
}

// ---------------------------------------------------------------------------------------------
// InceptionV3 as a feature network

static int inception_fn(void *ctx, const uint8_t *px, int n, int H, int W, int C, float *feat, float *logits) {
    InceptionRunner *r = ctx;
    if (C != 1 && C != 3) {
        core_set_error("inception: images with %d channels (1 or 3)", C);
        return -1;
    }
    tape_reset(&r->tp);
    Tensor *x = inception_preprocess_u8(&r->tp, px, n, H, W, C, r->conv);
    Tensor *p, *l = NULL;
    inception_forward(&r->tp, r->net, x, &p, logits ? &l : NULL);
    memcpy(feat, p->data, (size_t)n * INCEPTION_FEATURE_DIM * sizeof(float));
    if (logits)   // the unbiased logits of the original IS code (torch-fidelity's 'logits_unbiased')
        for (int i = 0; i < n; i++)
            for (int k = 0; k < INCEPTION_N_LOGITS; k++)
                logits[(size_t)i * INCEPTION_N_LOGITS + k] = l->data[(size_t)i * INCEPTION_N_LOGITS + k] - r->net->fc_b->data[k];
    tape_reset(&r->tp);
    return 0;
}

void inception_runner_init(InceptionRunner *r, const Inception *net, EvalConvention conv) {
    r->net = net;
    r->conv = conv;
    arena_init(&r->arena, 64 << 20);
    tape_init(&r->tp, &r->arena);
    tape_set_recording(&r->tp, 0);
}

void inception_runner_free(InceptionRunner *r) {
    tape_free(&r->tp);
    arena_free(&r->arena);
}

EvalFeatureNet inception_feature_net(InceptionRunner *r) {
    EvalFeatureNet f = {"inception", INCEPTION_FEATURE_DIM, INCEPTION_N_LOGITS, inception_fn, r};
    return f;
}

// ---------------------------------------------------------------------------------------------
// The batch loop

void eval_run_config_default(EvalRunConfig *c) {
    c->batch = 50;
    c->max_images = 0;
    c->progress = 1;
    c->is_splits = 0;
}

static void progress(const char *label, int64_t done, int64_t total, double t0, int final) {
    double el = core_now() - t0, rate = el > 0 ? done / el : 0, eta = rate > 0 ? (total - done) / rate : 0;
    int width = 30, fill = total ? (int)(width * done / total) : width;
    char bar[40];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '#' : '-';
    bar[width] = 0;
    fprintf(stderr, "\r%s [%s] %lld/%lld  %.1f img/s  ETA %dm%02ds ", label, bar, (long long)done, (long long)total,
            rate, (int)eta / 60, (int)eta % 60);
    if (final) fprintf(stderr, "\n");
    fflush(stderr);
}

int eval_stats_from_path(const char *path, const EvalReaders *readers, const EvalFeatureNet *net, const EvalRunConfig *cfg,
                         EvalRunResult *out) {
    memset(out, 0, sizeof *out);
    double t0 = core_now();
    struct stat stt;
    if (stat(path, &stt) == 0 && !S_ISDIR(stt.st_mode) && has_ext(path, ".npz")) {
        if (eval_stats_load_npz(path, &out->stats)) return -1;
        if (out->stats.dim != net->dim) {
            core_set_error("eval: '%s' holds %d-d statistics but the %s features are %d-d", path, out->stats.dim,
                           net->name, net->dim);
            eval_stats_free(&out->stats);
            return -1;
        }
        out->from_npz = 1;
        out->seconds = core_now() - t0;
        return 0;
    }
    EvalSource *src = eval_source_open(path, readers);
    if (!src) return -1;
    int64_t total = eval_source_count(src);
    if (cfg->max_images > 0 && cfg->max_images < total) total = cfg->max_images;
    int batch = cfg->batch > 0 ? cfg->batch : 50;
    int want_is = cfg->is_splits > 0 && net->n_logits > 0;
    if (want_is && total < cfg->is_splits) {
        core_set_error("eval: the Inception Score with %d splits needs at least %d images ('%s' has %lld)",
                       cfg->is_splits, cfg->is_splits, path, (long long)total);
        eval_source_close(src);
        return -1;
    }
    EvalStatsAcc acc;
    eval_acc_init(&acc, net->dim);
    EvalIsAcc isa;
    if (want_is) eval_is_init(&isa, net->n_logits, cfg->is_splits, total);
    int keep = cfg->keep_features, want_logits = want_is || (keep && net->n_logits > 0);
    if (keep) {
        int lr = eval_source_labels(src, &out->labels);
        if (lr < 0) {
            eval_source_close(src);
            return -1;
        }
        out->features = core_malloc((size_t)(total > 0 ? total : 1) * net->dim * sizeof(float), "kept features");
        if (net->n_logits > 0) out->predicted = core_malloc((size_t)(total > 0 ? total : 1) * sizeof(int32_t), "predictions");
    }
    float *feat = core_malloc((size_t)batch * net->dim * sizeof(float), "features");
    float *logits = want_logits ? core_malloc((size_t)batch * net->n_logits * sizeof(float), "logits") : NULL;
    int show = cfg->progress && isatty(2);
    char label[64];
    snprintf(label, sizeof label, "%s", net->name);
    int64_t done = 0;
    int rc = 0;
    double last = 0;
    while (done < total) {
        int n, H, W, C;
        int want = (int)(total - done < batch ? total - done : batch);
        const uint8_t *px = eval_source_next(src, want, &n, &H, &W, &C);
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0) break;
        if (net->fn(net->ctx, px, n, H, W, C, feat, logits)) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", core_last_error());
            core_set_error("eval: %s features of images %lld.. of '%s': %s", net->name, (long long)done, path, msg);
            rc = -1;
            break;
        }
        eval_acc_add(&acc, feat, n);
        if (want_is) eval_is_add(&isa, logits, n);
        if (keep) {
            memcpy(out->features + (size_t)done * net->dim, feat, (size_t)n * net->dim * sizeof(float));
            for (int i = 0; out->predicted && i < n; i++) {
                const float *z = logits + (size_t)i * net->n_logits;
                int best = 0;
                for (int k = 1; k < net->n_logits; k++) best = z[k] > z[best] ? k : best;
                out->predicted[done + i] = best;
            }
        }
        done += n;
        if (show && (core_now() - last > 0.25 || done == total)) {
            progress(label, done, total, t0, done == total);
            last = core_now();
        }
    }
    if (rc == 0 && done != total) {
        core_set_error("eval: '%s' ended after %lld of %lld images", path, (long long)done, (long long)total);
        rc = -1;
    }
    if (rc == 0) rc = eval_acc_finish(&acc, &out->stats);
    if (rc == 0 && want_is) {
        rc = eval_is_finish(&isa, &out->is_mean, &out->is_std);
        out->has_is = rc == 0;
    }
    out->n_images = done;
    out->seconds = core_now() - t0;
    free(feat), free(logits);
    eval_acc_free(&acc);
    if (want_is) eval_is_free(&isa);
    eval_source_close(src);
    if (rc) eval_run_result_free(out);
    return rc;
}

void eval_run_result_free(EvalRunResult *r) {
    eval_stats_free(&r->stats);
    free(r->features), free(r->predicted), free(r->labels);
    r->features = NULL, r->predicted = NULL, r->labels = NULL;
}
