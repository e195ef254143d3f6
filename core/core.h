// core/core.h: the one public header of pmf's tensor engine.
//
// Float32 tensors up to 4-D, an arena per step, a parameter store, a counter-based RNG, a tape
// with reverse-mode gradients, eager forward-mode tangents, and safetensors I/O.
// core/ knows nothing about images, flows, models or datasets; everything else builds on it.
//
// Conventions every op follows (read these before writing one):
// - Every op has three faces, written as plain kernels on raw float* in the op's file:
//   *_forward, *_tangent, *_backward. The op_* wrapper calls forward, then tangent when any input
//   carries a tangent (a NULL tangent means zero), and records a tape node when gradients are on.
// - Backward kernels accumulate (+=) into input gradients.
// - Tensors are row-major. Kernels need contiguous inputs; op_permute/op_slice make strided views
//   and op_contiguous copies one into dense storage (with its own backward and tangent).
// - Views alias their base's data, gradient and tangent (same offset, same strides), so view ops
//   need no tape node: a gradient written through a view lands in the base.
// - Images are NCHW (as PyTorch), linear weights are (out, in) (as torch.nn.Linear).
#ifndef PMF_CORE_H
#define PMF_CORE_H

#include <stddef.h>
#include <stdint.h>

#define TENSOR_MAX_DIMS 4

// ---------------------------------------------------------------------------------------------
// Errors: library calls that can fail on bad input return NULL or -1 and leave a message here,
// naming the file and the field. Internal invariants (shape misuse by our own code) abort.
const char *core_last_error(void);
void core_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void core_fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void *core_malloc(size_t bytes, const char *what);   // aborts with a message on failure
void *core_calloc(size_t n, size_t size, const char *what);

// ---------------------------------------------------------------------------------------------
// Arena: bump allocation for one step's activations. Reset keeps its chunks, so after the first
// step of a loop no further malloc happens. Every block is 64-byte aligned.
typedef struct ArenaChunk ArenaChunk;
typedef struct Arena {
    ArenaChunk *chunks;    // chunk list, first is current-or-earlier
    ArenaChunk *current;
    size_t chunk_bytes;    // default size of a new chunk
    size_t used;           // bytes handed out since the last reset
    size_t peak;           // largest `used` seen
    size_t reserved;       // bytes held in chunks
} Arena;

void arena_init(Arena *a, size_t chunk_bytes);
void *arena_alloc(Arena *a, size_t bytes);           // uninitialised
void *arena_calloc(Arena *a, size_t bytes);          // zeroed
void arena_reset(Arena *a);
// Mark and release: everything allocated after the mark is given back (a no-gradient pass whose
// intermediates are dead once its result is copied out, e.g. pMF's guidance forward).
typedef struct ArenaMark {
    ArenaChunk *chunk;
    size_t chunk_used, used;
} ArenaMark;
ArenaMark arena_mark(const Arena *a);
void arena_release(Arena *a, ArenaMark m);
void arena_free(Arena *a);

// ---------------------------------------------------------------------------------------------
// Tensor
typedef struct Tensor Tensor;
struct Tensor {
    float *data;
    float *tangent;          // forward-mode derivative; NULL = zero tangent
    float *grad;             // reverse-mode gradient; allocated lazily, see tensor_grad()
    int ndim;
    int shape[TENSOR_MAX_DIMS];
    int64_t stride[TENSOR_MAX_DIMS];  // in elements
    int64_t numel;
    const char *name;
    int requires_grad;       // a parameter, or computed from one while the tape records
    Tensor *base;            // storage owner of a view (never itself a view); NULL if owner
    int64_t offset;          // offset of a view into base's buffers, elements
};

int tensor_is_contiguous(const Tensor *t);
int tensor_same_shape(const Tensor *a, const Tensor *b);
void tensor_shape_str(const Tensor *t, char *buf, size_t n);   // "(2, 3, 4)"
int tensor_axis(const Tensor *t, int axis);                    // negative axes count from the end

// ---------------------------------------------------------------------------------------------
// Tape: records ops for backward, owns nothing but its node list; tensors live in its arena.
typedef struct Tape Tape;
typedef struct TapeNode TapeNode;
typedef void (*BackwardFn)(Tape *tp, TapeNode *node);

#define TAPE_MAX_INPUTS 4
struct TapeNode {
    BackwardFn backward;
    const char *op;                      // op name, for error messages and debugging
    Tensor *out;
    Tensor *in[TAPE_MAX_INPUTS];
    int n_in;
    float *saved[4];                     // arena buffers the forward kept for backward
    void *extra;                         // the op's saved values as one named struct (AttnShape,
                                         // MatmulShape, ...), arena-allocated by tape_keep
};

struct Tape {
    Arena *arena;
    TapeNode *nodes;
    int n_nodes, cap_nodes;
    int recording;                       // 0: no-tape mode (inference, frozen networks)
    // Gradients that land in [grad_from, grad_from + grad_n) (a parameter store's gradient block)
    // go to the same offsets of grad_to instead; see tape_redirect_grads.
    const float *grad_from;
    float *grad_to;
    int64_t grad_n;
};

void tape_init(Tape *tp, Arena *arena);
void tape_free(Tape *tp);
// Clears the node list and resets the arena: every tensor made through this tape is gone.
void tape_reset(Tape *tp);
void tape_set_recording(Tape *tp, int on);
// Threads that each run part of a batch on their own tape give each tape its own copy of the
// parameter gradients (`to`, n floats, laid out as `from`): gradients tensor_grad would place in
// `from` go to `to`, so the threads never write the same memory. NULL `to` ends the redirection.
void tape_redirect_grads(Tape *tp, const float *from, float *to, int64_t n);

// New dense tensor in the tape's arena, uninitialised / zeroed. No grad, no tangent.
Tensor *tensor_new(Tape *tp, int ndim, const int *shape, const char *name);
Tensor *tensor_zeros(Tape *tp, int ndim, const int *shape, const char *name);
Tensor *tensor_from(Tape *tp, int ndim, const int *shape, const float *src, const char *name);
Tensor *tensor_scalar(Tape *tp, float value);   // shape (1)
// Wrap caller-owned memory (no copy). The caller keeps it alive for the tensor's life.
Tensor *tensor_wrap(Tape *tp, float *data, int ndim, const int *shape, const char *name);
// Give a tensor a tangent buffer (zeroed) so the ops that consume it propagate tangents.
float *tensor_attach_tangent(Tape *tp, Tensor *t);

// The gradient buffer of t, allocated (zeroed) in the arena on first use; views resolve to their
// base. NULL when t does not require grad.
float *tensor_grad(Tape *tp, Tensor *t);

// For op writers: the output of an op over `inputs`. Data is uninitialised; a tangent buffer
// (uninitialised) exists iff an input carries a tangent; requires_grad iff the tape records and an
// input requires grad.
Tensor *tape_output(Tape *tp, int ndim, const int *shape, Tensor *const *inputs, int n_in);
// For op writers: record a node for `out` if it requires grad; returns NULL otherwise.
TapeNode *tape_record(Tape *tp, const char *op, Tensor *out, BackwardFn fn,
                      Tensor *const *inputs, int n_in);
void *tape_alloc(Tape *tp, size_t bytes);      // arena memory for saved values
// An arena copy of `bytes` at src: how an op keeps its named saved values for its backward,
// `node->extra = tape_keep(tp, &shape, sizeof shape)`.
void *tape_keep(Tape *tp, const void *src, size_t bytes);
// Abort with a message naming the op if t is not dense row-major.
void tensor_require_contiguous(const Tensor *t, const char *op);

// Reverse pass: seeds out's gradient with `seed` (same numel as out; NULL means all ones) and walks
// the tape back to front. Gradients accumulate into parameters' grad buffers and leaves' grads.
void tape_backward(Tape *tp, Tensor *out, const float *seed);

// ---------------------------------------------------------------------------------------------
// Parameter store: declare named tensors, then one allocation holds them all (and one the grads).
typedef struct ParamStore {
    Tensor *tensors;      // fixed capacity; pointers stay valid
    int n, cap;
    float *data, *grad;   // one block each, 64-byte aligned
    int64_t total;        // total elements
    int finalized;
} ParamStore;

void params_init(ParamStore *ps, int max_tensors);
Tensor *params_declare(ParamStore *ps, const char *name, int ndim, const int *shape);
void params_finalize(ParamStore *ps);           // allocates; data zeroed, grads zeroed
void params_zero_grad(ParamStore *ps);
// Inference only: frees the gradient block (as large as the parameters); the tensors become
// constants, which is all a no-tape forward needs.
void params_drop_grads(ParamStore *ps);
Tensor *params_find(ParamStore *ps, const char *name);
void params_free(ParamStore *ps);

// ---------------------------------------------------------------------------------------------
// RNG: Philox4x32-10, counter based. Element i of a fill depends only on (seed, offset + i), so
// results do not depend on the thread count. `offset` advances by the number of values drawn.
typedef struct Rng {
    uint64_t seed;
    uint64_t offset;
} Rng;

void rng_init(Rng *r, uint64_t seed);
void philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);
void philox4x32(uint64_t counter, uint64_t key, uint32_t out[4]);   // ctr = (counter, 0)
void rng_fill_normal(Rng *r, float *x, int64_t n, float mean, float std);
void rng_fill_uniform(Rng *r, float *x, int64_t n, float lo, float hi);
double rng_uniform(Rng *r);                    // one value in [0, 1)
double rng_normal(Rng *r);                     // one standard normal value

// ---------------------------------------------------------------------------------------------
// safetensors: https://huggingface.co/docs/safetensors format. The header is validated on open
// (sizes, offsets in bounds, no overlaps, known dtype); a bad file gives -1 and a message.
typedef enum { ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_U8 } StDtype;

typedef struct StEntry {
    char *name;
    StDtype dtype;
    int ndim;
    int64_t shape[8];
    int64_t numel;
    uint64_t begin, end;   // byte range relative to the data section
} StEntry;

typedef struct SafeTensors {
    char *path;
    unsigned char *bytes;  // the whole file
    size_t file_size;
    size_t data_start;     // 8 + header length
    StEntry *entries;
    int n_entries;
    char **meta_keys, **meta_values;
    int n_meta;
} SafeTensors;

int safetensors_open(SafeTensors *st, const char *path);
// Parse from memory (copied); `label` names the source in error messages. Used by the fuzzer.
int safetensors_parse(SafeTensors *st, const unsigned char *bytes, size_t n, const char *label);
void safetensors_close(SafeTensors *st);
const StEntry *safetensors_find(const SafeTensors *st, const char *name);
const char *safetensors_meta(const SafeTensors *st, const char *key);   // NULL if absent
// Copy a tensor into dst as float32 (converting F16/BF16/F64). The shape must equal `shape`
// (ndim values); a mismatch gives -1 and a message naming the file, the tensor and both shapes.
int safetensors_read_f32(const SafeTensors *st, const char *name, int ndim, const int *shape,
                         float *dst);
// Every tensor of the store from st, by name, each shape checked (a mismatch names the tensor and
// both shapes). A tensor st lacks gives -1 and the message "<who>: '<path>' has no tensor '<name>'
// (<hint>)", hint saying what to do (e.g. the converter to re-run).
int params_read_safetensors(ParamStore *ps, const SafeTensors *st, const char *path, const char *who,
                            const char *hint);

typedef struct StWriter StWriter;
StWriter *st_writer_new(void);
void st_writer_add(StWriter *w, const char *name, int ndim, const int *shape, const float *data);
void st_writer_add_tensor(StWriter *w, const Tensor *t);   // uses t->name; t contiguous
void st_writer_meta(StWriter *w, const char *key, const char *value);
// Atomic: writes path.tmp, fsyncs, renames over path, fsyncs the folder. Returns 0 or -1.
int st_writer_save(StWriter *w, const char *path);
void st_writer_free(StWriter *w);
// The whole of a regular file (malloc'd), at most max_bytes; NULL with a message naming the file.
unsigned char *core_read_file(const char *path, size_t max_bytes, size_t *n);
// Writes the parts one after the other to path.tmp, fsyncs, renames over path and fsyncs the
// folder: a crash leaves the old file or the new one, never half of one. 0, or -1 with a message.
int core_write_atomic(const char *path, int n_parts, const void *const *parts, const size_t *sizes);
// The same written piece by piece (a stream of batches): open, write..., commit (or abort, which
// removes the temporary file). Each returns 0 or -1 with a message naming the file.
typedef struct CoreAtomicFile {
    int fd;
    char *tmp, *path;
} CoreAtomicFile;
int core_atomic_open(CoreAtomicFile *f, const char *path);
int core_atomic_write(CoreAtomicFile *f, const void *buf, size_t n);
int core_atomic_commit(CoreAtomicFile *f);
void core_atomic_abort(CoreAtomicFile *f);

// ---------------------------------------------------------------------------------------------
// .npy files (numpy.save): a float or integer array, C or Fortran order, npy format 1.0 / 2.0 /
// 3.0, little-endian (or single-byte) dtypes. Read into float32 (floats) or int64 (integers), or
// with npy_parse_f64 into float64 (floats only: eval's statistics); the element count is checked in 64 bits against the file's size and `max_numel` before anything
// is allocated. Written as float32 C-order npy 1.0, atomically.
typedef struct NpyArray {
    int ndim;
    int64_t shape[8];
    int64_t numel;
    char kind;           // 'f' (floats: f32 set), 'i' (integers, signed or not: i64 set) or 'd' (f64 set)
    float *f32;
    int64_t *i64;
    double *f64;
} NpyArray;
int npy_read(const char *path, int64_t max_numel, NpyArray *out);   // -1 and a message naming the file
// The same from memory; `label` names the source in messages (fuzz/fuzz_npy.c).
int npy_parse_bytes(const unsigned char *bytes, size_t n, const char *label, int64_t max_numel, NpyArray *out);
// The same for float arrays ('<f4' or '<f8') read as double; integer dtypes are refused.
int npy_parse_f64(const unsigned char *bytes, size_t n, const char *label, int64_t max_numel, NpyArray *out);
void npy_free(NpyArray *a);
int npy_write_f32(const char *path, int ndim, const int64_t *shape, const float *data);
// The npy 1.0 header of a C-order array of `descr` ("<f4", "<f8"; ndim <= 8), padded with spaces
// and a newline to a multiple of 64 bytes (numpy's rule): the bytes written into out (<= 256), and
// the shape's element count in *numel.
int npy_header(unsigned char *out, const char *descr, int ndim, const int64_t *shape, int64_t *numel);
// A float32 .npy of a known shape written a piece at a time (atomically); finish checks that
// exactly the shape's elements were added.
typedef struct NpyWriter {
    CoreAtomicFile file;
    int64_t numel, added;
} NpyWriter;
int npy_writer_open(NpyWriter *w, const char *path, int ndim, const int64_t *shape);
int npy_writer_add(NpyWriter *w, const float *data, int64_t count);
int npy_writer_finish(NpyWriter *w);
void npy_writer_abort(NpyWriter *w);

// ---------------------------------------------------------------------------------------------
// Ops. Each returns a new tensor in the tape's arena. Shapes use short names: B batch, T tokens,
// C channels, NH heads, HS head size, H/W height/width.

// Matrix products (OpenBLAS sgemm).
// a (..., M, K) or (..., K, M) if trans_a; b (..., K, N) or (..., N, K) if trans_b. Batch dims of a
// and b are equal, or b is 2-D and shared by every batch. -> (..., M, N)
Tensor *op_matmul(Tape *tp, Tensor *a, Tensor *b, int trans_a, int trans_b);
// x (..., K), w (N, K), b (N) or NULL -> (..., N)
Tensor *op_linear(Tape *tp, Tensor *x, Tensor *w, Tensor *b);

// Elementwise with numpy broadcasting (shapes aligned from the right, size-1 dims broadcast).
Tensor *op_add(Tape *tp, Tensor *a, Tensor *b);
Tensor *op_sub(Tape *tp, Tensor *a, Tensor *b);
Tensor *op_mul(Tape *tp, Tensor *a, Tensor *b);
Tensor *op_div(Tape *tp, Tensor *a, Tensor *b);
Tensor *op_scale(Tape *tp, Tensor *x, float s);              // s * x
Tensor *op_add_scalar(Tape *tp, Tensor *x, float s);         // x + s
// x + a * g with x, a (..., C) and g (C): a gated residual branch in one pass (same numbers as
// op_add(x, op_mul(a, g))).
Tensor *op_gated_residual(Tape *tp, Tensor *x, Tensor *a, Tensor *g);

// Unary
Tensor *op_silu(Tape *tp, Tensor *x);
Tensor *op_gelu_tanh(Tape *tp, Tensor *x);
Tensor *op_gelu_erf(Tape *tp, Tensor *x);
Tensor *op_relu(Tape *tp, Tensor *x);
Tensor *op_sigmoid(Tape *tp, Tensor *x);
Tensor *op_exp(Tape *tp, Tensor *x);
Tensor *op_sqrt(Tape *tp, Tensor *x);
Tensor *op_pow(Tape *tp, Tensor *x, float p);                // x^p (x > 0 unless p integral)
// clip(x, lo, hi); derivative 1 strictly inside (lo, hi), 0 on and outside the bounds.
Tensor *op_clip(Tape *tp, Tensor *x, float lo, float hi);

// Reductions over the axes in `axes_mask` (bit i = axis i); keepdim keeps them as size 1.
#define AXES_ALL 0xF
Tensor *op_sum(Tape *tp, Tensor *x, int axes_mask, int keepdim);
Tensor *op_mean(Tape *tp, Tensor *x, int axes_mask, int keepdim);

// Shape
Tensor *op_reshape(Tape *tp, Tensor *x, int ndim, const int *shape);   // view; x contiguous
Tensor *op_permute(Tape *tp, Tensor *x, const int *perm);              // strided view
Tensor *op_slice(Tape *tp, Tensor *x, int axis, int start, int end);   // view [start, end)
Tensor *op_contiguous(Tape *tp, Tensor *x);                            // x itself if dense
Tensor *op_concat(Tape *tp, Tensor *const *xs, int n, int axis);
// Rows of table (V, D) -> (n, D). ids are checked against V.
Tensor *op_embedding(Tape *tp, Tensor *table, const int *ids, int n);
// Stop-gradient: same data, no gradient and no tangent flow through.
Tensor *op_stop_gradient(Tape *tp, Tensor *x);
// A view of x that carries no tangent (gradients still flow): stops forward-mode work where a
// derivative is not needed (pMF's v-head reads the trunk without its tangent).
Tensor *op_drop_tangent(Tape *tp, Tensor *x);
// The tangent of x as a constant tensor (no grad, no tangent): du/dt in the pMF target.
Tensor *op_tangent_of(Tape *tp, Tensor *x);

// Normalisation over the last axis.
Tensor *op_rmsnorm(Tape *tp, Tensor *x, Tensor *w, float eps);          // w (C) or NULL
Tensor *op_layernorm(Tape *tp, Tensor *x, Tensor *w, Tensor *b, float eps);  // w, b (C) or NULL
// LayerNorm over axis 1 of x (N, C, ...) at every (n, h, w): op_layernorm's numbers on the channels-
// first layout without transposing (ConvNeXt's LayerNorm over channels). w, b (C) or NULL.
Tensor *op_layernorm_channels(Tape *tp, Tensor *x, Tensor *w, Tensor *b, float eps);
Tensor *op_softmax(Tape *tp, Tensor *x);

// Transformer pieces.
// 2-D rotary embedding on x (B, T, NH*HS), applied per head to tokens [start, start + gh*gw),
// token start + i at grid position (i / gw, i % gw). Pairs (2j, 2j+1); m = HS/2 pairs; pair j <
// m/2 turns by row * theta^(-2j/m), pair j >= m/2 by col * theta^(-2(j-m/2)/m).
Tensor *op_rope2d(Tape *tp, Tensor *x, int n_heads, int start, int gh, int gw, float theta);
// softmax(q k^T / sqrt(HS)) v per head; q, k, v (B, T, NH*HS) -> (B, T, NH*HS). No mask.
Tensor *op_attention(Tape *tp, Tensor *q, Tensor *k, Tensor *v, int n_heads);
// silu(a) * b, the gate of SwiGLU.
Tensor *op_swiglu(Tape *tp, Tensor *a, Tensor *b);
// The same on one packed tensor h (..., 2H) = [a | b] (one GEMM for both SwiGLU projections) -> (..., H).
Tensor *op_swiglu_packed(Tape *tp, Tensor *h);
// The attention inputs from one packed projection qkv (B, T, 3C) = [q | k | v], C = NH*HS, in one
// pass -> (3, B, T, C): q and k RMSNormed per head (eps, weights q_norm / k_norm (HS) or NULL) and
// then rotated as op_rope2d(start, gh, gw, theta); v copied. out[0], out[1], out[2] (op_slice on
// axis 0) are dense q, k, v. The same numbers as the chain of reshape, op_rmsnorm and op_rope2d.
Tensor *op_qkv_heads(Tape *tp, Tensor *qkv, Tensor *q_norm, Tensor *k_norm, int n_heads, float eps, int start,
                     int gh, int gw, float theta);
// [cos(s f_k) | sin(s f_k)], f_k = exp(-ln(max_period) k / (dim/2)); s (B) -> (B, dim)
Tensor *op_timestep_embedding(Tape *tp, Tensor *s, int dim, float max_period);

// Mean cross-entropy of logits (B, K) against integer labels in [0, K) -> shape (1).
Tensor *op_cross_entropy(Tape *tp, Tensor *logits, const int *labels);

// Convolution and pooling, NCHW.
// x (N, Cin, H, W), w (Cout, Cin/groups, KH, KW), b (Cout) or NULL.
Tensor *op_conv2d(Tape *tp, Tensor *x, Tensor *w, Tensor *b, int stride_h, int stride_w,
                  int pad_h, int pad_w, int groups);
// Inference only (no tangent, no gradient), channel-major: x (Cin, N, H, W), w (Cout, Cin, KH, KW),
// b (Cout) or NULL -> relu?(conv(x, w) + b) in channels [c0, c0 + Cout) of out (Ctot, N, OH, OW),
// or in a new (Cout, N, OH, OW) tensor when out is NULL; returns the tensor written. All images'
// columns go through one GEMM per tile, and a concat is free (see core/ops_conv_cnhw.c).
Tensor *op_conv2d_cnhw(Tape *tp, Tensor *x, Tensor *w, Tensor *b, int stride_h, int stride_w,
                       int pad_h, int pad_w, int relu, Tensor *out, int c0);
// Pooling treats dims 0 and 1 alike (N*C planes), so it runs on (C, N, H, W) tensors unchanged.
Tensor *op_maxpool2d(Tape *tp, Tensor *x, int kh, int kw, int sh, int sw, int ph, int pw,
                     int ceil_mode);
Tensor *op_avgpool2d(Tape *tp, Tensor *x, int kh, int kw, int sh, int sw, int ph, int pw,
                     int count_include_pad);
Tensor *op_adaptive_avgpool2d(Tape *tp, Tensor *x, int out_h, int out_w);

// Resize x (N, C, H, W) -> (N, C, out_h, out_w), as torch.nn.functional.interpolate with
// align_corners=False. Bicubic uses a = -0.75 without antialias and a = -0.5 with it (as torch).
typedef enum { RESIZE_BILINEAR, RESIZE_BICUBIC } ResizeMode;
Tensor *op_resize(Tape *tp, Tensor *x, int out_h, int out_w, ResizeMode mode, int antialias);

// ---------------------------------------------------------------------------------------------
// Optimizers over a parameter store's flat arrays.
// AdamW as torch.optim.AdamW: decoupled weight decay p -= lr*wd*p, then the bias-corrected Adam step.
typedef struct AdamW {
    float lr, beta1, beta2, eps, weight_decay;
    int64_t step;
    int64_t n;
    float *m, *v;
} AdamW;

void adamw_init(AdamW *opt, const ParamStore *ps, float lr, float beta1, float beta2, float eps,
                float weight_decay);
void adamw_step(AdamW *opt, ParamStore *ps);
void adamw_free(AdamW *opt);

// Muon as pMF calls it (optax.contrib.muon, spec 7.1): tensors flagged in `use_muon` get Nesterov
// momentum (bias-corrected), 5 Newton-Schulz steps (3.4445, -4.7750, 2.0315) and the scale
// sqrt(max(1, out/in)) for a (out, in) weight; every other tensor gets the NAdam-style Adam branch
// (b1, b2, eps, bias-corrected Nesterov first moment). No weight decay.
typedef struct Muon {
    float lr, beta, adam_b1, adam_b2, eps;
    int64_t step;
    int64_t n;
    float *mu, *nu;            // momentum (all tensors); Adam second moment (Adam tensors)
    uint8_t *use_muon;         // per tensor of the store
    float *work;               // Newton-Schulz scratch, scratch_threads blocks of work_floats
    float *update;             // one matrix's orthogonalised update, as many blocks of update_floats
    size_t work_floats, update_floats;
    int scratch_threads;
} Muon;

void muon_init(Muon *opt, const ParamStore *ps, const uint8_t *use_muon, float lr, float beta, float adam_b1,
               float adam_b2, float eps);
void muon_step(Muon *opt, ParamStore *ps);
void muon_free(Muon *opt);
// X (rows, cols) <- the Newton-Schulz orthogonalisation of X / ||X||_F (5 steps), in place.
void newton_schulz5(float *X, int rows, int cols, float *work);

// ---------------------------------------------------------------------------------------------
// Threads: OpenMP. Sets both OpenMP's and OpenBLAS's thread count (0 = leave as is).
void core_set_threads(int n);
// Programs call this first thing in main. OpenMP's default (spinning) wait policy makes every
// parallel loop stall for a time slice whenever another process holds a core, which on a shared
// 2-core machine made training 4-10x slower; sleeping waits cost nothing measurable when the
// machine is quiet. libgomp reads OMP_WAIT_POLICY only at load time, so when it is unset this
// sets it to PASSIVE and re-executes the program (an explicit setting is left alone).
void core_prefer_passive_threads(char **argv);
int core_threads(void);
double core_now(void);                           // monotonic seconds

#endif
