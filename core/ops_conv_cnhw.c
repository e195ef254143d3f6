// core/ops_conv_cnhw.c: convolution for frozen networks in channel-major layout, inference only.
//   x (Cin, N, H, W), w (Cout, Cin, KH, KW), b (Cout) or NULL
//   -> relu?(conv(x, w) + b) (Cout, N, OH, OW), written into channels [c0, c0 + Cout) of a
//      caller's (Ctot, N, OH, OW) tensor, or into a new one.
//
// Why a second layout: in NCHW every image is its own (K, OH*OW) column matrix, so InceptionV3's
// 17 x 17 and 8 x 8 layers become GEMMs of 289 or 64 columns, one per image, and every GEMM call
// re-packs the layer's weights. In (C, N, H, W) one channel of all images is one row, so a layer
// is one GEMM y (Cout, N*OH*OW) = w (Cout, K) col (K, N*OH*OW) over all images; a 1x1 convolution
// needs no im2col at all (x already is the column matrix); a channel concat is each branch writing
// its rows of the block's output (no copy); and pooling ops work unchanged (planes are planes).
//
// The columns are cut into tiles of whole output rows, of one image or several, of about
// CNHW_TILE_BYTES of im2col columns; tiles run in parallel, each with a single-threaded sgemm,
// and each tile's bias + ReLU runs while the tile is still in cache. Tiles depend only on the
// shape and the thread count, and every output element comes from one GEMM call, so results do
// not depend on timing.
// No tangent and no backward: a tape that records gradients or a tangent on an input is refused.
#include "conv_shape.h"
#include "core.h"
#include "gemm.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

// Bytes of im2col columns per tile; columns per tile of a 1x1 convolution (no im2col); the
// fewest columns worth a GEMM call.
#define CNHW_TILE_BYTES (2 << 20)
#define CNHW_POINTWISE_COLS 4096
#define CNHW_TILE_MIN_COLS 512

// Output rows (of all images in turn: row g is image g / OH, row g % OH) per tile, for `threads`
// threads: a few tiles are evened out to a multiple of the thread count (3 tiles on 2 threads
// would leave one idle half the time). Test hook: PMF_CONV_TILE_ROWS=r forces r rows, as in
// ops_conv.c (tiles then straddle images).
static int cnhw_tile_rows(const ConvShape *s, int threads) {
    int G = s->N * s->OH, rows;
    const char *force = getenv("PMF_CONV_TILE_ROWS");
    if (force && atoi(force) > 0) return atoi(force) < G ? atoi(force) : G;
    if (conv_is_pointwise(s)) rows = (CNHW_POINTWISE_COLS + s->OW - 1) / s->OW;
    else {
        int64_t row_bytes = (int64_t)conv_K(s) * s->OW * (int64_t)sizeof(float);
        int min_rows = (CNHW_TILE_MIN_COLS + s->OW - 1) / s->OW;
        rows = (int)(CNHW_TILE_BYTES / row_bytes);
        if (rows < min_rows) rows = min_rows;
    }
    if (rows < 1) rows = 1;
    int tiles = (G + rows - 1) / rows;
    if (threads > 1 && tiles > 1 && tiles < 8 * threads && tiles % threads) {
        tiles += threads - tiles % threads;
        rows = (G + tiles - 1) / tiles;
    }
    return rows < G ? rows : G;
}

// col (K, (g1-g0)*OW) <- patches of global output rows [g0, g1) of x (Cin, N, H, W)
static void cnhw_im2col(const ConvShape *s, const float *x, int g0, int g1, float *col) {
    int K = conv_K(s), T = (g1 - g0) * s->OW;
    size_t HW = (size_t)s->H * s->W;
    for (int r = 0; r < K; r++) {
        int kw = r % s->KW, kh = (r / s->KW) % s->KH, c = r / (s->KW * s->KH);
        int lo, hi;
        tap_range(s->OW, s->W, s->sw, s->pw, kw, &lo, &hi);
        float *out = col + (size_t)r * T;
        for (int g = g0; g < g1; g++) {
            int n = g / s->OH, oh = g % s->OH, ih = oh * s->sh - s->ph + kh;
            float *o = out + (size_t)(g - g0) * s->OW;
            if (ih < 0 || ih >= s->H) {
                memset(o, 0, (size_t)s->OW * sizeof(float));
                continue;
            }
            const float *row = x + ((size_t)c * s->N + n) * HW + (size_t)ih * s->W - s->pw + kw;
            for (int ow = 0; ow < lo; ow++) o[ow] = 0.0f;
            if (s->sw == 1)   // a loop, not memcpy: rows are 8-35 floats, shorter than a call is worth
                for (int ow = lo; ow < hi; ow++) o[ow] = row[ow];
            else
                for (int ow = lo; ow < hi; ow++) o[ow] = row[(size_t)ow * s->sw];
            for (int ow = hi; ow < s->OW; ow++) o[ow] = 0.0f;
        }
    }
}

// y (Cout rows of stride N*OH*OW) = relu?(conv(x, w) + b). col: threads * K * rows * OW floats.
static void cnhw_forward(const ConvShape *s, const float *x, const float *w, const float *b, int relu, float *y,
                         float *col, int rows) {
    int K = conv_K(s), G = s->N * s->OH, tiles = (G + rows - 1) / rows, P = G * s->OW;
    int nt = conv_threads(tiles), pointwise = conv_is_pointwise(s);
    size_t col_floats = pointwise ? 0 : (size_t)K * rows * s->OW;
    int blas = nt > 1 ? blas_serial_begin() : -1;
#pragma omp parallel for schedule(dynamic) num_threads(nt) if (nt > 1)
    for (int t = 0; t < tiles; t++) {
        int g0 = t * rows, g1 = g0 + rows < G ? g0 + rows : G, T = (g1 - g0) * s->OW;
        float *yt = y + (size_t)g0 * s->OW;
        if (pointwise) {
            sgemm_ld(0, 0, s->Cout, T, K, w, K, x + (size_t)g0 * s->OW, P, yt, P, 0.0f);
        } else {
            float *ct = col + (size_t)(nt > 1 ? omp_get_thread_num() : 0) * col_floats;
            cnhw_im2col(s, x, g0, g1, ct);
            sgemm_ld(0, 0, s->Cout, T, K, w, K, ct, T, yt, P, 0.0f);
        }
        for (int c = 0; c < s->Cout; c++) {   // epilogue, while the tile is in cache
            float *yr = yt + (size_t)c * P, bc = b ? b[c] : 0.0f;
            if (relu)
                for (int i = 0; i < T; i++) {
                    float v = yr[i] + bc;
                    yr[i] = v > 0.0f ? v : 0.0f;   // op_relu's rule (NaN -> 0)
                }
            else if (b)
                for (int i = 0; i < T; i++) yr[i] += bc;
        }
    }
    if (nt > 1) blas_serial_end(blas);
}

Tensor *op_conv2d_cnhw(Tape *tp, Tensor *x, Tensor *w, Tensor *b, int sh, int sw, int ph, int pw, int relu,
                       Tensor *out, int c0) {
    tensor_require_contiguous(x, "op_conv2d_cnhw");
    tensor_require_contiguous(w, "op_conv2d_cnhw");
    const char *wn = w->name ? w->name : "?";
    if (x->ndim != 4 || w->ndim != 4) core_fatal("op_conv2d_cnhw: x and weight '%s' must be 4-D", wn);
    if ((tp->recording && (x->requires_grad || w->requires_grad || (b && b->requires_grad))) || x->tangent ||
        w->tangent || (b && b->tangent))
        core_fatal("op_conv2d_cnhw: inference only ('%s' needs a gradient or a tangent: use op_conv2d)", wn);
    ConvShape s = {x->shape[1], x->shape[0], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3],
                   0, 0, sh, sw, ph, pw, 1};
    if (w->shape[1] != s.Cin)
        core_fatal("op_conv2d_cnhw: weight '%s' has %d input channels, x has %d", wn, w->shape[1], s.Cin);
    if (b && b->numel != s.Cout) core_fatal("op_conv2d_cnhw: bias of '%s' must have %d elements", wn, s.Cout);
    if (sh <= 0 || sw <= 0 || ph < 0 || pw < 0) core_fatal("op_conv2d_cnhw: bad stride or padding");
    s.OH = (s.H + 2 * ph - s.KH) / sh + 1;
    s.OW = (s.W + 2 * pw - s.KW) / sw + 1;
    if (s.OH <= 0 || s.OW <= 0)
        core_fatal("op_conv2d_cnhw: %dx%d input too small for a %dx%d kernel ('%s')", s.H, s.W, s.KH, s.KW, wn);
    if (out) {
        tensor_require_contiguous(out, "op_conv2d_cnhw");
        if (out->ndim != 4 || out->shape[1] != s.N || out->shape[2] != s.OH || out->shape[3] != s.OW || c0 < 0 ||
            c0 + s.Cout > out->shape[0])
            core_fatal("op_conv2d_cnhw: output of '%s' does not hold channels [%d, %d) of (C, %d, %d, %d)", wn, c0,
                       c0 + s.Cout, s.N, s.OH, s.OW);
    } else {
        int shape[4] = {s.Cout, s.N, s.OH, s.OW};
        out = tensor_new(tp, 4, shape, "conv2d_cnhw");
        c0 = 0;
    }
    int rows = cnhw_tile_rows(&s, omp_in_parallel() ? 1 : omp_get_max_threads());
    ArenaMark mark = arena_mark(tp->arena);   // the column scratch is dead once the op returns
    float *col = conv_is_pointwise(&s) ? NULL
                                       : tape_alloc(tp, (size_t)omp_get_max_threads() * conv_K(&s) * rows * s.OW *
                                                            sizeof(float));
    cnhw_forward(&s, x->data, w->data, b ? b->data : NULL, relu, out->data + (size_t)c0 * s.N * s.OH * s.OW, col,
                 rows);
    arena_release(tp->arena, mark);
    return out;
}
