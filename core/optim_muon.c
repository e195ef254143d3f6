// core/optim_muon.c: Muon for matrices with an Adam (NAdam-style) branch for everything else, as
// optax.contrib.muon does it in pMF (spec 7.1; porting-notes A3). Everything in float32.
#include "core.h"
#include "gemm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void newton_schulz5(float *X, int rows, int cols, float *work) {
    const float a = 3.4445f, b = -4.7750f, c = 2.0315f;
    // Work on the wide orientation (rows <= cols) so A = X X^T is the small square.
    int transposed = rows > cols;
    int r = transposed ? cols : rows, k = transposed ? rows : cols;
    float *Y = work, *A = work + (size_t)r * k, *Bm = A + (size_t)r * r, *AA = Bm + (size_t)r * r, *BX = AA + (size_t)r * r;
    if (transposed) {
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) Y[(size_t)j * rows + i] = X[(size_t)i * cols + j];
    } else memcpy(Y, X, (size_t)r * k * sizeof(float));
    double norm = 0;
    for (int64_t i = 0; i < (int64_t)r * k; i++) norm += (double)Y[i] * Y[i];
    float inv = 1.0f / ((float)sqrt(norm) + 1e-8f);
    for (int64_t i = 0; i < (int64_t)r * k; i++) Y[i] *= inv;
    for (int it = 0; it < 5; it++) {
        sgemm_rm(0, 1, r, r, k, Y, Y, A, 0.0f);    // A = Y Y^T
        sgemm_rm(0, 0, r, r, r, A, A, AA, 0.0f);   // A A
        for (int64_t i = 0; i < (int64_t)r * r; i++) Bm[i] = b * A[i] + c * AA[i];
        sgemm_rm(0, 0, r, k, r, Bm, Y, BX, 0.0f);  // B Y
        for (int64_t i = 0; i < (int64_t)r * k; i++) Y[i] = a * Y[i] + BX[i];
    }
    if (transposed) {
        for (int i = 0; i < rows; i++)
            for (int j = 0; j < cols; j++) X[(size_t)i * cols + j] = Y[(size_t)j * rows + i];
    } else memcpy(X, Y, (size_t)r * k * sizeof(float));
}

void muon_init(Muon *opt, const ParamStore *ps, const uint8_t *use_muon, float lr, float beta, float adam_b1,
               float adam_b2, float eps) {
    memset(opt, 0, sizeof *opt);
    opt->lr = lr, opt->beta = beta, opt->adam_b1 = adam_b1, opt->adam_b2 = adam_b2, opt->eps = eps;
    opt->n = ps->total;
    opt->mu = core_calloc((size_t)ps->total, sizeof(float), "Muon momentum");
    opt->nu = core_calloc((size_t)ps->total, sizeof(float), "Adam second moment");
    opt->use_muon = core_calloc((size_t)ps->n, 1, "Muon partition");
    int64_t need = 0, largest = 0;
    for (int i = 0; i < ps->n; i++) {
        const Tensor *t = &ps->tensors[i];
        if (!use_muon || !use_muon[i]) continue;
        if (t->ndim != 2) core_fatal("muon_init: '%s' is %d-D; Muon takes matrices only", t->name, t->ndim);
        opt->use_muon[i] = 1;
        int64_t r = t->shape[0] < t->shape[1] ? t->shape[0] : t->shape[1], k = t->shape[0] + t->shape[1] - r;
        int64_t w = 2 * r * k + 3 * r * r;
        if (w > need) need = w;
        if (t->numel > largest) largest = t->numel;
    }
    opt->work = core_malloc((size_t)(need ? need : 1) * sizeof(float), "Newton-Schulz scratch");
    opt->update = core_malloc((size_t)(largest ? largest : 1) * sizeof(float), "Muon update");
}

void muon_step(Muon *opt, ParamStore *ps) {
    opt->step++;
    const double k = (double)opt->step;
    const float beta = opt->beta, b1 = opt->adam_b1, b2 = opt->adam_b2, lr = opt->lr, eps = opt->eps;
    // Nesterov with bias correction: beta m_k / (1 - beta^(k+1)) + (1 - beta) g / (1 - beta^k).
    const float m_next = (float)(beta / (1.0 - pow(beta, k + 1))), g_now = (float)((1 - beta) / (1.0 - pow(beta, k)));
    const float a_next = (float)(b1 / (1.0 - pow(b1, k + 1))), a_now = (float)((1 - b1) / (1.0 - pow(b1, k)));
    const float v_corr = (float)(1.0 / (1.0 - pow(b2, k)));
    for (int ti = 0; ti < ps->n; ti++) {
        Tensor *t = &ps->tensors[ti];
        int64_t off = t->data - ps->data, n = t->numel;
        float *p = t->data, *g = ps->grad + off, *mu = opt->mu + off, *nu = opt->nu + off;
        if (opt->use_muon[ti]) {
            float *X = opt->update;
            for (int64_t i = 0; i < n; i++) {
                mu[i] = beta * mu[i] + (1 - beta) * g[i];
                X[i] = m_next * mu[i] + g_now * g[i];
            }
            int rows = t->shape[0], cols = t->shape[1];
            newton_schulz5(X, rows, cols, opt->work);
            // (out, in) weight: the flax kernel is (in, out), so fan_out / fan_in = rows / cols.
            float scale = sqrtf(fmaxf(1.0f, (float)rows / (float)cols));
            for (int64_t i = 0; i < n; i++) p[i] -= lr * scale * X[i];
        } else {
            for (int64_t i = 0; i < n; i++) {
                mu[i] = b1 * mu[i] + (1 - b1) * g[i];
                nu[i] = b2 * nu[i] + (1 - b2) * g[i] * g[i];
                float m_hat = a_next * mu[i] + a_now * g[i];
                p[i] -= lr * m_hat / (sqrtf(nu[i] * v_corr) + eps);
            }
        }
    }
}

void muon_free(Muon *opt) {
    free(opt->mu), free(opt->nu), free(opt->use_muon), free(opt->work), free(opt->update);
    memset(opt, 0, sizeof *opt);
}
