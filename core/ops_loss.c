// core/ops_loss.c: classification loss for the small networks core's users train (the demo, the
// default-data feature network). pMF's own loss is composed from elementwise ops in pmf/.
#include "core.h"

#include <math.h>
#include <string.h>

// logits (B, K), labels (B) -> loss (1) = mean_b(logsumexp(logits_b) - logits_b[label_b]);
// saves probs (B, K)
static void cross_entropy_forward(const float *logits, const int *labels, float *probs, float *loss, int B,
                                  int K) {
    double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
    for (int b = 0; b < B; b++) {
        const float *l = logits + (size_t)b * K;
        float *p = probs + (size_t)b * K;
        float mx = l[0];
        for (int k = 1; k < K; k++) mx = l[k] > mx ? l[k] : mx;
        double s = 0;
        for (int k = 0; k < K; k++) s += exp((double)(l[k] - mx));
        for (int k = 0; k < K; k++) p[k] = (float)(exp((double)(l[k] - mx)) / s);
        total += log(s) + mx - l[labels[b]];
    }
    *loss = (float)(total / B);
}

// loss' = mean_b(sum_k p_bk l'_bk - l'_b[label_b])
static void cross_entropy_tangent(const float *probs, const float *tlogits, const int *labels, float *tloss,
                                  int B, int K) {
    double t = 0;
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * K, *tl = tlogits + (size_t)b * K;
        for (int k = 0; k < K; k++) t += (double)p[k] * tl[k];
        t -= tl[labels[b]];
    }
    *tloss = (float)(t / B);
}

// dlogits += dloss / B * (p - onehot(label))
static void cross_entropy_backward(const float *probs, const int *labels, float dloss, float *dlogits, int B,
                                   int K) {
    float s = dloss / (float)B;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        const float *p = probs + (size_t)b * K;
        float *d = dlogits + (size_t)b * K;
        for (int k = 0; k < K; k++) d[k] += s * p[k];
        d[labels[b]] -= s;
    }
}

// What cross-entropy keeps for its backward (besides the softmax, saved[0]).
typedef struct {
    int B, K;
    const int *labels;   // arena copy: the caller's array may change before backward
} CrossEntropySaved;

static void cross_entropy_backward_node(Tape *tp, TapeNode *n) {
    const CrossEntropySaved *sv = n->extra;
    cross_entropy_backward(n->saved[0], sv->labels, n->out->grad[0], tensor_grad(tp, n->in[0]), sv->B, sv->K);
}

Tensor *op_cross_entropy(Tape *tp, Tensor *logits, const int *labels) {
    tensor_require_contiguous(logits, "op_cross_entropy");
    if (logits->ndim != 2) core_fatal("op_cross_entropy: logits must be (B, K)");
    int B = logits->shape[0], K = logits->shape[1];
    for (int b = 0; b < B; b++)
        if (labels[b] < 0 || labels[b] >= K) core_fatal("op_cross_entropy: label %d of row %d is outside [0, %d)", labels[b], b, K);
    int one = 1;
    Tensor *y = tape_output(tp, 1, &one, &logits, 1);
    float *probs = tape_alloc(tp, (size_t)B * K * sizeof(float));
    cross_entropy_forward(logits->data, labels, probs, y->data, B, K);
    if (y->tangent) cross_entropy_tangent(probs, logits->tangent, labels, y->tangent, B, K);
    TapeNode *n = tape_record(tp, "cross_entropy", y, cross_entropy_backward_node, &logits, 1);
    if (n) {
        CrossEntropySaved sv = {B, K, tape_keep(tp, labels, (size_t)B * sizeof(int))};
        n->saved[0] = probs;
        n->extra = tape_keep(tp, &sv, sizeof sv);
    }
    return y;
}
