// core/optim_adamw.c: AdamW on the parameter store's single flat array (one loop, no per-tensor
// dispatch). Muon and the NAdam branch pMF trains with are added next to it by the training issue.
#include "core.h"

#include <math.h>
#include <stdlib.h>

void adamw_init(AdamW *opt, const ParamStore *ps, float lr, float beta1, float beta2, float eps,
                float weight_decay) {
    opt->lr = lr;
    opt->beta1 = beta1;
    opt->beta2 = beta2;
    opt->eps = eps;
    opt->weight_decay = weight_decay;
    opt->step = 0;
    opt->n = ps->total;
    opt->m = core_calloc((size_t)ps->total, sizeof(float), "AdamW first moment");
    opt->v = core_calloc((size_t)ps->total, sizeof(float), "AdamW second moment");
}

void adamw_step(AdamW *opt, ParamStore *ps) {
    opt->step++;
    const float b1 = opt->beta1, b2 = opt->beta2, lr = opt->lr, eps = opt->eps;
    const float decay = 1.0f - lr * opt->weight_decay;
    // in double: 1 - b^step cancels digits when b is close to 1 (b2 = 0.999 lost ~3e-6 in float)
    const float c1 = (float)(1.0 / (1.0 - pow(b1, (double)opt->step)));
    const float c2 = (float)(1.0 / sqrt(1.0 - pow(b2, (double)opt->step)));
    float *p = ps->data, *g = ps->grad, *m = opt->m, *v = opt->v;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < opt->n; i++) {
        p[i] *= decay;
        m[i] = b1 * m[i] + (1.0f - b1) * g[i];
        v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
        // torch: p -= lr * (m / c) / (sqrt(v) / sqrt(c2) + eps)
        p[i] -= lr * (m[i] * c1) / (sqrtf(v[i]) * c2 + eps);
    }
}

void adamw_free(AdamW *opt) {
    free(opt->m);
    free(opt->v);
    opt->m = opt->v = NULL;
}
