// core/tape.c: the list of recorded ops and the reverse walk over it (micrograd's tape).
// Tangents are not recorded: ops compute them eagerly in the forward call.
#include "core.h"

#include <stdlib.h>
#include <string.h>

void tape_init(Tape *tp, Arena *arena) {
    memset(tp, 0, sizeof *tp);
    tp->arena = arena;
    tp->recording = 1;
}

void tape_free(Tape *tp) {
    free(tp->nodes);
    tp->nodes = NULL;
    tp->n_nodes = tp->cap_nodes = 0;
}

void tape_reset(Tape *tp) {
    tp->n_nodes = 0;
    arena_reset(tp->arena);
}

void tape_set_recording(Tape *tp, int on) { tp->recording = on; }

void tape_redirect_grads(Tape *tp, const float *from, float *to, int64_t n) {
    tp->grad_from = to ? from : NULL;
    tp->grad_to = to;
    tp->grad_n = to ? n : 0;
}

void *tape_alloc(Tape *tp, size_t bytes) { return arena_alloc(tp->arena, bytes); }

void *tape_keep(Tape *tp, const void *src, size_t bytes) {
    void *p = arena_alloc(tp->arena, bytes);
    memcpy(p, src, bytes);
    return p;
}

TapeNode *tape_record(Tape *tp, const char *op, Tensor *out, BackwardFn fn, Tensor *const *inputs,
                      int n_in) {
    if (!tp->recording || !out->requires_grad) return NULL;
    if (n_in > TAPE_MAX_INPUTS) core_fatal("tape_record: %s has %d inputs (max %d)", op, n_in, TAPE_MAX_INPUTS);
    if (tp->n_nodes == tp->cap_nodes) {
        // Grows only while the first step builds its graph; later steps reuse the capacity.
        int cap = tp->cap_nodes ? 2 * tp->cap_nodes : 256;
        TapeNode *nodes = realloc(tp->nodes, (size_t)cap * sizeof *nodes);
        if (!nodes) core_fatal("tape: out of memory for %d nodes", cap);
        tp->nodes = nodes;
        tp->cap_nodes = cap;
    }
    TapeNode *n = &tp->nodes[tp->n_nodes++];
    memset(n, 0, sizeof *n);
    n->backward = fn;
    n->op = op;
    n->out = out;
    n->n_in = n_in;
    for (int i = 0; i < n_in; i++) n->in[i] = inputs[i];
    return n;
}

void tape_backward(Tape *tp, Tensor *out, const float *seed) {
    if (!out->requires_grad) core_fatal("tape_backward: the output does not depend on anything that requires grad");
    tensor_require_contiguous(out, "tape_backward");
    float *g = tensor_grad(tp, out);
    for (int64_t i = 0; i < out->numel; i++) g[i] += seed ? seed[i] : 1.0f;
    for (int i = tp->n_nodes - 1; i >= 0; i--) {
        TapeNode *n = &tp->nodes[i];
        // An output nobody consumed on the way back has no gradient: nothing to propagate.
        Tensor *o = n->out->base ? n->out->base : n->out;
        if (!o->grad) continue;
        n->backward(tp, n);
    }
}
