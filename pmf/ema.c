// pmf/ema.c: EDM-style power EMAs of the parameters (spec 7.2), several half-lives at once.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pmf/pmf.h"

void pmf_ema_init(PmfEma *e, const ParamStore *ps, const float *halflife_kimg, int n) {
    memset(e, 0, sizeof *e);
    if (n > 4) core_fatal("pmf_ema_init: at most 4 EMAs (got %d)", n);
    e->n = n;
    e->total = ps->total;
    for (int k = 0; k < n; k++) {
        e->halflife_kimg[k] = halflife_kimg[k];
        e->params[k] = core_malloc((size_t)ps->total * sizeof(float), "EMA");
        memcpy(e->params[k], ps->data, (size_t)ps->total * sizeof(float));   // starts at the initial params
    }
}

void pmf_ema_update(PmfEma *e, const ParamStore *ps, int64_t step, int batch) {
    for (int k = 0; k < e->n; k++) {
        // The released code hard-codes its batch of 1024 here; we use the run's batch size.
        double halflife = fmin(e->halflife_kimg[k] * 1000.0, (double)step * batch * 0.05);
        float beta = (float)pow(0.5, batch / fmax(halflife, 1e-8));
        float *ema = e->params[k];
        const float *p = ps->data;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < e->total; i++) ema[i] = beta * ema[i] + (1.0f - beta) * p[i];
    }
}

void pmf_ema_free(PmfEma *e) {
    for (int k = 0; k < e->n; k++) free(e->params[k]);
    memset(e, 0, sizeof *e);
}
