// tests/test_ops_matmul.c: op_matmul (all transpose cases, batched and shared b) and op_linear
// against PyTorch goldens and central finite differences. Tolerances: 1e-5 relative vs PyTorch
// (float32 sgemm against a float64 reference), 2e-3 vs finite differences (float32, eps 1e-2).
#include "harness.h"

static Tensor *mm00(Tape *tp, Tensor **in, const SafeTensors *g) { return op_matmul(tp, in[0], in[1], 0, 0); }
static Tensor *mm01(Tape *tp, Tensor **in, const SafeTensors *g) { return op_matmul(tp, in[0], in[1], 0, 1); }
static Tensor *mm10(Tape *tp, Tensor **in, const SafeTensors *g) { return op_matmul(tp, in[0], in[1], 1, 0); }
static Tensor *mm11(Tape *tp, Tensor **in, const SafeTensors *g) { return op_matmul(tp, in[0], in[1], 1, 1); }
static Tensor *lin_b(Tape *tp, Tensor **in, const SafeTensors *g) { return op_linear(tp, in[0], in[1], in[2]); }
static Tensor *lin_nb(Tape *tp, Tensor **in, const SafeTensors *g) { return op_linear(tp, in[0], in[1], NULL); }

static const OpCase cases[] = {
    {"matmul_ta0_tb0", mm00, 2, 0, 1e-5, 2e-3, 1e-2},
    {"matmul_ta0_tb1", mm01, 2, 0, 1e-5, 2e-3, 1e-2},
    {"matmul_ta1_tb0", mm10, 2, 0, 1e-5, 2e-3, 1e-2},
    {"matmul_ta1_tb1", mm11, 2, 0, 1e-5, 2e-3, 1e-2},
    {"matmul_shared_ta0_tb0", mm00, 2, 0, 1e-5, 2e-3, 1e-2},
    {"matmul_shared_ta0_tb1", mm01, 2, 0, 1e-5, 2e-3, 1e-2},
    {"matmul_shared_ta1_tb0", mm10, 2, 0, 1e-5, 2e-3, 1e-2},
    {"matmul_shared_ta1_tb1", mm11, 2, 0, 1e-5, 2e-3, 1e-2},
    {"linear_bias", lin_b, 3, 0, 1e-5, 2e-3, 1e-2},
    {"linear_nobias", lin_nb, 2, 0, 1e-5, 2e-3, 1e-2},
};

int main(void) {
    Suite *s = suite_create("ops_matmul");
    TCase *tc = tcase_create("golden+fd");
    add_op_table(tc, cases, (int)(sizeof cases / sizeof cases[0]));
    suite_add_tcase(s, tc);
    return run_suite(s);
}
