// eval/frechet.c: the numbers of FID and IS in double precision: streaming feature statistics,
// the Frechet distance through two symmetric eigen-decompositions (LAPACKE_dsyevd), and the
// Inception Score from logits. Not here: any network (inception.c) or file (npz.c, pipeline.c).
#include "eval.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void eval_stats_alloc(EvalStats *s, int dim) {
    s->dim = dim;
    s->n = 0;
    s->mu = core_calloc((size_t)dim, sizeof(double), "stats mu");
    s->sigma = core_calloc((size_t)dim * dim, sizeof(double), "stats sigma");
}

void eval_stats_free(EvalStats *s) {
    free(s->mu), free(s->sigma);
    s->mu = s->sigma = NULL;
}

// ---------------------------------------------------------------------------------------------
// Streaming mean and covariance

void eval_acc_init(EvalStatsAcc *a, int dim) {
    memset(a, 0, sizeof *a);
    a->dim = dim;
    a->shift = core_calloc((size_t)dim, sizeof(double), "acc shift");
    a->sum = core_calloc((size_t)dim, sizeof(double), "acc sum");
    a->outer = core_calloc((size_t)dim * dim, sizeof(double), "acc outer");
}

void eval_acc_add(EvalStatsAcc *a, const float *feat, int n) {
    if (n <= 0) return;
    int D = a->dim;
    if (a->n == 0)
        for (int j = 0; j < D; j++) a->shift[j] = feat[j];
    if (n > a->work_rows) {
        free(a->work);
        a->work = core_malloc((size_t)n * D * sizeof(double), "acc work");
        a->work_rows = n;
    }
    for (int i = 0; i < n; i++)
        for (int j = 0; j < D; j++) {
            double v = (double)feat[(size_t)i * D + j] - a->shift[j];
            a->work[(size_t)i * D + j] = v;
            a->sum[j] += v;
        }
    // outer (upper) += work^T work
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, D, n, 1.0, a->work, D, 1.0, a->outer, D);
    a->n += n;
}

int eval_acc_finish(const EvalStatsAcc *a, EvalStats *s) {
    if (a->n < 2) {
        core_set_error("eval: a covariance needs at least 2 samples (got %lld)", (long long)a->n);
        return -1;
    }
    int D = a->dim;
    eval_stats_alloc(s, D);
    s->n = a->n;
    double n = (double)a->n;
    for (int j = 0; j < D; j++) s->mu[j] = a->shift[j] + a->sum[j] / n;
    for (int i = 0; i < D; i++)
        for (int j = i; j < D; j++) {
            double c = (a->outer[(size_t)i * D + j] - a->sum[i] * a->sum[j] / n) / (n - 1.0);
            s->sigma[(size_t)i * D + j] = s->sigma[(size_t)j * D + i] = c;
        }
    return 0;
}

void eval_acc_free(EvalStatsAcc *a) {
    free(a->shift), free(a->sum), free(a->outer), free(a->work);
    memset(a, 0, sizeof *a);
}

// ---------------------------------------------------------------------------------------------
// Frechet distance

static void note_negative(EvalFrechet *diag, const double *w, int d) {
    if (!diag) return;
    for (int i = 0; i < d; i++)
        if (w[i] < 0) {
            diag->n_negative++;
            if (w[i] < diag->most_negative) diag->most_negative = w[i];
        }
}

int eval_trace_sqrt_product(const double *S1, const double *S2, int d, double *trace, EvalFrechet *diag) {
    size_t dd = (size_t)d * d;
    double *V = core_malloc(dd * sizeof(double), "fid V"), *B = core_malloc(dd * sizeof(double), "fid B");
    double *A = core_malloc(dd * sizeof(double), "fid A"), *w = core_malloc((size_t)d * sizeof(double), "fid w");
    int rc = 0;
    memcpy(V, S1, dd * sizeof(double));
    // S1 = V diag(w) V^T (eigenvectors in the columns of row-major V)
    lapack_int info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'V', 'U', d, V, d, w);
    if (info != 0) {
        core_set_error("eval: LAPACKE_dsyevd failed on sigma1 (info %d)", (int)info);
        rc = -1;
        goto done;
    }
    note_negative(diag, w, d);
    // A = S1^(1/2) = (V diag(sqrt w)) V^T
    for (int i = 0; i < d; i++)
        for (int k = 0; k < d; k++) B[(size_t)i * d + k] = V[(size_t)i * d + k] * sqrt(w[k] > 0 ? w[k] : 0.0);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, d, d, d, 1.0, B, d, V, d, 0.0, A, d);
    // M = A S2 A, symmetrised (rounding leaves it asymmetric by about 1e-16 |M|)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, A, d, S2, d, 0.0, B, d);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, d, d, d, 1.0, B, d, A, d, 0.0, V, d);
    for (int i = 0; i < d; i++)
        for (int j = i + 1; j < d; j++) {
            double m = 0.5 * (V[(size_t)i * d + j] + V[(size_t)j * d + i]);
            V[(size_t)i * d + j] = V[(size_t)j * d + i] = m;
        }
    info = LAPACKE_dsyevd(LAPACK_ROW_MAJOR, 'N', 'U', d, V, d, w);
    if (info != 0) {
        core_set_error("eval: LAPACKE_dsyevd failed on sqrt(S1) S2 sqrt(S1) (info %d)", (int)info);
        rc = -1;
        goto done;
    }
    note_negative(diag, w, d);
    double t = 0;
    for (int i = 0; i < d; i++) t += sqrt(w[i] > 0 ? w[i] : 0.0);
    *trace = t;
done:
    free(V), free(B), free(A), free(w);
    return rc;
}

int eval_frechet(const EvalStats *a, const EvalStats *b, EvalFrechet *out) {
    memset(out, 0, sizeof *out);
    if (a->dim != b->dim) {
        core_set_error("eval: statistics of different feature sizes (%d and %d)", a->dim, b->dim);
        return -1;
    }
    int d = a->dim;
    for (int i = 0; i < d; i++) {
        double diff = a->mu[i] - b->mu[i];
        out->mean_term += diff * diff;
        out->trace1 += a->sigma[(size_t)i * d + i];
        out->trace2 += b->sigma[(size_t)i * d + i];
    }
    if (eval_trace_sqrt_product(a->sigma, b->sigma, d, &out->trace_sqrt, out)) return -1;
    out->distance = out->mean_term + out->trace1 + out->trace2 - 2.0 * out->trace_sqrt;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// Inception Score

static int64_t split_start(const EvalIsAcc *a, int s) { return (int64_t)s * a->n_total / a->splits; }

void eval_is_init(EvalIsAcc *a, int classes, int splits, int64_t n_total) {
    memset(a, 0, sizeof *a);
    a->classes = classes, a->splits = splits, a->n_total = n_total;
    a->psum = core_calloc((size_t)splits * classes, sizeof(double), "is psum");
    a->plogp = core_calloc((size_t)splits, sizeof(double), "is plogp");
}

void eval_is_add(EvalIsAcc *a, const float *logits, int n) {
    int K = a->classes;
    for (int r = 0; r < n && a->n_seen < a->n_total; r++, a->n_seen++) {
        const float *l = logits + (size_t)r * K;
        int64_t i = a->n_seen;
        int s = (int)(i * a->splits / a->n_total);
        while (s + 1 < a->splits && split_start(a, s + 1) <= i) s++;
        while (s > 0 && split_start(a, s) > i) s--;
        double m = l[0];
        for (int k = 1; k < K; k++) m = l[k] > m ? l[k] : m;
        double z = 0;
        for (int k = 0; k < K; k++) z += exp((double)l[k] - m);
        double lz = log(z), plp = 0;
        for (int k = 0; k < K; k++) {
            double lp = (double)l[k] - m - lz, p = exp(lp);
            a->psum[(size_t)s * K + k] += p;
            plp += p * lp;
        }
        a->plogp[s] += plp;
    }
}

// score_s = exp(mean_n sum_k p log p - sum_k q log q), q = mean_n p over the chunk.
int eval_is_finish(const EvalIsAcc *a, double *mean, double *std) {
    if (a->n_seen != a->n_total || a->n_total < a->splits) {
        core_set_error("eval: Inception Score over %lld of %lld samples with %d splits", (long long)a->n_seen,
                       (long long)a->n_total, a->splits);
        return -1;
    }
    int K = a->classes;
    double sum = 0, sq = 0;
    double *score = core_malloc((size_t)a->splits * sizeof(double), "is scores");
    for (int s = 0; s < a->splits; s++) {
        double ns = (double)(split_start(a, s + 1) - split_start(a, s)), qlq = 0;
        for (int k = 0; k < K; k++) {
            double q = a->psum[(size_t)s * K + k] / ns;
            if (q > 0) qlq += q * log(q);
        }
        score[s] = exp(a->plogp[s] / ns - qlq);
        sum += score[s];
    }
    *mean = sum / a->splits;
    for (int s = 0; s < a->splits; s++) sq += (score[s] - *mean) * (score[s] - *mean);
    *std = sqrt(sq / a->splits);
    free(score);
    return 0;
}

void eval_is_free(EvalIsAcc *a) {
    free(a->psum), free(a->plogp);
    memset(a, 0, sizeof *a);
}

int eval_inception_score(const float *logits, int64_t n, int classes, int splits, double *mean, double *std) {
    EvalIsAcc a;
    eval_is_init(&a, classes, splits, n);
    for (int64_t i = 0; i < n; i += 1024) eval_is_add(&a, logits + (size_t)i * classes, (int)(n - i < 1024 ? n - i : 1024));
    int rc = eval_is_finish(&a, mean, std);
    eval_is_free(&a);
    return rc;
}
