// tests/test_ops_transformer.c: op_rope2d, op_attention and op_timestep_embedding against
// references written from core.h's definitions (tools/goldens/cases_transformer.py) and central
// finite differences, through run_op_case. op_cross_entropy is tested in test_ops_loss.c.
//
// rope2d: x (2, 5+6, 2*8), 2 heads, start 5, grid 2x3, theta 1e4 (the 5 prefix tokens untouched);
// rope2d_tail: x (2, 1+4+1, 16), start 1, grid 2x2, one trailing token untouched.
// attention: q, k, v (2, 7, 2*4), 2 heads, scale 1/sqrt(4), no mask.
// timestep_embedding: s = (0.05, 0.93, 2.6), dim 8, max_period 1e4.
// qkv_heads: qkv (2, 3+6+1, 3*2*8) split, q and k RMSNormed per head (weights near 1) and rotated
// on tokens [3, 9) (grid 2x3), v copied -> (3, 2, 10, 16).
// Tolerances: 2e-5 relative vs the float64 references (float32 sin/cos/exp and softmax rows),
// 2e-3 vs central differences with eps 1e-2 (float32).
#include <stdlib.h>

#include "harness.h"

static double meta_num(const SafeTensors *g, const char *key) {
    const char *v = safetensors_meta(g, key);
    ck_assert_msg(v != NULL, "%s: no metadata '%s'", g->path, key);
    return atof(v);
}

static Tensor *rope2d(Tape *tp, Tensor **in, const SafeTensors *g) {
    int n_heads = (int)meta_num(g, "n_heads"), start = (int)meta_num(g, "start");
    return op_rope2d(tp, in[0], n_heads, start, (int)meta_num(g, "gh"), (int)meta_num(g, "gw"),
                     (float)meta_num(g, "theta"));
}
static Tensor *attention(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_attention(tp, in[0], in[1], in[2], (int)meta_num(g, "n_heads"));
}
static Tensor *qkv_heads(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_qkv_heads(tp, in[0], in[1], in[2], (int)meta_num(g, "n_heads"), 1e-6f, (int)meta_num(g, "start"),
                        (int)meta_num(g, "gh"), (int)meta_num(g, "gw"), (float)meta_num(g, "theta"));
}
static Tensor *timestep_embedding(Tape *tp, Tensor **in, const SafeTensors *g) {
    return op_timestep_embedding(tp, in[0], (int)meta_num(g, "dim"), (float)meta_num(g, "max_period"));
}

static const OpCase cases[] = {
    {"rope2d", rope2d, 1, 0, 2e-5, 2e-3, 1e-2},
    {"rope2d_tail", rope2d, 1, 0, 2e-5, 2e-3, 1e-2},
    {"qkv_heads", qkv_heads, 3, 0, 2e-5, 2e-3, 1e-2},
    {"attention", attention, 3, 0, 2e-5, 2e-3, 1e-2},
    {"timestep_embedding", timestep_embedding, 1, 0, 2e-5, 2e-3, 1e-2},
};

int main(void) {
    Suite *s = suite_create("ops_transformer");
    TCase *tc = tcase_create("golden+fd");
    add_op_table(tc, cases, (int)(sizeof cases / sizeof cases[0]));
    suite_add_tcase(s, tc);
    return run_suite(s);
}
