// eval/eval.h: the one public header of pmf's sample-quality metrics (spec section 10, porting
// notes A2).
//
// - InceptionV3 exactly as pytorch-fid's FID network (FIDInceptionA/C/E_1/E_2, BN eps 0.001,
//   1008 logits, 2048-d pool3 features), built from core/ ops in no-tape mode, BatchNorm folded
//   into the convolutions when the weights are loaded.
// - Statistics (mean, unbiased covariance) accumulated in double, the Frechet distance through
//   LAPACK symmetric eigen-decompositions, the Inception Score.
// - Reference statistics as .npz files (pytorch-fid's and ADM's layout), read and written.
// - A pipeline that turns a folder of PNGs, an HDF5 shard (or a folder of them) or an .npz into
//   statistics.
//
// This module includes core/ only: it knows nothing of pmf/, dataset/ or perceptual/. cli/pmf_eval
// plugs other feature networks (the Fashion-MNIST featnet) in through EvalFeatureNet.
//
// Why shards and PNGs arrive through EvalReaders: the HDF5 shard format and PNG decoding have one
// home, dataset/, whose readers check every size against the file and stated limits before
// allocating (ds_shard_open, ds_shard_read_range; ds_image_load_png: chunk lengths, libpng's
// limits, the pixel limit) and are fuzzed. eval/ must use those readers, not second copies, yet
// the house plan keeps eval/ and dataset/ from including each other, so that neither drags the
// other's dependencies (HDF5, libjpeg, libpng; LAPACK, Inception) along and each can be tested
// alone. So eval/ declares what it needs of a shard (count, geometry, labels, a range of images)
// and of an image file (its pixels) as small tables of functions, and the caller ties the two
// modules together: cli/eval_readers.c wraps dataset/'s readers into them for pmf_eval and the
// tests. eval/ keeps its own reader only for what no other module owns: .npz statistics (and it
// lists folders itself).
#ifndef PMF_EVAL_H
#define PMF_EVAL_H

#include <stdint.h>

#include "core/core.h"

// ---------------------------------------------------------------------------------------------
// Statistics of a feature set: mean (dim) and covariance (dim, dim), both double, as
// numpy.mean(axis=0) and numpy.cov(rowvar=False) (divides by n - 1).
typedef struct EvalStats {
    int dim;
    int64_t n;        // number of samples (0 when read from an .npz, which does not store it)
    double *mu;       // (dim)
    double *sigma;    // (dim, dim), row-major, symmetric
} EvalStats;

void eval_stats_alloc(EvalStats *s, int dim);   // zeroed
void eval_stats_free(EvalStats *s);

// Streaming accumulator: features arrive batch by batch (50,000 x 2048 never sits in memory).
// Sums are taken about a shift (the first sample), so the covariance does not lose digits to a
// large mean: cov = (S - n d d^T) / (n - 1), d = mean(x - shift), S = sum (x - shift)(x - shift)^T.
typedef struct EvalStatsAcc {
    int dim;
    int64_t n;
    double *shift, *sum, *outer;   // (dim), (dim), (dim, dim) upper triangle filled by dsyrk
    double *work;                  // (rows, dim) staging of one batch
    int work_rows;
} EvalStatsAcc;

void eval_acc_init(EvalStatsAcc *a, int dim);
void eval_acc_add(EvalStatsAcc *a, const float *feat, int n);   // feat (n, dim)
// Fills s (allocated here). Needs n >= 2; -1 and a message otherwise.
int eval_acc_finish(const EvalStatsAcc *a, EvalStats *s);
void eval_acc_free(EvalStatsAcc *a);

// ---------------------------------------------------------------------------------------------
// Frechet distance d^2 = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr sqrt(S1 S2), in double.
// tr sqrt(S1 S2) is computed without a non-symmetric square root: with A = S1^(1/2) (eigh),
// S1 S2 = A (A S2 A) A^-1 has the eigenvalues of M = A S2 A, which is symmetric PSD, so
// tr sqrt(S1 S2) = sum_i sqrt(lambda_i(M)). Both eigen-decompositions are LAPACKE_dsyevd.
// Rounding makes eigenvalues of a PSD matrix come out as tiny negatives (about -1e-15 |S|); they
// are clamped to 0 before the square root (documented policy; scipy's sqrtm instead returns a
// small imaginary part that pytorch-fid drops). Unlike pytorch-fid this needs no eps retry.
typedef struct EvalFrechet {
    double distance;
    double mean_term;     // |mu1 - mu2|^2
    double trace1, trace2, trace_sqrt;
    int n_negative;       // eigenvalues clamped to 0 (over both decompositions)
    double most_negative; // the most negative eigenvalue seen before clamping (0 if none)
} EvalFrechet;

int eval_frechet(const EvalStats *a, const EvalStats *b, EvalFrechet *out);   // -1: dims differ / LAPACK
// sum_i sqrt(max(lambda_i(S1^(1/2) S2 S1^(1/2)), 0)) for symmetric PSD S1, S2 (d, d).
int eval_trace_sqrt_product(const double *S1, const double *S2, int d, double *trace, EvalFrechet *diag);

// ---------------------------------------------------------------------------------------------
// Inception Score, as the original OpenAI code and torch-fidelity ('logits_unbiased'): softmax
// over all K (1008) unbiased logits (pool3 @ fc.weight^T, no fc bias), N samples cut into
// `splits` contiguous chunks [i N / splits, (i + 1) N / splits), per chunk
// exp(mean_n KL(p_n || mean_m p_m)); result is the mean and population std (numpy.std) of the
// chunk scores. torch-fidelity first shuffles the samples with numpy RandomState(2020) (and pMF's
// JAX evaluator with its own seed-2020 permutation); that permutation is NOT reproduced here, so IS
// matches them only in expectation. Streaming: n_total must be known up front.
typedef struct EvalIsAcc {
    int classes, splits;
    int64_t n_total, n_seen;
    double *psum;     // (splits, classes)  sum of p over each chunk
    double *plogp;    // (splits)           sum of sum_k p log p over each chunk
} EvalIsAcc;

void eval_is_init(EvalIsAcc *a, int classes, int splits, int64_t n_total);
void eval_is_add(EvalIsAcc *a, const float *logits, int n);   // logits (n, classes), in order
int eval_is_finish(const EvalIsAcc *a, double *mean, double *std);   // -1 unless all n_total seen
void eval_is_free(EvalIsAcc *a);
int eval_inception_score(const float *logits, int64_t n, int classes, int splits, double *mean, double *std);

// ---------------------------------------------------------------------------------------------
// Metrics on the feature vectors themselves (eval/metrics.c).
// KID: unbiased MMD^2 with the cubic polynomial kernel (x.y / dim + 1)^3 over `subsets` random
// subsets of subset_size rows of each set (both capped at the smaller set), drawn from `seed`;
// mean and population std over subsets (torch-fidelity's defaults: 100 subsets of 1000). With one
// subset of every row the value is exact (MMD does not depend on the order).
int eval_kid(const float *a, int64_t na, const float *b, int64_t nb, int dim, int subsets, int subset_size, uint64_t seed,
             double *mean, double *std);
// Precision and recall with k-NN manifolds (Kynkaanniemi et al. 2019, k = 3 in the paper): a sample
// is inside a set's manifold when its distance to some member is <= that member's distance to its
// own k-th nearest neighbour (itself excluded). precision: share of fake inside real's manifold;
// recall: share of real inside fake's.
int eval_precision_recall(const float *real, int64_t nr, const float *fake, int64_t nf, int dim, int k, double *precision,
                          double *recall);

// ---------------------------------------------------------------------------------------------
// .npz files (a zip of .npy members): read one float array by name (without ".npy"), write
// several. Read: npy format 1.0, 2.0 and 3.0 headers, dtype '<f8' or '<f4' (converted to double),
// C or Fortran order, members stored or deflated (zlib raw inflate), zip64 archives (ADM's
// reference batches, which also hold a large uint8 'arr_0', are read without touching it).
// Write: npy 1.0 '<f8' C-order members, stored, written atomically (tmp, fsync, rename).
typedef struct NpzArray {
    int ndim;
    int64_t shape[8];
    int64_t numel;
    double *data;     // malloc'd
} NpzArray;

int npz_read(const char *path, const char *name, NpzArray *out);   // -1 and a message
int npz_has(const char *path, const char *name);                    // 1, 0, or -1 on a bad file
void npz_array_free(NpzArray *a);
typedef struct NpzMember {
    const char *name;     // without ".npy"
    int ndim;
    const int64_t *shape;
    const double *data;
} NpzMember;
int npz_write(const char *path, const NpzMember *members, int n);

// Statistics files: keys "mu" and "sigma" (pytorch-fid's --save-stats, ADM's reference batches,
// torch-fidelity's npz); "ref_mu"/"ref_sigma" (pMF's JAX reference stats) are accepted too.
int eval_stats_load_npz(const char *path, EvalStats *s);
int eval_stats_save_npz(const char *path, const EvalStats *s);

// ---------------------------------------------------------------------------------------------
// InceptionV3, pytorch-fid's FID network. 94 BasicConv2d (conv without bias + BN eps 0.001 +
// ReLU) and fc (1008, 2048). Weight names are pytorch-fid's state-dict keys without
// num_batches_tracked: "<layer>.conv.weight", "<layer>.bn.{weight,bias,running_mean,running_var}",
// "fc.weight", "fc.bias" (tools/convert_inception.py writes them from pt_inception-2015-12-05).
#define INCEPTION_N_CONV 94
#define INCEPTION_FEATURE_DIM 2048
#define INCEPTION_N_LOGITS 1008
#define INCEPTION_SIZE 299
#define INCEPTION_BN_EPS 0.001

typedef struct InceptionConv {
    const char *name;                 // "Mixed_5b.branch1x1"
    int cin, cout, kh, kw, sh, sw, ph, pw;
} InceptionConv;

typedef struct Inception {
    ParamStore ps;                    // folded weights: per conv "<name>.weight" and "<name>.bias"
    Tensor *w[INCEPTION_N_CONV], *b[INCEPTION_N_CONV];
    Tensor *fc_w, *fc_b;
} Inception;

// The layer table in pytorch-fid's state-dict order (conv i of INCEPTION_N_CONV).
const InceptionConv *inception_conv(int i);
void inception_init(Inception *net);                  // declares (zeroed)
// Loads and folds BN. On a missing file the message names tools/convert_inception.py.
int inception_load(Inception *net, const char *path);
void inception_free(Inception *net);

// Raw (unfolded) parameters of conv i, in the order the BN fold takes them.
typedef struct InceptionRawConv {
    const float *weight, *gamma, *beta, *mean, *var;
} InceptionRawConv;
// w' = w * gamma / sqrt(var + eps), b' = beta - mean * gamma / sqrt(var + eps), in double.
void inception_fold_bn(Inception *net, int i, const InceptionRawConv *raw);

// Deterministic pseudo-random weights shared with tools/goldens/cases_inception.py (tests and the
// bench), element i (flat row-major) of tensor id t:
//   k = splitmix64((t << 40) + i) >> 40 (an integer in [0, 2^24)); u = (k - 2^23) / 2^23 in [-1, 1)
//   value = float32(scale) * float32(u)    (float32 product)
// splitmix64(z): z += 0x9E3779B97F4A7C15; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
//                z = (z ^ z>>27) * 0x94D049BB133111EB; return z ^ z>>31            (mod 2^64)
// Conv i: weight t = 8i, scale float32(sqrt(6 / fan_in)) (fan_in = cin kh kw); BN gamma = 1 +
// hash(8i+1, 0.1), beta = hash(8i+2, 0.1), running_mean = hash(8i+3, 0.1), running_var = 1 +
// hash(8i+4, 0.5) (each sum in float32). fc.weight t = 8*94, scale float32(sqrt(3 / 2048));
// fc.bias t = 8*94 + 1, scale 0.1. The BN statistics go through inception_fold_bn like a real file.
void inception_hash_fill(float *x, int64_t n, uint64_t id, float scale);
void inception_fill_hash(Inception *net);

// Preprocessing conventions (porting notes A2; all end at 299 x 299 in about [-1, 1]):
//   PYTORCH_FID    x/255 in [0, 1], F.interpolate bilinear align_corners=False (half-pixel
//                  centres, no antialias) in float32, then 2x - 1.             (default)
//   PMF_JAX        the same half-pixel bilinear resize on 0..255 values, then (x - 128) / 128
//                  (pMF's JAX evaluator; also clean-fid's 'legacy_pytorch' mode).
//   TORCH_FIDELITY TF1-style bilinear (source = dst * in/out, no half-pixel offset, lo = floor,
//                  hi = min(lo + 1, in - 1)) on 0..255, then (x - 128) / 128.
// clean-fid's default 'clean' mode (PIL bicubic in float per channel) is not implemented.
typedef enum { EVAL_CONV_PYTORCH_FID, EVAL_CONV_PMF_JAX, EVAL_CONV_TORCH_FIDELITY } EvalConvention;
const char *eval_convention_name(EvalConvention c);
int eval_convention_parse(const char *s, EvalConvention *c);   // "pytorch-fid", "pmf-jax", "torch-fidelity"

// Network input from pixels: px (n, H, W, C) uint8, C = 1 (repeated to RGB, as PIL's convert)
// or 3 -> (n, 3, 299, 299) floats per the convention, in the tape's arena.
Tensor *inception_preprocess_u8(Tape *tp, const uint8_t *px, int n, int H, int W, int C, EvalConvention conv);
// The same from floats x (n, 3, H, W) in [0, 1] (pytorch-fid's input), through op_resize.
Tensor *inception_preprocess(Tape *tp, Tensor *x01, EvalConvention conv);

// x (N, 3, 299, 299) preprocessed -> pool3 (N, 2048) and logits (N, 1008) (fc with bias; either
// may be NULL). The tape must not record. Intermediate activations are released block by block
// (arena mark/release), so memory is about one block's worth per image; the outputs are dense
// tensors made after the last release.
void inception_forward(Tape *tp, const Inception *net, Tensor *x, Tensor **pool3, Tensor **logits);

// ---------------------------------------------------------------------------------------------
// Feature pipeline: images from a source -> statistics (and optionally IS).
// A feature network maps pixels (n, H, W, C) uint8 to features (n, dim) and, when n_logits > 0
// and `logits` is not NULL, to logits (n, n_logits) for the Inception Score.
typedef int (*EvalFeatureFn)(void *ctx, const uint8_t *px, int n, int H, int W, int C, float *feat,
                             float *logits);
typedef struct EvalFeatureNet {
    const char *name;     // "inception", "featnet": the metric is "FID" only for inception
    int dim, n_logits;
    EvalFeatureFn fn;
    void *ctx;
} EvalFeatureNet;

// InceptionV3 as an EvalFeatureNet: logits are the unbiased ones (fc without bias) for IS.
typedef struct InceptionRunner {
    const Inception *net;
    EvalConvention conv;
    Arena arena;
    Tape tp;
} InceptionRunner;
void inception_runner_init(InceptionRunner *r, const Inception *net, EvalConvention conv);
void inception_runner_free(InceptionRunner *r);
EvalFeatureNet inception_feature_net(InceptionRunner *r);

// How eval reads HDF5 shards (see the top of this file for why it is given one): the caller's
// reader, cli/eval_readers.c's for dataset/'s. A shard is (n, h, w, c) uint8 images, and maybe an
// int32 label per image.
typedef struct EvalShardInfo {
    int64_t n;                // images
    int h, w, c;              // each image's rows, columns, channels
    const int32_t *labels;    // (n), owned by the open shard until close; NULL: it has none
} EvalShardInfo;
typedef struct EvalShardReader {
    void *ctx;
    // 1 if the file at `path` is this reader's (a shard's signature or name): eval then opens it
    // with `open`, so a damaged shard is refused with the reader's own message. 0 otherwise.
    int (*claims)(void *ctx, const char *path);
    // Opens a shard and fills *info. NULL and a message naming the file on any problem.
    void *(*open)(void *ctx, const char *path, EvalShardInfo *info);
    // Images first .. first + n - 1 into dst (n * h * w * c bytes). -1 and a message naming the file.
    int (*read)(void *shard, int64_t first, int64_t n, uint8_t *dst);
    void (*close)(void *shard);
} EvalShardReader;

// How eval decodes each file of a folder of PNGs (see the top of this file for why it is given
// one): the caller's decoder, cli/eval_readers.c's for dataset/'s (gray stays gray, alpha dropped,
// palettes expanded, 16-bit reduced to 8, as PIL's convert("L") / convert("RGB")).
typedef struct EvalImageDecoder {
    void *ctx;
    // The image at `path` as 8-bit pixels (h, w, c), row-major, c = 1 (gray) or 3 (RGB), in a
    // malloc'd buffer eval frees. NULL and a message naming the file on any problem.
    uint8_t *(*decode_file)(void *ctx, const char *path, int *h, int *w, int *c);
} EvalImageDecoder;

// The readers of the formats eval/ reads but does not own. Either may be NULL: a source that
// needs it is then refused with a message, never read some other way.
typedef struct EvalReaders {
    const EvalShardReader *shards;
    const EvalImageDecoder *images;
} EvalReaders;

// An image source: a folder of PNGs (sorted by name; each decoded by `readers->images`), an HDF5
// shard (what pmf_sample --h5 writes: "images" (N, S, S, C) uint8, C = 1 or 3, and int32 "labels")
// or a folder of pmf_prepare's shards (shard-*.h5), read through `readers->shards`. `readers`
// may be NULL (neither).
typedef struct EvalSource EvalSource;
EvalSource *eval_source_open(const char *path, const EvalReaders *readers);   // NULL and a message
int64_t eval_source_count(const EvalSource *s);
// The next up to max_n images, all of one size (a folder of mixed sizes is cut where the size
// changes), as (n, H, W, C) uint8 in a buffer the source owns until the next call. *n is the count:
// 0 at the end, -1 on error (NULL returned in both cases).
const uint8_t *eval_source_next(EvalSource *s, int max_n, int *n, int *H, int *W, int *C);
const char *eval_source_kind(const EvalSource *s);   // "png-folder", "hdf5" or "hdf5-shards"
// The class of every image, when the set says it: a shard's int32 "labels" (N; every shard has
// them), or PNG names ending "_class<k>.png" (pmf_sample --png-dir). 0 with *labels (n, malloc'd);
// 1 with NULL when the set has no labels; -1 with a message on a malformed one.
int eval_source_labels(EvalSource *s, int32_t **labels);
void eval_source_close(EvalSource *s);

typedef struct EvalRunConfig {
    int batch;            // images per network call (default 50, as pytorch-fid)
    int64_t max_images;   // 0: all
    int progress;         // 1: a progress bar on stderr
    int is_splits;        // > 0: also compute the Inception Score (net->n_logits > 0)
    int keep_features;    // 1: keep every feature vector, each image's argmax class and the set's labels
} EvalRunConfig;
void eval_run_config_default(EvalRunConfig *c);

typedef struct EvalRunResult {
    EvalStats stats;
    int64_t n_images;
    int has_is;
    double is_mean, is_std;
    double seconds;
    int from_npz;         // statistics were read, not computed
    // With keep_features (NULL otherwise, and for statistics files):
    float *features;      // (n_images, dim)
    int32_t *predicted;   // (n_images) argmax of the network's logits (net->n_logits > 0)
    int32_t *labels;      // (n_images) the set's own labels (eval_source_labels), if it has them
} EvalRunResult;

// `path`: an .npz of statistics (read as is; its dim must match net->dim), or any image source
// eval_source_open takes (through `readers`). Frees nothing of net. -1 and a message naming the
// path on failure.
int eval_stats_from_path(const char *path, const EvalReaders *readers, const EvalFeatureNet *net,
                         const EvalRunConfig *cfg, EvalRunResult *out);
void eval_run_result_free(EvalRunResult *r);

#endif
