// core/ops_conv.c: 2-D convolution, NCHW.
//   x (N, Cin, H, W), w (Cout, Cin/G, KH, KW), b (Cout) -> y (N, Cout, OH, OW)
//
// General path: im2col + sgemm over tiles of output rows. Per image n, group g and tile of rows
// [oh0, oh1): y_g[:, tile] (Cout/G, T) = w_g (Cout/G, K) col (K, T), K = Cin/G*KH*KW, T = rows*OW.
// A tile's columns are about 1 MB (they stay in L2 next to the GEMM that reads them), so no
// (K, OH*OW) column matrix is ever materialised. With several threads, the (image, group, tile)
// units run in parallel, each a single-threaded sgemm (OpenBLAS's OpenMP build runs serially
// inside a parallel region); with fewer units than threads, the units run in turn on threaded
// sgemm. A 1x1 stride-1 unpadded convolution skips im2col: the image already is the column matrix.
// Backward recomputes the columns of a tile instead of saving them; the input gradient of a tile
// is col2im(w_g^T dy_tile), and tiles of one image overlap through the kernel's halo, so the
// parallel backward splits work by (image, group) instead.
//
// Depthwise path (groups == Cin == Cout, ConvNeXt's 7x7): a direct kernel on a zero-bordered copy
// of each plane, (image, channel) planes in parallel forward, channels in parallel backward; no GEMM.
// The column and padding scratch of both paths is arena memory given back when the op (or its
// backward) returns.
//
// Tangent: conv(x', w) + conv(x, w') + b', the forward kernel twice (the second accumulating).
// The weight gradient is computed only when w requires grad (frozen networks skip it).
#include "core.h"
#include "conv_shape.h"
#include "gemm.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

// Bytes of one tile's column block the tiling aims at, and the fewest columns worth a GEMM call.
#define CONV_TILE_BYTES (1 << 20)
#define CONV_TILE_MIN_COLS 256

static int conv_is_depthwise(const ConvShape *s) { return s->G > 1 && s->G == s->Cin && s->G == s->Cout; }

// Output rows per tile (the whole image when it is small). Test hook: PMF_CONV_TILE_ROWS=r forces
// r rows, so tests on tiny images cover tile borders (tests/test_ops_conv.c).
static int conv_tile_rows(const ConvShape *s) {
    const char *force = getenv("PMF_CONV_TILE_ROWS");
    if (force && atoi(force) > 0) return atoi(force) < s->OH ? atoi(force) : s->OH;
    int64_t row_bytes = (int64_t)conv_K(s) * s->OW * (int64_t)sizeof(float);
    int rows = (int)(CONV_TILE_BYTES / row_bytes);
    int min_rows = (CONV_TILE_MIN_COLS + s->OW - 1) / s->OW;
    if (rows < min_rows) rows = min_rows;
    if (rows < 1) rows = 1;
    return rows < s->OH ? rows : s->OH;
}

// col (K, (oh1-oh0)*OW) <- patches of output rows [oh0, oh1) over channels [c0, c0 + Cin/G) of image xn
static void im2col_tile(const ConvShape *s, const float *xn, int c0, int oh0, int oh1, float *col) {
    int K = conv_K(s), T = (oh1 - oh0) * s->OW;
    for (int r = 0; r < K; r++) {
        int kw = r % s->KW, kh = (r / s->KW) % s->KH, c = c0 + r / (s->KW * s->KH);
        const float *plane = xn + (size_t)c * s->H * s->W;
        int lo, hi;
        tap_range(s->OW, s->W, s->sw, s->pw, kw, &lo, &hi);
        float *out = col + (size_t)r * T;
        for (int oh = oh0; oh < oh1; oh++) {
            int ih = oh * s->sh - s->ph + kh;
            float *o = out + (size_t)(oh - oh0) * s->OW;
            if (ih < 0 || ih >= s->H) {
                memset(o, 0, (size_t)s->OW * sizeof(float));
                continue;
            }
            const float *row = plane + (size_t)ih * s->W - s->pw + kw;
            for (int ow = 0; ow < lo; ow++) o[ow] = 0.0f;
            if (s->sw == 1) memcpy(o + lo, row + lo, (size_t)(hi - lo) * sizeof(float));
            else
                for (int ow = lo; ow < hi; ow++) o[ow] = row[(size_t)ow * s->sw];
            for (int ow = hi; ow < s->OW; ow++) o[ow] = 0.0f;
        }
    }
}

// dxn channels [c0, c0 + Cin/G) += col2im(dcol) for output rows [oh0, oh1)
static void col2im_tile_add(const ConvShape *s, const float *dcol, int c0, int oh0, int oh1, float *dxn) {
    int K = conv_K(s), T = (oh1 - oh0) * s->OW;
    for (int r = 0; r < K; r++) {
        int kw = r % s->KW, kh = (r / s->KW) % s->KH, c = c0 + r / (s->KW * s->KH);
        float *plane = dxn + (size_t)c * s->H * s->W;
        int lo, hi;
        tap_range(s->OW, s->W, s->sw, s->pw, kw, &lo, &hi);
        const float *in = dcol + (size_t)r * T;
        for (int oh = oh0; oh < oh1; oh++) {
            int ih = oh * s->sh - s->ph + kh;
            if (ih < 0 || ih >= s->H) continue;
            float *row = plane + (size_t)ih * s->W - s->pw + kw;
            const float *d = in + (size_t)(oh - oh0) * s->OW;
            if (s->sw == 1)
                for (int ow = lo; ow < hi; ow++) row[ow] += d[ow];
            else
                for (int ow = lo; ow < hi; ow++) row[(size_t)ow * s->sw] += d[ow];
        }
    }
}

// Scratch floats per thread for the GEMM path: one tile of columns.
static size_t conv_col_floats(const ConvShape *s) {
    return conv_is_pointwise(s) ? 0 : (size_t)conv_K(s) * conv_tile_rows(s) * s->OW;
}

// ---------------------------------------------------------------------------------------------
// GEMM path

// y = conv(x, w) + b (b may be NULL), or y += conv(x, w) when accumulate.
// col: threads * conv_col_floats(s) floats of scratch (threads as conv_threads gives).
static void conv_gemm_forward(const ConvShape *s, const float *x, const float *w, const float *b, float *y,
                              int accumulate, float *col) {
    int cg = s->Cin / s->G, og = s->Cout / s->G, K = conv_K(s), OHW = s->OH * s->OW, HW = s->H * s->W;
    int rows = conv_tile_rows(s), tiles = (s->OH + rows - 1) / rows;
    int64_t units = (int64_t)s->N * s->G * tiles;
    int nt = conv_threads(units);
    size_t col_floats = conv_col_floats(s);
    int pointwise = conv_is_pointwise(s);
    int blas = nt > 1 ? blas_serial_begin() : -1;
#pragma omp parallel for schedule(dynamic) num_threads(nt) if (nt > 1)
    for (int64_t u = 0; u < units; u++) {
        int t = (int)(u % tiles), g = (int)(u / tiles % s->G), n = (int)(u / tiles / s->G);
        int oh0 = t * rows, oh1 = oh0 + rows < s->OH ? oh0 + rows : s->OH, T = (oh1 - oh0) * s->OW;
        const float *xn = x + (size_t)n * s->Cin * HW;
        float *yt = y + ((size_t)n * s->Cout + (size_t)g * og) * OHW + (size_t)oh0 * s->OW;
        float beta = accumulate ? 1.0f : 0.0f;
        if (b) {
            for (int c = 0; c < og; c++) {
                float *yr = yt + (size_t)c * OHW, bc = b[g * og + c];
                if (accumulate)
                    for (int i = 0; i < T; i++) yr[i] += bc;
                else
                    for (int i = 0; i < T; i++) yr[i] = bc;
            }
            beta = 1.0f;
        }
        const float *wg = w + (size_t)g * og * K;
        if (pointwise) {
            sgemm_ld(0, 0, og, T, K, wg, K, xn + (size_t)g * cg * HW + (size_t)oh0 * s->OW, HW, yt, OHW, beta);
        } else {
            float *ct = col + (size_t)(nt > 1 ? omp_get_thread_num() : 0) * col_floats;
            im2col_tile(s, xn, g * cg, oh0, oh1, ct);
            sgemm_ld(0, 0, og, T, K, wg, K, ct, T, yt, OHW, beta);
        }
    }
    if (nt > 1) blas_serial_end(blas);
}

// dx += conv^T(dy), dw += dy (x) cols (either may be NULL). Work is split by (image, group);
// each thread accumulates dw into its own block of dw_priv (threads * Cout*K floats) when
// several run, and the blocks are summed at the end. col: threads * conv_col_floats(s) floats;
// dcol: as many more (input-gradient columns).
static void conv_gemm_backward(const ConvShape *s, const float *x, const float *w, const float *dy, float *dx,
                               float *dw, float *col, float *dcol, float *dw_priv) {
    int cg = s->Cin / s->G, og = s->Cout / s->G, K = conv_K(s), OHW = s->OH * s->OW, HW = s->H * s->W;
    int rows = conv_tile_rows(s), tiles = (s->OH + rows - 1) / rows;
    int units = s->N * s->G;
    int nt = conv_threads(units);
    size_t col_floats = conv_col_floats(s), wn = (size_t)s->Cout * K;
    int pointwise = conv_is_pointwise(s);
    if (dw && nt > 1) memset(dw_priv, 0, (size_t)nt * wn * sizeof(float));
    int blas = nt > 1 ? blas_serial_begin() : -1;
    // static, not dynamic: which units a thread sums into its dw block must not depend on timing,
    // or dw's rounding (and a resumed run's bits) would change from run to run
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int u = 0; u < units; u++) {
        int g = u % s->G, n = u / s->G, th = nt > 1 ? omp_get_thread_num() : 0;
        const float *xn = x + (size_t)n * s->Cin * HW, *wg = w + (size_t)g * og * K;
        float *dxn = dx ? dx + (size_t)n * s->Cin * HW : NULL;
        float *dwg = dw ? (nt > 1 ? dw_priv + (size_t)th * wn : dw) + (size_t)g * og * K : NULL;
        float *ct = col + (size_t)th * col_floats, *dct = dcol + (size_t)th * col_floats;
        for (int t = 0; t < tiles; t++) {
            int oh0 = t * rows, oh1 = oh0 + rows < s->OH ? oh0 + rows : s->OH, T = (oh1 - oh0) * s->OW;
            const float *dyt = dy + ((size_t)n * s->Cout + (size_t)g * og) * OHW + (size_t)oh0 * s->OW;
            if (dwg) {
                if (pointwise)
                    sgemm_ld(0, 1, og, K, T, dyt, OHW, xn + (size_t)g * cg * HW + (size_t)oh0 * s->OW, HW, dwg, K, 1.0f);
                else {
                    im2col_tile(s, xn, g * cg, oh0, oh1, ct);
                    sgemm_ld(0, 1, og, K, T, dyt, OHW, ct, T, dwg, K, 1.0f);
                }
            }
            if (dxn) {
                if (pointwise)   // the columns are dx itself
                    sgemm_ld(1, 0, K, T, og, wg, K, dyt, OHW, dxn + (size_t)g * cg * HW + (size_t)oh0 * s->OW, HW, 1.0f);
                else {
                    sgemm_ld(1, 0, K, T, og, wg, K, dyt, OHW, dct, T, 0.0f);
                    col2im_tile_add(s, dct, g * cg, oh0, oh1, dxn);
                }
            }
        }
    }
    if (nt > 1) blas_serial_end(blas);
    if (dw && nt > 1) {
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < wn; i++) {
            float acc = 0;
            for (int t = 0; t < nt; t++) acc += dw_priv[(size_t)t * wn + i];
            dw[i] += acc;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Depthwise path: channel c of the output sees only channel c of the input. Each thread copies
// the plane it works on into a zero-bordered (H + 2ph, W + 2pw) buffer, so every tap is a
// branch-free, vectorisable loop over one output row.

static int dw_padded_floats(const ConvShape *s) { return (s->H + 2 * s->ph) * (s->W + 2 * s->pw); }

// xpad's interior <- plane xp (its border stays as it is: zero)
static void dw_pad_plane(const ConvShape *s, const float *xp, float *xpad) {
    int Wp = s->W + 2 * s->pw;
    for (int i = 0; i < s->H; i++)
        memcpy(xpad + (size_t)(i + s->ph) * Wp + s->pw, xp + (size_t)i * s->W, (size_t)s->W * sizeof(float));
}

// y (+)= dwconv(x, w) + b, one (image, channel) plane per iteration. pad: threads * dw_padded_floats.
static void conv_dw_forward(const ConvShape *s, const float *x, const float *w, const float *b, float *y,
                            int accumulate, float *pad) {
    int C = s->Cin, HW = s->H * s->W, OHW = s->OH * s->OW, KK = s->KH * s->KW, Wp = s->W + 2 * s->pw;
    int64_t planes = (int64_t)s->N * C;
    size_t pf = (size_t)dw_padded_floats(s);
#pragma omp parallel
    {
        float *xpad = pad + (size_t)omp_get_thread_num() * pf;
        memset(xpad, 0, pf * sizeof(float));
#pragma omp for schedule(static)
        for (int64_t p = 0; p < planes; p++) {
            int c = (int)(p % C);
            const float *wc = w + (size_t)c * KK;
            float *yp = y + (size_t)p * OHW;
            dw_pad_plane(s, x + (size_t)p * HW, xpad);
            if (!accumulate) {
                float bc = b ? b[c] : 0.0f;
                for (int i = 0; i < OHW; i++) yp[i] = bc;
            } else if (b) {
                for (int i = 0; i < OHW; i++) yp[i] += b[c];
            }
            for (int oh = 0; oh < s->OH; oh++) {
                float *yr = yp + (size_t)oh * s->OW;
                for (int kh = 0; kh < s->KH; kh++) {
                    const float *xr = xpad + (size_t)(oh * s->sh + kh) * Wp;
                    for (int kw = 0; kw < s->KW; kw++) {
                        float wv = wc[kh * s->KW + kw];
                        const float *xk = xr + kw;
                        if (s->sw == 1)
                            for (int ow = 0; ow < s->OW; ow++) yr[ow] += wv * xk[ow];
                        else
                            for (int ow = 0; ow < s->OW; ow++) yr[ow] += wv * xk[(size_t)ow * s->sw];
                    }
                }
            }
        }
    }
}

// dx += dwconv^T(dy), dw += correlation of dy with x, db += sums of dy (any may be NULL).
// One channel per iteration (its images in turn), so dw and db need no reduction across threads.
// pad: threads * 2 * dw_padded_floats (the padded input plane and the padded input gradient).
static void conv_dw_backward(const ConvShape *s, const float *x, const float *w, const float *dy, float *dx,
                             float *dw, float *db, float *pad) {
    int C = s->Cin, HW = s->H * s->W, OHW = s->OH * s->OW, KK = s->KH * s->KW, Wp = s->W + 2 * s->pw;
    size_t pf = (size_t)dw_padded_floats(s);
#pragma omp parallel
    {
        float *xpad = pad + (size_t)omp_get_thread_num() * 2 * pf, *dxpad = xpad + pf;
        memset(xpad, 0, pf * sizeof(float));
#pragma omp for schedule(static)
        for (int c = 0; c < C; c++) {
            const float *wc = w + (size_t)c * KK;
            float *dwc = dw ? dw + (size_t)c * KK : NULL;   // this thread's alone
            for (int n = 0; n < s->N; n++) {
                size_t p = (size_t)n * C + c;
                const float *dyp = dy + p * OHW;
                if (db) {
                    float acc = 0;
                    for (int i = 0; i < OHW; i++) acc += dyp[i];
                    db[c] += acc;
                }
                if (dw) dw_pad_plane(s, x + p * HW, xpad);
                if (dx) memset(dxpad, 0, pf * sizeof(float));
                for (int oh = 0; oh < s->OH; oh++) {
                    const float *d = dyp + (size_t)oh * s->OW;
                    for (int kh = 0; kh < s->KH; kh++) {
                        size_t row = (size_t)(oh * s->sh + kh) * Wp;
                        for (int kw = 0; kw < s->KW; kw++) {
                            if (dx) {
                                float wv = wc[kh * s->KW + kw], *r = dxpad + row + kw;
                                if (s->sw == 1)
                                    for (int ow = 0; ow < s->OW; ow++) r[ow] += wv * d[ow];
                                else
                                    for (int ow = 0; ow < s->OW; ow++) r[(size_t)ow * s->sw] += wv * d[ow];
                            }
                            if (dw) {
                                const float *r = xpad + row + kw;
                                float acc = 0;
                                if (s->sw == 1)
                                    for (int ow = 0; ow < s->OW; ow++) acc += r[ow] * d[ow];
                                else
                                    for (int ow = 0; ow < s->OW; ow++) acc += r[(size_t)ow * s->sw] * d[ow];
                                dwc[kh * s->KW + kw] += acc;
                            }
                        }
                    }
                }
                if (dx) {
                    float *dxp = dx + p * HW;
                    for (int i = 0; i < s->H; i++) {
                        const float *r = dxpad + (size_t)(i + s->ph) * Wp + s->pw;
                        float *o = dxp + (size_t)i * s->W;
                        for (int j = 0; j < s->W; j++) o[j] += r[j];
                    }
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dispatch

static void conv_forward(Tape *tp, const ConvShape *s, const float *x, const float *w, const float *b, float *y,
                         int accumulate) {
    if (conv_is_depthwise(s)) {
        float *pad = tape_alloc(tp, (size_t)omp_get_max_threads() * dw_padded_floats(s) * sizeof(float));
        conv_dw_forward(s, x, w, b, y, accumulate, pad);
        return;
    }
    size_t cf = conv_col_floats(s);
    float *col = cf ? tape_alloc(tp, (size_t)omp_get_max_threads() * cf * sizeof(float)) : NULL;
    conv_gemm_forward(s, x, w, b, y, accumulate, col);
}

static void conv_backward(Tape *tp, const ConvShape *s, const float *x, const float *w, const float *dy, float *dx,
                          float *dw, float *db) {
    if (conv_is_depthwise(s)) {
        float *pad = tape_alloc(tp, (size_t)omp_get_max_threads() * 2 * dw_padded_floats(s) * sizeof(float));
        conv_dw_backward(s, x, w, dy, dx, dw, db, pad);
        return;
    }
    if (dx || dw) {
        size_t cf = conv_col_floats(s), nt = (size_t)omp_get_max_threads();
        float *col = cf ? tape_alloc(tp, 2 * nt * cf * sizeof(float)) : NULL;
        float *dw_priv = dw && nt > 1 ? tape_alloc(tp, nt * (size_t)s->Cout * conv_K(s) * sizeof(float)) : NULL;
        conv_gemm_backward(s, x, w, dy, dx, dw, col, col ? col + nt * cf : NULL, dw_priv);
    }
    if (db) {
        int OHW = s->OH * s->OW;
#pragma omp parallel for schedule(static)
        for (int c = 0; c < s->Cout; c++) {
            float acc = 0;
            for (int n = 0; n < s->N; n++) {
                const float *d = dy + ((size_t)n * s->Cout + c) * OHW;
                for (int i = 0; i < OHW; i++) acc += d[i];
            }
            db[c] += acc;
        }
    }
}

static void conv_backward_node(Tape *tp, TapeNode *n) {
    ConvShape *s = n->extra;
    Tensor *x = n->in[0], *w = n->in[1], *b = n->in[2];
    float *dx = tensor_grad(tp, x), *dw = tensor_grad(tp, w), *db = b ? tensor_grad(tp, b) : NULL;
    ArenaMark mark = arena_mark(tp->arena);   // the scratch below is dead after the call
    conv_backward(tp, s, x->data, w->data, n->out->grad, dx, dw, db);
    arena_release(tp->arena, mark);
}

Tensor *op_conv2d(Tape *tp, Tensor *x, Tensor *w, Tensor *b, int sh, int sw, int ph, int pw, int groups) {
    tensor_require_contiguous(x, "op_conv2d");
    tensor_require_contiguous(w, "op_conv2d");
    const char *wn = w->name ? w->name : "?";
    if (x->ndim != 4 || w->ndim != 4) core_fatal("op_conv2d: x and weight '%s' must be 4-D", wn);
    ConvShape s = {x->shape[0], x->shape[1], x->shape[2], x->shape[3], w->shape[0], w->shape[2], w->shape[3],
                   0, 0, sh, sw, ph, pw, groups};
    if (groups <= 0 || s.Cin % groups || s.Cout % groups || w->shape[1] != s.Cin / groups)
        core_fatal("op_conv2d: weight '%s' (%d, %d, %d, %d) does not fit %d input channels in %d groups", wn,
                   w->shape[0], w->shape[1], w->shape[2], w->shape[3], s.Cin, groups);
    if (b && b->numel != s.Cout) core_fatal("op_conv2d: bias of '%s' must have %d elements", wn, s.Cout);
    if (sh <= 0 || sw <= 0 || ph < 0 || pw < 0) core_fatal("op_conv2d: bad stride or padding");
    s.OH = (s.H + 2 * ph - s.KH) / sh + 1;
    s.OW = (s.W + 2 * pw - s.KW) / sw + 1;
    if (s.OH <= 0 || s.OW <= 0) core_fatal("op_conv2d: %dx%d input too small for a %dx%d kernel ('%s')", s.H, s.W, s.KH, s.KW, wn);
    int shape[4] = {s.N, s.Cout, s.OH, s.OW};
    Tensor *in[3] = {x, w, b};
    Tensor *y = tape_output(tp, 4, shape, in, 3);
    // the column scratch is dead once the op returns: give it back to the arena
    ArenaMark mark = arena_mark(tp->arena);
    conv_forward(tp, &s, x->data, w->data, b ? b->data : NULL, y->data, 0);
    if (y->tangent) {
        int first = 1;
        if (x->tangent) conv_forward(tp, &s, x->tangent, w->data, NULL, y->tangent, 0), first = 0;
        if (w->tangent) conv_forward(tp, &s, x->data, w->tangent, NULL, y->tangent, !first), first = 0;
        if (first) memset(y->tangent, 0, (size_t)y->numel * sizeof(float));
        if (b && b->tangent) {
            int64_t OHW = (int64_t)s.OH * s.OW, NC = (int64_t)s.N * s.Cout;
            float *ty = y->tangent;
            const float *tb = b->tangent;
#pragma omp parallel for schedule(static)
            for (int64_t p = 0; p < NC; p++)
                for (int64_t i = 0; i < OHW; i++) ty[p * OHW + i] += tb[p % s.Cout];
        }
    }
    arena_release(tp->arena, mark);
    TapeNode *n = tape_record(tp, "conv2d", y, conv_backward_node, in, 3);
    if (n) n->extra = tape_keep(tp, &s, sizeof s);
    return y;
}
