// tests/test_ops_loss.c: op_cross_entropy against PyTorch (F.cross_entropy, float64 reference) and
// central differences. Tolerances: 1e-5 vs golden, 2e-3 vs finite differences (eps 1e-2).
#include "harness.h"

static Tensor *ce(Tape *tp, Tensor **in, const SafeTensors *g) {
    Tensor *lf = golden_tensor(tp, g, "labels");
    int *labels = tape_alloc(tp, (size_t)lf->numel * sizeof(int));
    for (int64_t i = 0; i < lf->numel; i++) labels[i] = (int)lf->data[i];
    return op_cross_entropy(tp, in[0], labels);
}

static const OpCase cases[] = {
    {"loss_cross_entropy", ce, 1, 0, 1e-5, 2e-3, 1e-2},
};

int main(void) {
    Suite *s = suite_create("ops_loss");
    TCase *tc = tcase_create("golden+fd");
    add_op_table(tc, cases, (int)(sizeof cases / sizeof cases[0]));
    suite_add_tcase(s, tc);
    return run_suite(s);
}
