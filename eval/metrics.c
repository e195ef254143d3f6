// eval/metrics.c: the metrics that need the features themselves, not only their mean and covariance:
// - KID (Binkowski et al. 2018), as torch-fidelity and clean-fid compute it: the unbiased MMD^2
//   with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over random subsets.
// - Precision and recall (Kynkaenniemi et al. 2019): each set's k-th nearest-neighbour balls
//   approximate its manifold; precision is the share of generated samples inside the real manifold,
//   recall the share of real samples inside the generated one.
// Distances and kernels in double through cblas_dgemm, a block of rows at a time.
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "eval/eval.h"

#define ROW_BLOCK 1024

static double *to_double(const float *x, int64_t n, int dim) {
    double *d = core_malloc((size_t)n * dim * sizeof(double), "features (double)");
    for (int64_t i = 0; i < n * dim; i++) d[i] = x[i];
    return d;
}

// Fisher-Yates prefix: idx[0..m) a uniform random m-subset of [0, n), in random order.
static void random_subset(Rng *r, int64_t n, int m, int64_t *idx, int64_t *perm) {
    for (int64_t i = 0; i < n; i++) perm[i] = i;
    for (int i = 0; i < m; i++) {
        int64_t j = i + (int64_t)(rng_uniform(r) * (double)(n - i));
        if (j >= n) j = n - 1;
        int64_t t = perm[i];
        perm[i] = perm[j], perm[j] = t;
        idx[i] = perm[i];
    }
}

// Unbiased MMD^2 of two m-row sets with the cubic kernel: (sum K_XX - tr + sum K_YY - tr) / (m (m - 1))
// - 2 sum K_XY / m^2.
static double mmd2_cubic(const double *x, const double *y, int m, int dim, double *K) {
    double s[3];
    const double *pairs[3][2] = {{x, x}, {y, y}, {x, y}};
    for (int p = 0; p < 3; p++) {
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, m, dim, 1.0 / dim, pairs[p][0], dim, pairs[p][1], dim,
                    0.0, K, m);
        double sum = 0, diag = 0;
        for (int64_t i = 0; i < (int64_t)m * m; i++) {
            double k = K[i] + 1.0;
            sum += k * k * k;
        }
        if (p < 2)
            for (int i = 0; i < m; i++) {
                double k = K[(int64_t)i * m + i] + 1.0;
                diag += k * k * k;
            }
        s[p] = sum - diag;
    }
    return (s[0] + s[1]) / ((double)m * (m - 1)) - 2.0 * s[2] / ((double)m * m);
}

int eval_kid(const float *a, int64_t na, const float *b, int64_t nb, int dim, int subsets, int subset_size, uint64_t seed,
             double *mean, double *std) {
    int m = subset_size;
    if (m > na) m = (int)na;
    if (m > nb) m = (int)nb;
    if (m < 2 || subsets < 1) {
        core_set_error("eval: KID needs at least 2 samples in each set (have %lld and %lld)", (long long)na, (long long)nb);
        return -1;
    }
    double *x = core_malloc((size_t)m * dim * sizeof(double), "KID subset"), *y = core_malloc((size_t)m * dim * sizeof(double), "KID subset");
    double *K = core_malloc((size_t)m * m * sizeof(double), "KID kernel");
    int64_t *idx = core_malloc((size_t)m * sizeof(int64_t), "KID index");
    int64_t *perm = core_malloc((size_t)(na > nb ? na : nb) * sizeof(int64_t), "KID permutation");
    double *v = core_malloc((size_t)subsets * sizeof(double), "KID values");
    Rng r;
    rng_init(&r, seed);
    for (int s = 0; s < subsets; s++) {
        const float *src[2] = {a, b};
        int64_t n[2] = {na, nb};
        double *dst[2] = {x, y};
        for (int k = 0; k < 2; k++) {
            random_subset(&r, n[k], m, idx, perm);
            for (int i = 0; i < m; i++)
                for (int j = 0; j < dim; j++) dst[k][(int64_t)i * dim + j] = src[k][idx[i] * dim + j];
        }
        v[s] = mmd2_cubic(x, y, m, dim, K);
    }
    double sum = 0, sq = 0;
    for (int s = 0; s < subsets; s++) sum += v[s];
    *mean = sum / subsets;
    for (int s = 0; s < subsets; s++) sq += (v[s] - *mean) * (v[s] - *mean);
    *std = sqrt(sq / subsets);   // numpy.std, as torch-fidelity reports it
    free(x), free(y), free(K), free(idx), free(perm), free(v);
    return 0;
}

// Squared distances of rows [r0, r0 + nr) of a to every row of b: D (nr, nb).
static void sq_dists(const double *a, const double *an, int64_t r0, int nr, const double *b, const double *bn, int64_t nb,
                     int dim, double *D) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, (int)nb, dim, -2.0, a + r0 * dim, dim, b, dim, 0.0, D, (int)nb);
    for (int i = 0; i < nr; i++)
        for (int64_t j = 0; j < nb; j++) {
            double d = D[(int64_t)i * nb + j] + an[r0 + i] + bn[j];
            D[(int64_t)i * nb + j] = d > 0 ? d : 0;
        }
}

static double *row_norms(const double *x, int64_t n, int dim) {
    double *o = core_malloc((size_t)n * sizeof(double), "row norms");
    for (int64_t i = 0; i < n; i++) {
        double s = 0;
        for (int j = 0; j < dim; j++) s += x[i * dim + j] * x[i * dim + j];
        o[i] = s;
    }
    return o;
}

// The squared distance of each row of x to its k-th nearest neighbour in x (itself excluded).
static double *knn_radii(const double *x, const double *xn, int64_t n, int dim, int k, double *D) {
    double *rad = core_malloc((size_t)n * sizeof(double), "k-NN radii");
    double *best = core_malloc((size_t)(k + 1) * sizeof(double), "k-NN");
    for (int64_t r0 = 0; r0 < n; r0 += ROW_BLOCK) {
        int nr = (int)(n - r0 < ROW_BLOCK ? n - r0 : ROW_BLOCK);
        sq_dists(x, xn, r0, nr, x, xn, n, dim, D);
        for (int i = 0; i < nr; i++) {
            // The k + 1 smallest (self at 0 among them), kept sorted by insertion.
            int have = 0;
            for (int64_t j = 0; j < n; j++) {
                double d = j == r0 + i ? 0.0 : D[(int64_t)i * n + j];
                if (have == k + 1 && d >= best[k]) continue;
                int p = have < k + 1 ? have++ : k;
                while (p > 0 && best[p - 1] > d) best[p] = best[p - 1], p--;
                best[p] = d;
            }
            rad[r0 + i] = best[k];
        }
    }
    free(best);
    return rad;
}

// Share of rows of q inside any ball (centre row of c, squared radius rad).
static double coverage(const double *q, const double *qn, int64_t nq, const double *c, const double *cn, int64_t nc,
                       const double *rad, int dim, double *D) {
    int64_t inside = 0;
    for (int64_t r0 = 0; r0 < nq; r0 += ROW_BLOCK) {
        int nr = (int)(nq - r0 < ROW_BLOCK ? nq - r0 : ROW_BLOCK);
        sq_dists(q, qn, r0, nr, c, cn, nc, dim, D);
        for (int i = 0; i < nr; i++)
            for (int64_t j = 0; j < nc; j++)
                if (D[(int64_t)i * nc + j] <= rad[j]) {
                    inside++;
                    break;
                }
    }
    return (double)inside / (double)nq;
}

int eval_precision_recall(const float *real, int64_t nr, const float *fake, int64_t nf, int dim, int k, double *precision,
                          double *recall) {
    if (k < 1 || nr <= k || nf <= k) {
        core_set_error("eval: precision/recall with k = %d needs more than %d samples per set (have %lld and %lld)", k, k,
                       (long long)nr, (long long)nf);
        return -1;
    }
    double *R = to_double(real, nr, dim), *F = to_double(fake, nf, dim);
    double *Rn = row_norms(R, nr, dim), *Fn = row_norms(F, nf, dim);
    int64_t most = nr > nf ? nr : nf;
    double *D = core_malloc((size_t)ROW_BLOCK * most * sizeof(double), "distance block");
    double *rr = knn_radii(R, Rn, nr, dim, k, D), *rf = knn_radii(F, Fn, nf, dim, k, D);
    *precision = coverage(F, Fn, nf, R, Rn, nr, rr, dim, D);
    *recall = coverage(R, Rn, nr, F, Fn, nf, rf, dim, D);
    free(R), free(F), free(Rn), free(Fn), free(D), free(rr), free(rf);
    return 0;
}
