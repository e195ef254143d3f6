// core/optim_muon.c: Muon for matrices with an Adam (NAdam-style) branch for everything else, as
// optax.contrib.muon does it in pMF (spec 7.1; porting-notes A3). Everything in float32.
#include "core.h"
#include "gemm.h"

#include <math.h>
#include <omp.h>
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
    opt->work_floats = (size_t)(need ? need : 1), opt->update_floats = (size_t)(largest ? largest : 1);
    opt->work = core_malloc(opt->work_floats * sizeof(float), "Newton-Schulz scratch");
    opt->update = core_malloc(opt->update_floats * sizeof(float), "Muon update");
    opt->scratch_threads = 1;
}

// One Muon matrix: momentum, Nesterov update X, its orthogonalisation, the parameter step.
// X and work: this thread's scratch.
static void muon_matrix(const Muon *opt, Tensor *t, float *g, float *mu, float m_next, float g_now, float *X,
                        float *work) {
    const float beta = opt->beta, lr = opt->lr;
    float *p = t->data;
    int64_t n = t->numel;
    for (int64_t i = 0; i < n; i++) {
        mu[i] = beta * mu[i] + (1 - beta) * g[i];
        X[i] = m_next * mu[i] + g_now * g[i];
    }
    int rows = t->shape[0], cols = t->shape[1];
    newton_schulz5(X, rows, cols, work);
    // (out, in) weight: the flax kernel is (in, out), so fan_out / fan_in = rows / cols.
    float scale = sqrtf(fmaxf(1.0f, (float)rows / (float)cols));
    for (int64_t i = 0; i < n; i++) p[i] -= lr * scale * X[i];
}

void muon_step(Muon *opt, ParamStore *ps) {
    opt->step++;
    const double k = (double)opt->step;
    const float beta = opt->beta, b1 = opt->adam_b1, b2 = opt->adam_b2, lr = opt->lr, eps = opt->eps;
    // Nesterov with bias correction: beta m_k / (1 - beta^(k+1)) + (1 - beta) g / (1 - beta^k).
    const float m_next = (float)(beta / (1.0 - pow(beta, k + 1))), g_now = (float)((1 - beta) / (1.0 - pow(beta, k)));
    const float a_next = (float)(b1 / (1.0 - pow(b1, k + 1))), a_now = (float)((1 - b1) / (1.0 - pow(b1, k)));
    const float v_corr = (float)(1.0 / (1.0 - pow(b2, k)));
    // The matrices are many and small (XS/4: width 96), so threads take whole matrices, each
    // with single-threaded GEMMs and its own scratch, instead of meeting inside every small
    // GEMM. A matrix's bits do not depend on which thread takes it.
    int nt = omp_in_parallel() ? 1 : omp_get_max_threads();
    if (nt > opt->scratch_threads) {
        free(opt->work), free(opt->update);
        opt->work = core_malloc((size_t)nt * opt->work_floats * sizeof(float), "Newton-Schulz scratch");
        opt->update = core_malloc((size_t)nt * opt->update_floats * sizeof(float), "Muon update");
        opt->scratch_threads = nt;
    }
    int blas = nt > 1 ? blas_serial_begin() : -1;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
    for (int ti = 0; ti < ps->n; ti++) {
        if (!opt->use_muon[ti]) continue;
        Tensor *t = &ps->tensors[ti];
        int64_t off = t->data - ps->data;
        int th = nt > 1 ? omp_get_thread_num() : 0;
        muon_matrix(opt, t, ps->grad + off, opt->mu + off, m_next, g_now, opt->update + (size_t)th * opt->update_floats,
                    opt->work + (size_t)th * opt->work_floats);
    }
    if (nt > 1) blas_serial_end(blas);
    for (int ti = 0; ti < ps->n; ti++) {
        if (opt->use_muon[ti]) continue;
        Tensor *t = &ps->tensors[ti];
        int64_t off = t->data - ps->data, n = t->numel;
        float *p = t->data, *g = ps->grad + off, *mu = opt->mu + off, *nu = opt->nu + off;
        for (int64_t i = 0; i < n; i++) {
            mu[i] = b1 * mu[i] + (1 - b1) * g[i];
            nu[i] = b2 * nu[i] + (1 - b2) * g[i] * g[i];
            float m_hat = a_next * mu[i] + a_now * g[i];
            p[i] -= lr * m_hat / (sqrtf(nu[i] * v_corr) + eps);
        }
    }
}

void muon_free(Muon *opt) {
    free(opt->mu), free(opt->nu), free(opt->use_muon), free(opt->work), free(opt->update);
    memset(opt, 0, sizeof *opt);
}
