// tests/test_ops_shape_norm.c: op_contiguous of permuted and sliced views, op_concat (2, 3 and 6
// inputs: more than a tape node's TAPE_MAX_INPUTS), op_embedding (a repeated id, so gradient rows
// accumulate), op_rmsnorm, op_layernorm and op_layernorm_channels (NCHW, over C; one case with a
// constant channel) with and without affine parameters, and op_softmax, against PyTorch goldens and central finite differences through run_op_case.
//
// Tolerances: 1e-5 relative vs PyTorch (float64 references; 2e-5 for the normalisations, whose
// float32 rsqrt/exp and row reductions lose a few ulps), 2e-3 vs central differences with eps 1e-2
// (float32). Goldens: tools/goldens/cases_shape_norm.py.
#include "harness.h"

// The harness compares element counts only; a view copied in the wrong order of axes must fail too.
static Tensor *same_shape_as_golden(Tensor *y, const SafeTensors *g) {
    const StEntry *e = safetensors_find(g, "out");
    ck_assert_msg(e != NULL, "%s: no tensor 'out'", g->path);
    int ok = y->ndim == e->ndim;
    for (int i = 0; ok && i < y->ndim; i++) ok = y->shape[i] == e->shape[i];
    char got[64];
    tensor_shape_str(y, got, sizeof got);
    ck_assert_msg(ok, "%s: output shape %s differs from the golden's", g->path, got);
    return y;
}

static Tensor *permute_201(Tape *tp, Tensor **in, const SafeTensors *g) {
    static const int perm[] = {2, 0, 1};
    return same_shape_as_golden(op_contiguous(tp, op_permute(tp, in[0], perm)), g);
}
static Tensor *permute_0213(Tape *tp, Tensor **in, const SafeTensors *g) {
    static const int perm[] = {0, 2, 1, 3};
    return same_shape_as_golden(op_contiguous(tp, op_permute(tp, in[0], perm)), g);
}
// x (2,5,4) -> x[:, 1:4, :]
static Tensor *slice_ax1(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_contiguous(tp, op_slice(tp, in[0], 1, 1, 4)), g);
}
// x (3,5) -> x[:, 1:3]
static Tensor *slice_last(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_contiguous(tp, op_slice(tp, in[0], 1, 1, 3)), g);
}
static Tensor *concat_2_last(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_concat(tp, in, 2, 2), g);
}
static Tensor *concat_3_ax1(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_concat(tp, in, 3, 1), g);
}
static Tensor *concat_6_ax1(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_concat(tp, in, 6, 1), g);
}
static Tensor *embedding(Tape *tp, Tensor **in, const SafeTensors *g) {
    Tensor *idf = golden_tensor(tp, g, "ids");
    int *ids = tape_alloc(tp, (size_t)idf->numel * sizeof(int));
    for (int64_t i = 0; i < idf->numel; i++) ids[i] = (int)idf->data[i];
    return same_shape_as_golden(op_embedding(tp, in[0], ids, (int)idf->numel), g);
}
static Tensor *rmsnorm_w(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_rmsnorm(tp, in[0], in[1], 1e-6f);
}
static Tensor *rmsnorm_now(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_rmsnorm(tp, in[0], NULL, 1e-6f);
}
static Tensor *layernorm_wb(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_layernorm(tp, in[0], in[1], in[2], 1e-5f);
}
static Tensor *layernorm_now(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_layernorm(tp, in[0], NULL, NULL, 1e-5f);
}
static Tensor *layernorm_channels_wb(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_layernorm_channels(tp, in[0], in[1], in[2], 1e-6f), g);
}
static Tensor *layernorm_channels_now(Tape *tp, Tensor **in, const SafeTensors *g) {
    return same_shape_as_golden(op_layernorm_channels(tp, in[0], NULL, NULL, 1e-6f), g);
}
static Tensor *softmax(Tape *tp, Tensor **in, const SafeTensors *g) { return op_softmax(tp, in[0]); }

static const OpCase cases[] = {
    {"shape_permute_201", permute_201, 1, 0, 1e-5, 2e-3, 1e-2},     // (2,3,4) -> (4,2,3)
    {"shape_permute_0213", permute_0213, 1, 0, 1e-5, 2e-3, 1e-2},   // (2,3,4,5) -> (2,4,3,5)
    {"shape_slice_ax1", slice_ax1, 1, 0, 1e-5, 2e-3, 1e-2},
    {"shape_slice_last", slice_last, 1, 0, 1e-5, 2e-3, 1e-2},
    {"concat_2_last", concat_2_last, 2, 0, 1e-5, 2e-3, 1e-2},       // (2,3,2) | (2,3,5)
    {"concat_3_ax1", concat_3_ax1, 3, 0, 1e-5, 2e-3, 1e-2},         // (2,1,4) | (2,3,4) | (2,2,4)
    {"concat_6_ax1", concat_6_ax1, 6, 0, 1e-5, 2e-3, 1e-2},         // (2,T_i,3), T = 2,1,1,1,2,3
    {"embedding", embedding, 1, 0, 1e-5, 2e-3, 1e-2},               // table (5,4), ids 3,0,3,1,4,3
    {"rmsnorm_w", rmsnorm_w, 2, 0, 2e-5, 2e-3, 1e-2},               // x (2,3,8), w (8)
    {"rmsnorm_now", rmsnorm_now, 1, 0, 2e-5, 2e-3, 1e-2},           // x (3,8)
    {"layernorm_wb", layernorm_wb, 3, 0, 2e-5, 2e-3, 1e-2},         // x (2,3,8), w, b (8)
    {"layernorm_now", layernorm_now, 1, 0, 2e-5, 2e-3, 1e-2},       // x (3,8)
    {"layernorm_channels_wb", layernorm_channels_wb, 3, 0, 2e-5, 2e-3, 1e-2},        // x (2,5,3,4), w, b (5)
    {"layernorm_channels_now", layernorm_channels_now, 1, 0, 2e-5, 2e-3, 1e-2},      // x (2,5,3,4)
    {"layernorm_channels_const", layernorm_channels_wb, 3, 0, 2e-5, 2e-3, 1e-2},     // x[:, 2] = 0.75
    {"softmax_last", softmax, 1, 0, 2e-5, 2e-3, 1e-2},              // x (2,3,5)
};

int main(void) {
    Suite *s = suite_create("ops_shape_norm");
    TCase *tc = tcase_create("golden+fd");
    add_op_table(tc, cases, (int)(sizeof cases / sizeof cases[0]));
    suite_add_tcase(s, tc);
    return run_suite(s);
}
