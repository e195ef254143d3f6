// dataset/stream.c: the training-time reader. Shards -> batches of float NCHW in [-1, 1].
//
// The order of one epoch is a pure function of (seed, epoch, rank, world): shards are permuted
// (Fisher-Yates on Philox draws), their images concatenated, dealt round-robin to ranks, and each
// rank's sequence passed through a shuffle buffer driven by Philox draws. The simulation is on
// indices only (no pixels), so building an epoch's order costs a few milliseconds, and the whole
// reader state is (epoch, index): saving and restoring a position replays nothing but integers.
// A background thread reads ahead `prefetch` batches (pthreads); HDF5 (serial build, not
// thread-safe) is only ever called under one process-wide lock.
#include "dataset/dataset.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

#define OPEN_SHARDS 8   // shards kept open at once (LRU); the shuffle buffer spans only a few

static pthread_mutex_t hdf5_lock = PTHREAD_MUTEX_INITIALIZER;

// Domain tags keep the three uses of Philox independent.
enum { TAG_SHARDS = 1, TAG_BUFFER = 2, TAG_FLIP = 3 };

static uint32_t draw(uint64_t seed, int tag, int64_t epoch, int rank, uint64_t i) {
    uint32_t ctr[4] = {(uint32_t)i, (uint32_t)(i >> 32), (uint32_t)epoch, (uint32_t)tag << 24 | (uint32_t)rank};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32)}, out[4];
    philox4x32_10(ctr, key, out);
    return out[0];
}

typedef struct Slot {
    float *x;
    int32_t *y;
    DsStreamPos after;
    int status;            // 0 empty, 1 ready, -1 failed (err)
    char err[1024];
} Slot;

struct DsStream {
    DsStreamConfig cfg;
    int n_shards, c, h, w;
    char **paths;
    int64_t *offset;       // n_shards + 1: global index of each shard's first image
    int32_t *labels;       // all labels, global order
    int64_t per_rank;      // images per rank per epoch (drop-last across ranks)
    // producer state (prefetch thread only)
    int64_t order_epoch;
    int64_t *order;        // per_rank global indices of the current epoch
    DsStreamPos next;      // position of the next batch to produce
    DsShard open[OPEN_SHARDS];
    int open_id[OPEN_SHARDS];
    uint64_t open_used[OPEN_SHARDS], tick;
    uint8_t *pixels;       // one image
    // ring
    Slot *slots;
    int n_slots, head, tail;   // consumer takes slots[head], producer fills slots[tail]
    int stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    pthread_t thread;
    DsStreamPos told;      // after the last batch handed out
};

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int64_t find_shard(const DsStream *s, int64_t g) {
    int lo = 0, hi = s->n_shards - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (s->offset[mid] <= g) lo = mid;
        else hi = mid - 1;
    }
    return lo;
}

// The epoch's order for this rank (see the top of the file).
static void build_order(DsStream *s, int64_t epoch) {
    const DsStreamConfig *c = &s->cfg;
    int *perm = core_malloc(sizeof(int) * (size_t)s->n_shards, "shard order");
    for (int i = 0; i < s->n_shards; i++) perm[i] = i;
    for (int i = s->n_shards - 1; i > 0; i--) {
        int j = (int)(draw(c->seed, TAG_SHARDS, epoch, 0, (uint64_t)i) % (uint32_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int64_t cap = c->shuffle_buffer, nb = 0, out = 0, j = 0, need = s->per_rank * c->world;
    int64_t *buf = core_malloc(sizeof(int64_t) * (size_t)cap, "shuffle buffer");
    uint64_t k = 0;
    for (int si = 0; si < s->n_shards && j < need; si++) {
        int sh = perm[si];
        for (int64_t g = s->offset[sh]; g < s->offset[sh + 1] && j < need; g++, j++) {
            if (j % c->world != c->rank) continue;
            if (nb < cap) {
                buf[nb++] = g;
                continue;
            }
            int64_t r = draw(c->seed, TAG_BUFFER, epoch, c->rank, k++) % (uint64_t)cap;
            s->order[out++] = buf[r];
            buf[r] = g;
        }
    }
    while (nb > 0) {   // drain
        int64_t r = draw(c->seed, TAG_BUFFER, epoch, c->rank, k++) % (uint64_t)nb;
        s->order[out++] = buf[r];
        buf[r] = buf[--nb];
    }
    if (out != s->per_rank) core_fatal("stream: epoch order has %lld of %lld items", (long long)out, (long long)s->per_rank);
    free(buf);
    free(perm);
    s->order_epoch = epoch;
}

static DsShard *get_shard(DsStream *s, int id) {
    int victim = 0;
    for (int i = 0; i < OPEN_SHARDS; i++) {
        if (s->open_id[i] == id) {
            s->open_used[i] = ++s->tick;
            return &s->open[i];
        }
        if (s->open_used[i] < s->open_used[victim]) victim = i;
    }
    if (s->open_id[victim] >= 0) ds_shard_close(&s->open[victim]);
    s->open_id[victim] = -1;
    if (ds_shard_open(s->paths[id], &s->open[victim]) != 0) return NULL;
    DsShard *sh = &s->open[victim];
    if (sh->n != s->offset[id + 1] - s->offset[id] || sh->h != s->h || sh->c != s->c) {
        core_set_error("dataset: shard '%s' changed since the stream was opened", s->paths[id]);
        ds_shard_close(sh);
        return NULL;
    }
    s->open_id[victim] = id;
    s->open_used[victim] = ++s->tick;
    return sh;
}

// Produces the batch at s->next into slot; advances s->next.
static int produce(DsStream *s, Slot *slot) {
    const DsStreamConfig *c = &s->cfg;
    int B = c->batch, C = s->c, H = s->h, W = s->w;
    if (s->next.index + B > s->per_rank) {   // the epoch's tail is dropped
        s->next.epoch++;
        s->next.index = 0;
    }
    if (s->order_epoch != s->next.epoch) build_order(s, s->next.epoch);
    size_t plane = (size_t)H * W;
    for (int b = 0; b < B; b++) {
        int64_t g = s->order[s->next.index + b];
        int id = (int)find_shard(s, g);
        pthread_mutex_lock(&hdf5_lock);
        DsShard *sh = get_shard(s, id);
        int rc = sh ? ds_shard_read(sh, g - s->offset[id], s->pixels) : -1;
        pthread_mutex_unlock(&hdf5_lock);
        if (rc) return -1;
        int flip = c->flip && (draw(c->seed, TAG_FLIP, s->next.epoch, 0, (uint64_t)g) & 1);
        float *x = slot->x + (size_t)b * C * plane;
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                const uint8_t *p = s->pixels + ((size_t)y * W + (flip ? W - 1 - xx : xx)) * C;
                for (int ch = 0; ch < C; ch++) x[ch * plane + (size_t)y * W + xx] = p[ch] / 127.5f - 1.0f;
            }
        slot->y[b] = s->labels[g];
    }
    s->next.index += B;
    slot->after = s->next;
    return 0;
}

static void *prefetch_main(void *arg) {
    DsStream *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->stop && s->slots[s->tail].status != 0) pthread_cond_wait(&s->cv, &s->mu);
        if (s->stop) break;
        Slot *slot = &s->slots[s->tail];
        pthread_mutex_unlock(&s->mu);
        int rc = produce(s, slot);
        if (rc) snprintf(slot->err, sizeof slot->err, "%s", core_last_error());
        pthread_mutex_lock(&s->mu);
        slot->status = rc ? -1 : 1;
        s->tail = (s->tail + 1) % s->n_slots;
        pthread_cond_broadcast(&s->cv);
        if (rc) break;   // the consumer reports it; nothing more to read
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int list_shards(DsStream *s) {
    DIR *d = opendir(s->cfg.dir);
    if (!d) {
        core_set_error("dataset: cannot open shard folder '%s'", s->cfg.dir);
        return -1;
    }
    struct dirent *de;
    int cap = 0;
    while ((de = readdir(d)) != NULL) {
        size_t L = strlen(de->d_name);
        if (strncmp(de->d_name, "shard-", 6) != 0 || L < 4 || strcmp(de->d_name + L - 3, ".h5") != 0) continue;
        if (s->n_shards == cap) {
            cap = cap ? 2 * cap : 64;
            s->paths = realloc(s->paths, sizeof(char *) * (size_t)cap);
            if (!s->paths) core_fatal("out of memory listing shards");
        }
        char *p = core_malloc(strlen(s->cfg.dir) + L + 2, "shard path");
        sprintf(p, "%s/%s", s->cfg.dir, de->d_name);
        s->paths[s->n_shards++] = p;
    }
    closedir(d);
    if (s->n_shards == 0) {
        core_set_error("dataset: no shard-*.h5 files in '%s' (run pmf_prepare)", s->cfg.dir);
        return -1;
    }
    qsort(s->paths, (size_t)s->n_shards, sizeof(char *), cmp_str);
    return 0;
}

// Reads every shard's header and labels once (checking that all agree), then closes them.
static int index_shards(DsStream *s) {
    s->offset = core_calloc((size_t)s->n_shards + 1, sizeof(int64_t), "shard offsets");
    int64_t cap = 0;
    for (int i = 0; i < s->n_shards; i++) {
        DsShard sh;
        pthread_mutex_lock(&hdf5_lock);
        int rc = ds_shard_open(s->paths[i], &sh);
        pthread_mutex_unlock(&hdf5_lock);
        if (rc) return -1;
        if (i == 0) s->c = sh.c, s->h = sh.h, s->w = sh.w;
        int same = sh.c == s->c && sh.h == s->h && sh.w == s->w;
        if (same) {
            s->offset[i + 1] = s->offset[i] + sh.n;
            if (s->offset[i + 1] > cap) {
                cap = 2 * s->offset[i + 1];
                s->labels = realloc(s->labels, sizeof(int32_t) * (size_t)cap);
                if (!s->labels) core_fatal("out of memory for labels");
            }
            memcpy(s->labels + s->offset[i], sh.labels, sizeof(int32_t) * (size_t)sh.n);
        } else {
            core_set_error("dataset: shard '%s' holds %dx%dx%d images, '%s' holds %dx%dx%d", s->paths[i], sh.h, sh.w,
                           sh.c, s->paths[0], s->h, s->w, s->c);
        }
        pthread_mutex_lock(&hdf5_lock);
        ds_shard_close(&sh);
        pthread_mutex_unlock(&hdf5_lock);
        if (!same) return -1;
    }
    return 0;
}

static void stream_free(DsStream *s) {
    for (int i = 0; i < OPEN_SHARDS; i++)
        if (s->open_id[i] >= 0) {
            pthread_mutex_lock(&hdf5_lock);
            ds_shard_close(&s->open[i]);
            pthread_mutex_unlock(&hdf5_lock);
        }
    for (int i = 0; i < s->n_shards; i++) free(s->paths[i]);
    free(s->paths);
    free(s->offset);
    free(s->labels);
    free(s->order);
    free(s->pixels);
    for (int i = 0; i < s->n_slots && s->slots; i++) {
        free(s->slots[i].x);
        free(s->slots[i].y);
    }
    free(s->slots);
    free(s);
}

DsStream *ds_stream_open(const DsStreamConfig *cfg, const DsStreamPos *start) {
    DsStream *s = core_calloc(1, sizeof *s, "stream");
    s->cfg = *cfg;
    DsStreamConfig *c = &s->cfg;
    for (int i = 0; i < OPEN_SHARDS; i++) s->open_id[i] = -1;
    if (c->world <= 0) c->world = 1;
    if (c->shuffle_buffer <= 0) c->shuffle_buffer = 10000;
    if (c->prefetch <= 0) c->prefetch = 4;
    if (c->batch <= 0 || c->rank < 0 || c->rank >= c->world || !c->dir) {
        core_set_error("dataset: stream needs a folder, batch > 0 and 0 <= rank < world (got batch %d, rank %d, world %d)",
                       c->batch, c->rank, c->world);
        stream_free(s);
        return NULL;
    }
    if (list_shards(s) || index_shards(s)) {
        stream_free(s);
        return NULL;
    }
    int64_t total = s->offset[s->n_shards];
    s->per_rank = total / c->world;
    if (s->per_rank < c->batch) {
        core_set_error("dataset: '%s' has %lld images, %lld per rank: fewer than one batch of %d", c->dir,
                       (long long)total, (long long)s->per_rank, c->batch);
        stream_free(s);
        return NULL;
    }
    s->order = core_malloc(sizeof(int64_t) * (size_t)s->per_rank, "epoch order");
    s->order_epoch = -1;
    s->pixels = core_malloc((size_t)s->h * s->w * s->c, "stream image");
    if (start) {
        s->next = *start;
        if (s->next.epoch < 0 || s->next.index < 0 || s->next.index > s->per_rank) {
            core_set_error("dataset: stream position (%lld, %lld) is outside this data (%lld per epoch)",
                           (long long)s->next.epoch, (long long)s->next.index, (long long)s->per_rank);
            stream_free(s);
            return NULL;
        }
    }
    s->told = s->next;
    s->n_slots = c->prefetch;
    s->slots = core_calloc((size_t)s->n_slots, sizeof(Slot), "prefetch slots");
    size_t xs = (size_t)c->batch * s->c * s->h * s->w;
    for (int i = 0; i < s->n_slots; i++) {
        s->slots[i].x = core_malloc(sizeof(float) * xs, "prefetch batch");
        s->slots[i].y = core_malloc(sizeof(int32_t) * (size_t)c->batch, "prefetch labels");
    }
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, prefetch_main, s) != 0) {
        core_set_error("dataset: cannot start the prefetch thread");
        stream_free(s);
        return NULL;
    }
    return s;
}

int ds_stream_next(DsStream *s, float *x, int32_t *y) {
    pthread_mutex_lock(&s->mu);
    while (s->slots[s->head].status == 0) pthread_cond_wait(&s->cv, &s->mu);
    Slot *slot = &s->slots[s->head];
    if (slot->status < 0) {
        core_set_error("%s", slot->err);   // stays failed: every later call reports it too
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    pthread_mutex_unlock(&s->mu);
    memcpy(x, slot->x, sizeof(float) * (size_t)s->cfg.batch * s->c * s->h * s->w);
    memcpy(y, slot->y, sizeof(int32_t) * (size_t)s->cfg.batch);
    s->told = slot->after;
    pthread_mutex_lock(&s->mu);
    slot->status = 0;
    s->head = (s->head + 1) % s->n_slots;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

DsStreamPos ds_stream_tell(const DsStream *s) { return s->told; }

void ds_stream_shape(const DsStream *s, int *c, int *h, int *w, int64_t *per_epoch) {
    if (c) *c = s->c;
    if (h) *h = s->h;
    if (w) *w = s->w;
    if (per_epoch) *per_epoch = s->per_rank;
}

void ds_stream_close(DsStream *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    stream_free(s);
}
