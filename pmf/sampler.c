// pmf/sampler.c: 1-NFE and k-step generation (spec 9). Guidance costs nothing extra: omega and the
// interval [t_min, t_max] are network inputs.
#include <string.h>

#include "pmf/pmf.h"

void pmf_sample(Tape *tp, PmfModel *m, float *z, const int *labels, int B, int steps, float omega, float t_min,
                float t_max) {
    const PmfConfig *c = &m->cfg;
    int shape[4] = {B, c->channels, c->img_size, c->img_size};
    int64_t n = (int64_t)B * c->channels * c->img_size * c->img_size;
    int saved = tp->recording;
    tape_set_recording(tp, 0);
    for (int s = 0; s < steps; s++) {
        float t = 1.0f - (float)s / steps, r = 1.0f - (float)(s + 1) / steps;
        Tensor *zt = tensor_wrap(tp, z, 4, shape, "z");
        Tensor *h = tensor_new(tp, 1, &B, "h"), *w = tensor_new(tp, 1, &B, "omega");
        Tensor *lo = tensor_new(tp, 1, &B, "t_min"), *hi = tensor_new(tp, 1, &B, "t_max");
        float *tv = tape_alloc(tp, (size_t)B * sizeof(float));
        for (int i = 0; i < B; i++) h->data[i] = t - r, w->data[i] = omega, lo->data[i] = t_min, hi->data[i] = t_max, tv[i] = t;
        PmfCond cond = {h, w, lo, hi, labels};
        Tensor *u = pmf_velocity(tp, c, pmf_forward(tp, m, zt, &cond, 1, 0).u_out, zt, tv, 0);
        for (int64_t k = 0; k < n; k++) z[k] -= (t - r) * u->data[k];
    }
    tape_set_recording(tp, saved);
}
