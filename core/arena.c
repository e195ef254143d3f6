// core/arena.c: bump allocation for one step's activations.
// Chunks are kept across resets, so a training loop allocates only during its first step.
#include "core.h"

#include <stdlib.h>
#include <string.h>

struct ArenaChunk {
    ArenaChunk *next;
    unsigned char *mem;
    size_t size, used;
};

#define ARENA_ALIGN 64

static ArenaChunk *chunk_new(size_t size) {
    ArenaChunk *c = core_calloc(1, sizeof *c, "arena chunk");
    if (posix_memalign((void **)&c->mem, ARENA_ALIGN, size) != 0)
        core_fatal("arena: out of memory allocating a chunk of %zu bytes", size);
    c->size = size;
    return c;
}

void arena_init(Arena *a, size_t chunk_bytes) {
    memset(a, 0, sizeof *a);
    a->chunk_bytes = chunk_bytes ? chunk_bytes : ((size_t)64 << 20);
}

void *arena_alloc(Arena *a, size_t bytes) {
    size_t need = (bytes + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (need == 0) need = ARENA_ALIGN;
    // Walk forward from the current chunk to the first with room; add a chunk at the end if none.
    ArenaChunk *c = a->current ? a->current : a->chunks;
    while (c && c->size - c->used < need) {
        if (!c->next) break;
        c = c->next;   // chunks past the current one are empty since the last reset
    }
    if (!c || c->size - c->used < need) {
        size_t size = need > a->chunk_bytes ? need : a->chunk_bytes;
        ArenaChunk *n = chunk_new(size);
        a->reserved += size;
        if (!a->chunks) a->chunks = n;
        else {
            ArenaChunk *last = a->chunks;
            while (last->next) last = last->next;
            last->next = n;
        }
        c = n;
    }
    a->current = c;
    void *p = c->mem + c->used;
    c->used += need;
    a->used += need;
    if (a->used > a->peak) a->peak = a->used;
    return p;
}

void *arena_calloc(Arena *a, size_t bytes) {
    void *p = arena_alloc(a, bytes);
    memset(p, 0, bytes);
    return p;
}

void arena_reset(Arena *a) {
    for (ArenaChunk *c = a->chunks; c; c = c->next) c->used = 0;
    a->current = a->chunks;
    a->used = 0;
}

ArenaMark arena_mark(const Arena *a) {
    ArenaMark m = {a->current, a->current ? a->current->used : 0, a->used};
    return m;
}

void arena_release(Arena *a, ArenaMark m) {
    if (!m.chunk) {   // marked before the first allocation
        arena_reset(a);
        return;
    }
    int after = 0;
    for (ArenaChunk *c = a->chunks; c; c = c->next) {
        if (after) c->used = 0;
        if (c == m.chunk) c->used = m.chunk_used, after = 1;
    }
    a->current = m.chunk;
    a->used = m.used;
}

void arena_free(Arena *a) {
    ArenaChunk *c = a->chunks;
    while (c) {
        ArenaChunk *n = c->next;
        free(c->mem);
        free(c);
        c = n;
    }
    memset(a, 0, sizeof *a);
}
