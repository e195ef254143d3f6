// pmf/model.c: the pMF generator (spec 6): bottleneck patch embedding, prefix-token conditioning,
// pre-norm blocks with q/k-normed RoPE attention and SwiGLU behind zero-initialised gates, a shared
// trunk and two heads (u, and v for training), zero-initialised final layers, unpatchify.
// The forward propagates tangents wherever its inputs carry them (z' and h' in the pMF JVP).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pmf/pmf.h"

// ---------------------------------------------------------------------------------------------
// Declaration and initialisation

static Tensor *decl(ParamStore *ps, const char *name, int ndim, int a, int b, int c, int d) {
    int shape[4] = {a, b, c, d};
    return params_declare(ps, name, ndim, shape);
}

static void block_declare(ParamStore *ps, PmfBlock *b, const char *prefix, const PmfConfig *c) {
    char n[96];
    int D = c->dim, hs = c->dim / c->heads, H = c->mlp_hidden;
#define NAME(s) (snprintf(n, sizeof n, "%s.%s", prefix, s), n)
    b->norm1 = decl(ps, NAME("norm1.weight"), 1, D, 0, 0, 0);
    b->wq = decl(ps, NAME("attn.q.weight"), 2, D, D, 0, 0);
    b->wk = decl(ps, NAME("attn.k.weight"), 2, D, D, 0, 0);
    b->wv = decl(ps, NAME("attn.v.weight"), 2, D, D, 0, 0);
    b->wo = decl(ps, NAME("attn.o.weight"), 2, D, D, 0, 0);
    b->q_norm = decl(ps, NAME("attn.q_norm.weight"), 1, hs, 0, 0, 0);
    b->k_norm = decl(ps, NAME("attn.k_norm.weight"), 1, hs, 0, 0, 0);
    b->attn_scale = decl(ps, NAME("attn_scale"), 1, D, 0, 0, 0);
    b->norm2 = decl(ps, NAME("norm2.weight"), 1, D, 0, 0, 0);
    b->w1 = decl(ps, NAME("mlp.w1.weight"), 2, H, D, 0, 0);
    b->w3 = decl(ps, NAME("mlp.w3.weight"), 2, H, D, 0, 0);
    b->w2 = decl(ps, NAME("mlp.w2.weight"), 2, D, H, 0, 0);
    b->mlp_scale = decl(ps, NAME("mlp_scale"), 1, D, 0, 0, 0);
#undef NAME
}

static void embedder_declare(ParamStore *ps, PmfEmbedder *e, const char *prefix, int D) {
    char n[64];
    snprintf(n, sizeof n, "%s.fc1.weight", prefix), e->w1 = decl(ps, n, 2, D, PMF_TIME_FREQ, 0, 0);
    snprintf(n, sizeof n, "%s.fc1.bias", prefix), e->b1 = decl(ps, n, 1, D, 0, 0, 0);
    snprintf(n, sizeof n, "%s.fc2.weight", prefix), e->w2 = decl(ps, n, 2, D, D, 0, 0);
    snprintf(n, sizeof n, "%s.fc2.bias", prefix), e->b2 = decl(ps, n, 1, D, 0, 0, 0);
}

static void final_declare(ParamStore *ps, PmfFinal *f, const char *prefix, const PmfConfig *c) {
    char n[64];
    int out = c->patch * c->patch * c->channels;
    snprintf(n, sizeof n, "%s.norm.weight", prefix), f->norm = decl(ps, n, 1, c->dim, 0, 0, 0);
    snprintf(n, sizeof n, "%s.linear.weight", prefix), f->w = decl(ps, n, 2, out, c->dim, 0, 0);
    snprintf(n, sizeof n, "%s.linear.bias", prefix), f->b = decl(ps, n, 1, out, 0, 0, 0);
}

static void fill_normal(Rng *r, Tensor *t, float std) { rng_fill_normal(r, t->data, t->numel, 0.0f, std); }

static void fill_const(Tensor *t, float v) {
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = v;
}

// Xavier-uniform for a conv kernel (Cout, Cin, KH, KW): fan_in = Cin*KH*KW, fan_out = Cout.
static void fill_xavier(Rng *r, Tensor *w) {
    int64_t fan_out = w->shape[0], fan_in = w->numel / fan_out;
    float a = sqrtf(6.0f / (float)(fan_in + fan_out));
    rng_fill_uniform(r, w->data, w->numel, -a, a);
}

static void block_init(Rng *r, PmfBlock *b) {
    // Transformer linears N(0, (0.32 / sqrt(fan_in))^2) (spec 6.3); norms 1; gates 0.
    Tensor *lin[7] = {b->wq, b->wk, b->wv, b->wo, b->w1, b->w3, b->w2};
    for (int i = 0; i < 7; i++) fill_normal(r, lin[i], 0.32f / sqrtf((float)lin[i]->shape[1]));
    fill_const(b->norm1, 1), fill_const(b->norm2, 1), fill_const(b->q_norm, 1), fill_const(b->k_norm, 1);
}

static void embedder_init(Rng *r, PmfEmbedder *e) {
    fill_normal(r, e->w1, 1.0f / sqrtf((float)e->w1->shape[1]));
    fill_normal(r, e->w2, 1.0f / sqrtf((float)e->w2->shape[1]));
}

void pmf_model_init(PmfModel *m, const PmfConfig *cfg, uint64_t seed) {
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    const PmfConfig *c = &m->cfg;
    int D = c->dim, n = (c->img_size / c->patch) * (c->img_size / c->patch);
    int heads = c->with_v_head ? 2 : 1;
    ParamStore *ps = &m->ps;
    params_init(ps, 64 + 13 * (c->depth_shared + heads * c->depth_head));
    if (c->bottleneck) {
        m->patch_w1 = decl(ps, "patch.proj1.weight", 4, c->bottleneck, c->channels, c->patch, c->patch);
        m->patch_b1 = decl(ps, "patch.proj1.bias", 1, c->bottleneck, 0, 0, 0);
        m->patch_w2 = decl(ps, "patch.proj2.weight", 4, D, c->bottleneck, 1, 1);
        m->patch_b2 = decl(ps, "patch.proj2.bias", 1, D, 0, 0, 0);
    } else {
        m->patch_w1 = decl(ps, "patch.proj.weight", 4, D, c->channels, c->patch, c->patch);
        m->patch_b1 = decl(ps, "patch.proj.bias", 1, D, 0, 0, 0);
    }
    m->cls_tokens = decl(ps, "cls_tokens", 2, PMF_CLASS_TOKENS, D, 0, 0);
    m->omega_tokens = decl(ps, "omega_tokens", 2, PMF_OMEGA_TOKENS, D, 0, 0);
    m->tmin_tokens = decl(ps, "tmin_tokens", 2, PMF_TMIN_TOKENS, D, 0, 0);
    m->tmax_tokens = decl(ps, "tmax_tokens", 2, PMF_TMAX_TOKENS, D, 0, 0);
    m->time_tokens = decl(ps, "time_tokens", 2, PMF_TIME_TOKENS, D, 0, 0);
    m->label_embed = decl(ps, "label_embed", 2, c->num_classes + 1, D, 0, 0);
    m->pos_embed = decl(ps, "pos_embed", 2, PMF_PREFIX + n, D, 0, 0);
    embedder_declare(ps, &m->te_h, "te_h", D);
    embedder_declare(ps, &m->te_omega, "te_omega", D);
    embedder_declare(ps, &m->te_tmin, "te_tmin", D);
    embedder_declare(ps, &m->te_tmax, "te_tmax", D);
    m->trunk = core_calloc((size_t)c->depth_shared + 1, sizeof(PmfBlock), "trunk blocks");
    m->u_head = core_calloc((size_t)c->depth_head, sizeof(PmfBlock), "u-head blocks");
    char prefix[32];
    for (int i = 0; i < c->depth_shared; i++) snprintf(prefix, sizeof prefix, "trunk.%d", i), block_declare(ps, &m->trunk[i], prefix, c);
    for (int i = 0; i < c->depth_head; i++) snprintf(prefix, sizeof prefix, "u_head.%d", i), block_declare(ps, &m->u_head[i], prefix, c);
    final_declare(ps, &m->u_final, "u_final", c);
    if (c->with_v_head) {
        m->v_head = core_calloc((size_t)c->depth_head, sizeof(PmfBlock), "v-head blocks");
        for (int i = 0; i < c->depth_head; i++) snprintf(prefix, sizeof prefix, "v_head.%d", i), block_declare(ps, &m->v_head[i], prefix, c);
        final_declare(ps, &m->v_final, "v_final", c);
    }
    params_finalize(ps);   // everything zero: biases, gates and final layers stay so

    Rng r;
    rng_init(&r, seed);
    fill_xavier(&r, m->patch_w1);
    if (m->patch_w2) fill_xavier(&r, m->patch_w2);
    float tok = 1.0f / sqrtf((float)D);   // "N(0, 1/D)" is a variance (spec 15.9)
    Tensor *toks[6] = {m->cls_tokens, m->omega_tokens, m->tmin_tokens, m->tmax_tokens, m->time_tokens, m->label_embed};
    for (int i = 0; i < 6; i++) fill_normal(&r, toks[i], tok);
    fill_normal(&r, m->pos_embed, 0.02f);
    embedder_init(&r, &m->te_h), embedder_init(&r, &m->te_omega);
    embedder_init(&r, &m->te_tmin), embedder_init(&r, &m->te_tmax);
    for (int i = 0; i < c->depth_shared; i++) block_init(&r, &m->trunk[i]);
    for (int i = 0; i < c->depth_head; i++) block_init(&r, &m->u_head[i]);
    fill_const(m->u_final.norm, 1);
    if (c->with_v_head) {
        for (int i = 0; i < c->depth_head; i++) block_init(&r, &m->v_head[i]);
        fill_const(m->v_final.norm, 1);
    }
}

void pmf_model_free(PmfModel *m) {
    params_free(&m->ps);
    free(m->trunk), free(m->u_head), free(m->v_head);
    memset(m, 0, sizeof *m);
}

// ---------------------------------------------------------------------------------------------
// Forward

static Tensor *reshape3(Tape *tp, Tensor *x, int a, int b, int c) {
    int s[3] = {a, b, c};
    return op_reshape(tp, x, 3, s);
}

// s (B) -> TE(s) (B, 1, D): sinusoid, Linear, SiLU, Linear.
static Tensor *embed_scalar(Tape *tp, const PmfEmbedder *e, Tensor *s, int D) {
    Tensor *f = op_timestep_embedding(tp, s, PMF_TIME_FREQ, 10000.0f);
    Tensor *h = op_linear(tp, op_silu(tp, op_linear(tp, f, e->w1, e->b1)), e->w2, e->b2);
    return reshape3(tp, h, s->shape[0], 1, D);
}

// A learned token block (n, D) plus the embedding (B, 1, D) broadcast over its n tokens.
static Tensor *token_group(Tape *tp, Tensor *tokens, Tensor *emb) {
    return op_add(tp, reshape3(tp, tokens, 1, tokens->shape[0], tokens->shape[1]), emb);
}

// q or k (B, T, D) -> RMSNorm over each head's HS features with the shared (HS) weight.
static Tensor *head_rmsnorm(Tape *tp, Tensor *x, Tensor *w, int heads) {
    int s4[4] = {x->shape[0], x->shape[1], heads, x->shape[2] / heads};
    Tensor *y = op_rmsnorm(tp, op_reshape(tp, x, 4, s4), w, 1e-6f);
    return op_reshape(tp, y, 3, x->shape);
}

// Parameters declared one after another (as block_declare does) lie one after another in the
// store's data and gradient blocks, so (n_i, K) weights read as one (sum n_i, K) weight: one GEMM
// for q, k and v (or w1 and w3) packs the activations once instead of once per projection. NULL
// when the store laid them out otherwise (then the projections run one by one).
static Tensor *stacked_weight(Tape *tp, Tensor *const *ws, int n) {
    int rows = 0, K = ws[0]->shape[1];
    for (int i = 0; i < n; i++) {
        const Tensor *w = ws[i];
        if (w->ndim != 2 || w->shape[1] != K || w->base || w->tangent || w->data != ws[0]->data + (int64_t)rows * K ||
            w->requires_grad != ws[0]->requires_grad || (w->grad == NULL) != (ws[0]->grad == NULL) ||
            (w->grad && w->grad != ws[0]->grad + (int64_t)rows * K))
            return NULL;
        rows += w->shape[0];
    }
    int shape[2] = {rows, K};
    Tensor *s = tensor_wrap(tp, ws[0]->data, 2, shape, ws[0]->name);
    s->grad = ws[0]->grad;   // tensor_grad hands out the parameters' own gradient block
    s->requires_grad = ws[0]->requires_grad;
    return s;
}

// Slice i of a (3, B, T, C) tensor as a dense (B, T, C) view.
static Tensor *part3(Tape *tp, Tensor *x, int i) {
    int s[3] = {x->shape[1], x->shape[2], x->shape[3]};
    return op_reshape(tp, op_slice(tp, x, 0, i, i + 1), 3, s);
}

static Tensor *block_forward(Tape *tp, const PmfBlock *b, Tensor *x, const PmfConfig *c) {
    int g = c->img_size / c->patch;
    Tensor *n = op_rmsnorm(tp, x, b->norm1, 1e-6f);
    Tensor *qkv_w[3] = {b->wq, b->wk, b->wv}, *w13[2] = {b->w1, b->w3};
    Tensor *wqkv = stacked_weight(tp, qkv_w, 3), *w13s = stacked_weight(tp, w13, 2);
    if (wqkv && w13s) {   // the same numbers as the chain below, in fewer passes (pmf_train's path)
        Tensor *heads = op_qkv_heads(tp, op_linear(tp, n, wqkv, NULL), b->q_norm, b->k_norm, c->heads, 1e-6f,
                                     PMF_PREFIX, g, g, 10000.0f);
        Tensor *a = op_linear(tp, op_attention(tp, part3(tp, heads, 0), part3(tp, heads, 1), part3(tp, heads, 2), c->heads),
                              b->wo, NULL);
        x = op_gated_residual(tp, x, a, b->attn_scale);
        Tensor *h = op_swiglu_packed(tp, op_linear(tp, op_rmsnorm(tp, x, b->norm2, 1e-6f), w13s, NULL));
        return op_gated_residual(tp, x, op_linear(tp, h, b->w2, NULL), b->mlp_scale);
    }
    Tensor *q = head_rmsnorm(tp, op_linear(tp, n, b->wq, NULL), b->q_norm, c->heads);
    Tensor *k = head_rmsnorm(tp, op_linear(tp, n, b->wk, NULL), b->k_norm, c->heads);
    Tensor *v = op_linear(tp, n, b->wv, NULL);
    q = op_rope2d(tp, q, c->heads, PMF_PREFIX, g, g, 10000.0f);
    k = op_rope2d(tp, k, c->heads, PMF_PREFIX, g, g, 10000.0f);
    Tensor *a = op_linear(tp, op_attention(tp, q, k, v, c->heads), b->wo, NULL);
    x = op_add(tp, x, op_mul(tp, a, b->attn_scale));
    Tensor *m = op_rmsnorm(tp, x, b->norm2, 1e-6f);
    Tensor *h = op_swiglu(tp, op_linear(tp, m, b->w1, NULL), op_linear(tp, m, b->w3, NULL));
    return op_add(tp, x, op_mul(tp, op_linear(tp, h, b->w2, NULL), b->mlp_scale));
}

// block_forward without a tape and without tangents (sampling, the guidance pass): the block's
// intermediates die with it, so their arena memory is given back and only its output is kept.
// Inference then holds one block's activations instead of the whole network's (B/16 at 256 px,
// batch 8: peak RSS 3.4 -> about 1 GB; H models need it to sample in batches at all).
static Tensor *block_forward_inference(Tape *tp, const PmfBlock *b, Tensor *x, const PmfConfig *c) {
    if (tp->recording || x->tangent) return block_forward(tp, b, x, c);
    Tensor *out = tensor_new(tp, 3, x->shape, "block output");
    ArenaMark mark = arena_mark(tp->arena);
    Tensor *y = block_forward(tp, b, x, c);
    memcpy(out->data, y->data, (size_t)y->numel * sizeof(float));
    arena_release(tp->arena, mark);
    return out;
}

// tokens (B, N, p*p*C) in patch order (p, q, c) -> image (B, C, H, W)
static Tensor *unpatchify(Tape *tp, Tensor *x, const PmfConfig *c) {
    int B = x->shape[0], g = c->img_size / c->patch, p = c->patch, C = c->channels, H = c->img_size;
    int s1[4] = {B * g, g, p, p * C}, perm1[4] = {0, 2, 1, 3};
    // (B*h, w, p, q*C) -> (B*h, p, w, q*C): memory order becomes (b, hi, pi, wi, qi, c)
    Tensor *y = op_contiguous(tp, op_permute(tp, op_reshape(tp, x, 4, s1), perm1));
    if (C > 1) {
        int perm2[3] = {0, 2, 1};
        y = op_contiguous(tp, op_permute(tp, reshape3(tp, y, B, H * H, C), perm2));
    }
    int s2[4] = {B, C, H, H};
    return op_reshape(tp, y, 4, s2);
}

static Tensor *head_forward(Tape *tp, const PmfBlock *blocks, const PmfFinal *f, Tensor *x, const PmfConfig *c) {
    for (int i = 0; i < c->depth_head; i++) x = block_forward_inference(tp, &blocks[i], x, c);
    Tensor *patches = op_contiguous(tp, op_slice(tp, x, 1, PMF_PREFIX, x->shape[1]));
    Tensor *y = op_linear(tp, op_rmsnorm(tp, patches, f->norm, 1e-6f), f->w, f->b);
    return unpatchify(tp, y, c);
}

PmfHeads pmf_forward(Tape *tp, PmfModel *m, Tensor *z, const PmfCond *cond, int want_u, int want_v) {
    const PmfConfig *c = &m->cfg;
    int B = z->shape[0], D = c->dim, g = c->img_size / c->patch;
    if (z->ndim != 4 || z->shape[1] != c->channels || z->shape[2] != c->img_size || z->shape[3] != c->img_size)
        core_fatal("pmf_forward: z must be (B, %d, %d, %d)", c->channels, c->img_size, c->img_size);
    for (int i = 0; i < B; i++)
        if (cond->labels[i] < 0 || cond->labels[i] > c->num_classes)
            core_fatal("pmf_forward: label %d of row %d outside [0, %d]", cond->labels[i], i, c->num_classes);

    // Patches: conv p x p stride p (then 1 x 1), NCHW -> tokens (B, N, D) in row-major grid order.
    Tensor *e = op_conv2d(tp, z, m->patch_w1, m->patch_b1, c->patch, c->patch, 0, 0, 1);
    if (m->patch_w2) e = op_conv2d(tp, e, m->patch_w2, m->patch_b2, 1, 1, 0, 0, 1);
    int perm[4] = {0, 2, 3, 1};
    Tensor *patches = reshape3(tp, op_contiguous(tp, op_permute(tp, e, perm)), B, g * g, D);

    // Conditioning tokens. omega enters as 1 - 1/omega (spec 6.1); it carries no tangent.
    Tensor *w_in = tensor_new(tp, 1, &B, "1 - 1/omega");
    for (int i = 0; i < B; i++) w_in->data[i] = 1.0f - 1.0f / cond->omega->data[i];
    Tensor *labels = reshape3(tp, op_embedding(tp, m->label_embed, cond->labels, B), B, 1, D);
    Tensor *groups[6] = {
        token_group(tp, m->cls_tokens, labels),
        token_group(tp, m->omega_tokens, embed_scalar(tp, &m->te_omega, w_in, D)),
        token_group(tp, m->tmin_tokens, embed_scalar(tp, &m->te_tmin, cond->t_min, D)),
        token_group(tp, m->tmax_tokens, embed_scalar(tp, &m->te_tmax, cond->t_max, D)),
        token_group(tp, m->time_tokens, embed_scalar(tp, &m->te_h, cond->h, D)),
        patches,
    };
    Tensor *x = op_concat(tp, groups, 6, 1);
    int T = PMF_PREFIX + g * g;
    x = op_add(tp, x, reshape3(tp, m->pos_embed, 1, T, D));
    for (int i = 0; i < c->depth_shared; i++) x = block_forward_inference(tp, &m->trunk[i], x, c);

    PmfHeads out = {NULL, NULL};
    if (want_u) out.u_out = head_forward(tp, m->u_head, &m->u_final, x, c);
    if (want_v) {
        if (!m->v_head) core_fatal("pmf_forward: the v-head was not built (with_v_head = 0)");
        out.v_out = head_forward(tp, m->v_head, &m->v_final, op_drop_tangent(tp, x), c);
    }
    return out;
}
