// dataset/prepare.c: pmf_prepare's library half. Lists the items of a source (ImageNet's
// train/<wnid>/ folders, a folder plus a label file, or Fashion-MNIST's idx files), then writes
// shards of `shard_size` items: blocks of items are decoded and centre-cropped in parallel
// (OpenMP), bad items are skipped with a warning naming the file, and each shard is written to a
// .tmp and renamed when complete. Shard k always holds items [k * shard_size, (k+1) * shard_size)
// of the sorted listing, so a rerun keeps every finished shard and redoes only the rest.
#include "dataset/dataset.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <omp.h>

#include "core/core.h"

#define BLOCK 64   // items decoded in parallel between two writes

static const char *const fmnist_classes[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                               "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

typedef struct StrList {
    char **s;
    int n, cap;
} StrList;

static void list_push(StrList *l, const char *s) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 64;
        l->s = realloc(l->s, sizeof(char *) * (size_t)l->cap);
        if (!l->s) core_fatal("out of memory listing files");
    }
    l->s[l->n++] = strdup(s);
}

static void list_free(StrList *l) {
    for (int i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    memset(l, 0, sizeof *l);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

// Appends entries of `dir` (relative to `root`, prefixed by `rel`), recursing when `recurse`.
// want: 1 files, 2 folders.
static int list_dir(const char *root, const char *rel, int want, int recurse, StrList *out) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s%s%s", root, rel[0] ? "/" : "", rel);
    DIR *d = opendir(dir);
    if (!d) {
        core_set_error("dataset: cannot open folder '%s': %s", dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') continue;
        char r[4096], full[8192];
        snprintf(r, sizeof r, "%s%s%s", rel, rel[0] ? "/" : "", de->d_name);
        snprintf(full, sizeof full, "%s/%s", root, r);
        int dirp = is_dir(full);
        if (dirp && recurse) {
            if (list_dir(root, r, want, recurse, out)) {
                closedir(d);
                return -1;
            }
        } else if (dirp == (want == 2)) {
            list_push(out, r);
        }
    }
    closedir(d);
    return 0;
}

typedef struct Source {
    StrList paths;          // full paths of the files (JPEG/PNG sources)
    int32_t *labels;
    int64_t n;
    StrList classes;
    IdxImages fm;           // Fashion-MNIST pixels
    char desc[1024];
    int64_t skipped_listing;   // files dropped while listing (missing label)
} Source;

static void warn(int progress, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    if (progress) fputs("\r\033[K", stderr);
    fputs("pmf_prepare: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int source_imagenet(const DsPrepareConfig *cfg, Source *src) {
    if (list_dir(cfg->input, "", 2, 0, &src->classes)) return -1;
    qsort(src->classes.s, (size_t)src->classes.n, sizeof(char *), cmp_str);
    if (src->classes.n == 0) {
        core_set_error("dataset: '%s' has no class folders (expected train/<wnid>/*.JPEG)", cfg->input);
        return -1;
    }
    int64_t cap = 0;
    for (int k = 0; k < src->classes.n; k++) {
        StrList files = {0};
        if (list_dir(cfg->input, src->classes.s[k], 1, 0, &files)) return -1;
        qsort(files.s, (size_t)files.n, sizeof(char *), cmp_str);
        for (int i = 0; i < files.n; i++) {
            char full[8192];
            snprintf(full, sizeof full, "%s/%s", cfg->input, files.s[i]);
            list_push(&src->paths, full);
            if (src->paths.n > cap) {
                cap = 2 * src->paths.n;
                src->labels = realloc(src->labels, sizeof(int32_t) * (size_t)cap);
                if (!src->labels) core_fatal("out of memory for labels");
            }
            src->labels[src->paths.n - 1] = k;
        }
        list_free(&files);
    }
    src->n = src->paths.n;
    snprintf(src->desc, sizeof src->desc, "imagenet:%s", cfg->input);
    return 0;
}

typedef struct LabelLine {
    char *path, *label;
} LabelLine;

static int cmp_line(const void *a, const void *b) { return strcmp(((const LabelLine *)a)->path, ((const LabelLine *)b)->path); }

static int source_folder(const DsPrepareConfig *cfg, Source *src) {
    if (!cfg->label_file) {
        core_set_error("dataset: a folder source needs a label file (lines 'relative/path label')");
        return -1;
    }
    FILE *f = fopen(cfg->label_file, "r");
    if (!f) {
        core_set_error("dataset: cannot open label file '%s'", cfg->label_file);
        return -1;
    }
    LabelLine *lines = NULL;
    int nl = 0, cap = 0, lineno = 0, all_int = 1, max_int = -1;
    char buf[8192];
    while (fgets(buf, sizeof buf, f)) {
        lineno++;
        char *p = buf + strspn(buf, " \t"), path[4096], label[1024];
        if (*p == '#' || *p == '\n' || *p == 0) continue;
        if (sscanf(p, "%4095s %1023s", path, label) != 2) {
            fclose(f);
            core_set_error("dataset: label file '%s' line %d: expected 'relative/path label'", cfg->label_file, lineno);
            return -1;
        }
        if (nl == cap) {
            cap = cap ? 2 * cap : 256;
            lines = realloc(lines, sizeof(LabelLine) * (size_t)cap);
            if (!lines) core_fatal("out of memory for labels");
        }
        lines[nl].path = strdup(path);
        lines[nl].label = strdup(label);
        char *end;
        long v = strtol(label, &end, 10);
        if (*end || v < 0 || v > 1000000) all_int = 0;
        else if (v > max_int) max_int = (int)v;
        nl++;
    }
    fclose(f);
    qsort(lines, (size_t)nl, sizeof(LabelLine), cmp_line);
    // Class table: integer labels name themselves; otherwise the sorted distinct names.
    if (all_int) {
        for (int k = 0; k <= max_int; k++) {
            snprintf(buf, sizeof buf, "%d", k);
            list_push(&src->classes, buf);
        }
    } else {
        StrList names = {0};
        for (int i = 0; i < nl; i++) list_push(&names, lines[i].label);
        qsort(names.s, (size_t)names.n, sizeof(char *), cmp_str);
        for (int i = 0; i < names.n; i++)
            if (i == 0 || strcmp(names.s[i], names.s[i - 1]) != 0) list_push(&src->classes, names.s[i]);
        list_free(&names);
    }
    StrList files = {0};
    if (list_dir(cfg->input, "", 1, 1, &files)) return -1;
    qsort(files.s, (size_t)files.n, sizeof(char *), cmp_str);
    src->labels = core_malloc(sizeof(int32_t) * (size_t)(files.n + 1), "labels");
    for (int i = 0; i < files.n; i++) {
        char full[8192];
        snprintf(full, sizeof full, "%s/%s", cfg->input, files.s[i]);
        char *lf = realpath(cfg->label_file, NULL), *ff = realpath(full, NULL);
        int is_label_file = lf && ff && strcmp(lf, ff) == 0;
        free(lf);
        free(ff);
        if (is_label_file) continue;
        LabelLine key = {files.s[i], NULL};
        LabelLine *hit = bsearch(&key, lines, (size_t)nl, sizeof(LabelLine), cmp_line);
        if (!hit) {
            warn(cfg->progress, "%s: no label in '%s' (skipped)", full, cfg->label_file);
            src->skipped_listing++;
            continue;
        }
        int32_t lab;
        if (all_int) {
            lab = (int32_t)strtol(hit->label, NULL, 10);
        } else {
            char *kp = hit->label;
            char **found = bsearch(&kp, src->classes.s, (size_t)src->classes.n, sizeof(char *), cmp_str);
            lab = (int32_t)(found - src->classes.s);
        }
        src->labels[src->paths.n] = lab;
        list_push(&src->paths, full);
    }
    list_free(&files);
    for (int i = 0; i < nl; i++) {
        free(lines[i].path);
        free(lines[i].label);
    }
    free(lines);
    src->n = src->paths.n;
    snprintf(src->desc, sizeof src->desc, "folder:%s labels:%s", cfg->input, cfg->label_file);
    return 0;
}

static int source_fmnist(const DsPrepareConfig *cfg, Source *src) {
    IdxLabels lb;
    const char *split = cfg->split ? cfg->split : "train";
    if (fashion_mnist_load(cfg->input, split, &src->fm, &lb)) return -1;
    src->n = src->fm.n;
    src->labels = core_malloc(sizeof(int32_t) * (size_t)src->n, "labels");
    for (int64_t i = 0; i < src->n; i++) src->labels[i] = lb.labels[i];
    idx_free_labels(&lb);
    for (int k = 0; k < 10; k++) list_push(&src->classes, fmnist_classes[k]);
    snprintf(src->desc, sizeof src->desc, "fashion-mnist:%s/%s", cfg->input ? cfg->input : FASHION_MNIST_DIR, split);
    return 0;
}

static void source_free(Source *src) {
    list_free(&src->paths);
    list_free(&src->classes);
    free(src->labels);
    idx_free_images(&src->fm);
}

// The ADM centre crop, or with pad_small an image that fits centred on a black canvas.
static int crop_or_pad(const DsPrepareConfig *cfg, const DsImage *im, uint8_t *dst, const char *name) {
    int R = cfg->resolution;
    if (!cfg->pad_small || im->w > R || im->h > R) return ds_center_crop(im, R, dst, name);
    int oy = (R - im->h) / 2, ox = (R - im->w) / 2;
    memset(dst, 0, (size_t)R * R * im->c);
    for (int y = 0; y < im->h; y++)
        memcpy(dst + ((size_t)(y + oy) * R + ox) * im->c, im->px + (size_t)y * im->w * im->c, (size_t)im->w * im->c);
    return 0;
}

// Decodes and crops item i into dst. Returns 0, 1 (converted, message in msg) or -1 (skip, msg).
static int load_item(const Source *src, const DsPrepareConfig *cfg, int64_t i, int channels, uint8_t *dst,
                     char *msg, size_t msg_len) {
    DsImage im;
    if (src->fm.pixels) {
        im = (DsImage){.w = src->fm.w, .h = src->fm.h, .c = 1,
                       .px = src->fm.pixels + (size_t)i * src->fm.w * src->fm.h};
        char name[64];
        snprintf(name, sizeof name, "fashion-mnist item %lld", (long long)i);
        if (crop_or_pad(cfg, &im, dst, name)) {
            snprintf(msg, msg_len, "%s", core_last_error());
            return -1;
        }
        return 0;
    }
    const char *path = src->paths.s[i];
    if (ds_image_load(path, cfg->max_pixels, &im)) {
        snprintf(msg, msg_len, "%s", core_last_error());
        return -1;
    }
    int rc = 0;
    if (crop_or_pad(cfg, &im, dst, path)) {
        snprintf(msg, msg_len, "%s", core_last_error());
        rc = -1;
    } else if (im.converted) {
        snprintf(msg, msg_len, "%s: %s converted to RGB", path, im.converted);
        rc = 1;
    }
    (void)channels;
    ds_image_free(&im);
    return rc;
}

typedef struct Progress {
    int on;
    double t0, last;
    int64_t done0;   // items already done (kept shards) when timing started
} Progress;

static void progress_show(Progress *p, int64_t done, int64_t total, int final) {
    if (!p->on) return;
    double now = core_now();
    if (!final && now - p->last < 0.25) return;
    p->last = now;
    double rate = (done - p->done0) / (now - p->t0 + 1e-9);
    double eta = rate > 0 ? (total - done) / rate : 0;
    int width = 30, fill = total ? (int)(width * done / total) : width;
    char bar[64];
    for (int i = 0; i < width; i++) bar[i] = i < fill ? '=' : i == fill ? '>' : ' ';
    bar[width] = 0;
    fprintf(stderr, "\r[%s] %lld/%lld  %.0f img/s  ETA %dm%02ds%s", bar, (long long)done, (long long)total, rate,
            (int)(eta / 60), (int)eta % 60, final ? "\n" : "");
    fflush(stderr);
}

static int shard_is_done(const char *path, int resolution, int channels) {
    if (access(path, F_OK) != 0) return 0;
    // A file left by an earlier run is checked in a child first: a damaged one may crash libhdf5.
    char msg[1024];
    if (ds_shard_verify(path, 60, msg, sizeof msg) != DS_VERIFY_OK) return 0;   // damaged: redo it
    DsShard s;
    if (ds_shard_open(path, &s) != 0) return 0;
    int ok = s.resolution == resolution && s.c == channels;
    ds_shard_close(&s);
    return ok;
}

static int write_shard(const Source *src, const DsPrepareConfig *cfg, const char *path, int64_t first, int64_t last,
                       int channels, DsPrepareStats *st, Progress *pg, int64_t *done) {
    int R = cfg->resolution;
    size_t isz = (size_t)R * R * channels;
    DsShardMeta meta = {.resolution = R, .channels = channels, .first_index = first, .source = src->desc,
                        .crop_method = cfg->pad_small ? "pad_small (smaller images centred on black), else adm_center_crop"
                                        : "adm_center_crop (guided-diffusion center_crop_arr: BOX /2, BICUBIC, crop)",
                        .n_classes = src->classes.n, .class_names = (const char *const *)src->classes.s};
    DsShardWriter *w = ds_shard_writer_open(path, &meta);
    if (!w) return -1;
    uint8_t *buf = core_malloc(isz * BLOCK, "prepare block");
    int32_t *labs = core_malloc(sizeof(int32_t) * BLOCK, "prepare labels");
    int status[BLOCK];
    char(*msgs)[512] = core_malloc(sizeof(char[512]) * BLOCK, "prepare messages");
    int threads = cfg->threads > 0 ? cfg->threads : omp_get_max_threads();
    int rc = 0;
    for (int64_t b0 = first; b0 < last && rc == 0; b0 += BLOCK) {
        int nb = (int)(last - b0 < BLOCK ? last - b0 : BLOCK);
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int j = 0; j < nb; j++) status[j] = load_item(src, cfg, b0 + j, channels, buf + isz * j, msgs[j], 512);
        int k = 0;
        for (int j = 0; j < nb; j++) {
            if (status[j] < 0) {
                warn(pg->on, "%s (skipped)", msgs[j]);
                st->skipped++;
                continue;
            }
            if (status[j] > 0) {
                warn(pg->on, "%s", msgs[j]);
                st->converted++;
            }
            if (k != j) memcpy(buf + isz * k, buf + isz * j, isz);
            labs[k++] = src->labels[b0 + j];
        }
        if (ds_shard_writer_add(w, buf, labs, k)) rc = -1;
        st->written += k;
        *done += nb;
        progress_show(pg, *done, src->n, 0);
    }
    free(buf);
    free(labs);
    free(msgs);
    if (rc) {
        ds_shard_writer_abort(w);
        return -1;
    }
    return ds_shard_writer_finish(w);
}

int ds_prepare(const DsPrepareConfig *cfg_in, DsPrepareStats *stats) {
    DsPrepareConfig cfg = *cfg_in;
    DsPrepareStats st = {0};
    if (cfg.shard_size <= 0) cfg.shard_size = 1024;
    if (cfg.max_pixels <= 0) cfg.max_pixels = DS_MAX_PIXELS_DEFAULT;
    if (cfg.resolution < 1 || cfg.resolution > 4096) {
        core_set_error("dataset: resolution %d out of range 1..4096", cfg.resolution);
        return -1;
    }
    if (!cfg.out_dir || (!cfg.input && cfg.kind != DS_SRC_FASHION_MNIST)) {
        core_set_error("dataset: prepare needs an input and an output folder");
        return -1;
    }
    if (mkdir(cfg.out_dir, 0777) != 0 && errno != EEXIST) {
        core_set_error("dataset: cannot create output folder '%s': %s", cfg.out_dir, strerror(errno));
        return -1;
    }
    Source src = {0};
    int rc = cfg.kind == DS_SRC_IMAGENET ? source_imagenet(&cfg, &src)
             : cfg.kind == DS_SRC_FOLDER ? source_folder(&cfg, &src)
                                         : source_fmnist(&cfg, &src);
    if (rc) {
        source_free(&src);
        return -1;
    }
    st.skipped = src.skipped_listing;
    if (cfg.limit > 0 && src.n > cfg.limit) src.n = cfg.limit;
    st.items = src.n;
    int channels = cfg.kind == DS_SRC_FASHION_MNIST ? 1 : 3;
    int64_t n_shards = (src.n + cfg.shard_size - 1) / cfg.shard_size, done = 0;
    Progress pg = {.on = cfg.progress, .t0 = core_now()};
    for (int64_t k = 0; k < n_shards && rc == 0; k++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/shard-%05lld.h5", cfg.out_dir, (long long)k);
        int64_t first = k * cfg.shard_size, last = first + cfg.shard_size < src.n ? first + cfg.shard_size : src.n;
        if (shard_is_done(path, cfg.resolution, channels)) {
            st.shards_kept++;
            done += last - first;
            pg.done0 = done;
            pg.t0 = core_now();
            continue;
        }
        rc = write_shard(&src, &cfg, path, first, last, channels, &st, &pg, &done);
        if (rc == 0) st.shards_written++;
    }
    progress_show(&pg, done, src.n, 1);
    source_free(&src);
    if (stats) *stats = st;
    return rc;
}
