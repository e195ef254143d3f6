// core/params.c: the parameter store. Declare every tensor by name, then one allocation holds all
// parameters and one all gradients (llm.c's layout), so optimizers and checkpoints see flat arrays.
#include "core.h"

#include <stdlib.h>
#include <string.h>

void params_init(ParamStore *ps, int max_tensors) {
    memset(ps, 0, sizeof *ps);
    ps->cap = max_tensors;
    ps->tensors = core_calloc((size_t)max_tensors, sizeof(Tensor), "parameter records");
}

Tensor *params_declare(ParamStore *ps, const char *name, int ndim, const int *shape) {
    if (ps->finalized) core_fatal("params_declare: '%s' declared after params_finalize", name);
    if (ps->n == ps->cap) core_fatal("params_declare: more than %d parameter tensors", ps->cap);
    if (params_find(ps, name)) core_fatal("params_declare: '%s' declared twice", name);
    Tensor *t = &ps->tensors[ps->n++];
    memset(t, 0, sizeof *t);
    t->ndim = ndim;
    int64_t n = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        t->shape[i] = shape[i];
        t->stride[i] = n;
        n *= shape[i];
    }
    for (int i = ndim; i < TENSOR_MAX_DIMS; i++) t->shape[i] = 1, t->stride[i] = 1;
    t->numel = n;
    size_t len = strlen(name) + 1;
    char *copy = core_malloc(len, "parameter name");
    memcpy(copy, name, len);
    t->name = copy;
    t->requires_grad = 1;
    // Offsets are kept in `offset` until finalize turns them into pointers. Each tensor starts
    // on a 16-float boundary so kernels see 64-byte aligned rows.
    t->offset = ps->total;
    ps->total += (n + 15) & ~(int64_t)15;
    return t;
}

void params_finalize(ParamStore *ps) {
    size_t bytes = (size_t)(ps->total ? ps->total : 16) * sizeof(float);
    if (posix_memalign((void **)&ps->data, 64, bytes) || posix_memalign((void **)&ps->grad, 64, bytes))
        core_fatal("params: out of memory for %lld parameters", (long long)ps->total);
    memset(ps->data, 0, bytes);
    memset(ps->grad, 0, bytes);
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = &ps->tensors[i];
        t->data = ps->data + t->offset;
        t->grad = ps->grad + t->offset;
        t->offset = 0;
    }
    ps->finalized = 1;
}

void params_zero_grad(ParamStore *ps) {
    if (ps->grad) memset(ps->grad, 0, (size_t)ps->total * sizeof(float));
}

void params_drop_grads(ParamStore *ps) {
    free(ps->grad);
    ps->grad = NULL;
    for (int i = 0; i < ps->n; i++) ps->tensors[i].grad = NULL, ps->tensors[i].requires_grad = 0;
}

Tensor *params_find(ParamStore *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (strcmp(ps->tensors[i].name, name) == 0) return &ps->tensors[i];
    return NULL;
}

void params_free(ParamStore *ps) {
    for (int i = 0; i < ps->n; i++) free((void *)ps->tensors[i].name);
    free(ps->tensors);
    free(ps->data);
    free(ps->grad);
    memset(ps, 0, sizeof *ps);
}

int params_read_safetensors(ParamStore *ps, const SafeTensors *st, const char *path, const char *who,
                            const char *hint) {
    for (int i = 0; i < ps->n; i++) {
        Tensor *t = &ps->tensors[i];
        if (!safetensors_find(st, t->name)) {
            core_set_error("%s: '%s' has no tensor '%s' (%s)", who, path, t->name, hint);
            return -1;
        }
        if (safetensors_read_f32(st, t->name, t->ndim, t->shape, t->data)) return -1;
    }
    return 0;
}
