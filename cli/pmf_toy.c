// cli/pmf_toy.c: the 2-D toy of the pMF paper (pmf-spec 11.8, Fig. 2). A Swiss roll is lifted into
// D dimensions by a fixed column-orthonormal D x 2 matrix P, and a 7-layer ReLU MLP (256 wide) is
// trained with the iMF/pMF MeanFlow v-loss, either predicting x (pMF: u = (z - x)/clip(t)) or u
// directly (iMF). One-step samples x = z_1 - u(z_1, r = 0, t = 1) are projected back with P^T.
//
// The loss is spec 5.1 Alg. 1 with the boundary condition of spec 3.2 (no v-head, no CFG):
//   v = sg(u(z, t, t)),  (u, du/dt) = jvp(u, (z, r, t), (v, 0, 1)),  V = u + (t - r) sg(du/dt),
//   L = sum_D (V - v_t)^2 per sample, loss = mean(L / sg(L + 0.01)).
// The toy's optimizer, schedule and time sampler are UNCONFIRMED in the paper (spec 11.8). Chosen
// here for 2000 steps on 2 cores: Adam lr 3e-3 constant, batch 256, 50% r = t as pMF, and (t, r)
// uniform (sorted) by default: pMF's logit-normal(0.8, 0.8) rarely draws r ~ 0, t ~ 1, the pair
// 1-NFE sampling uses, and at D = 2 its samples were visibly worse (SW1 0.34 vs 0.22 at lr 1e-3).
//
// This is a whole experiment in one file (it needs nothing of pmf/ but the idea); tests/test_toy.c
// runs the program. It is not the image model: nothing here is shared with pmf_train.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"

#define TOY_LAYERS 7        // linear layers; 6 ReLUs between them
#define TOY_HIDDEN 256
#define TOY_T_CLIP 0.05f    // as pMF's clip(t, 0.05, 1) (spec 1.3)
#define TOY_NORM_EPS 0.01f  // adaptive weighting L / sg(L + eps) (spec 5.3 step 8)
#define TOY_N_DIRS 128      // directions of the sliced Wasserstein distance

typedef struct ToyConfig {
    int dim;                  // D, the ambient dimension
    int pred_x;               // 1: pMF x-prediction; 0: iMF u-prediction
    int steps, batch, n_train, n_gen, log_every, threads;
    float lr, p_mean, p_std, data_proportion;
    int uniform_t;            // 1: t, r ~ U(0, 1) instead of logit-normal
    uint64_t seed;
    const char *out;
} ToyConfig;

typedef struct Mlp {
    ParamStore ps;
    Tensor *w[TOY_LAYERS], *b[TOY_LAYERS];
} Mlp;

// ---------------------------------------------------------------------------------------------
// Data: the 2-D Swiss roll of sklearn's make_swiss_roll (s = 1.5 pi (1 + 2 u), point s (cos s,
// sin s)), scaled by one shared factor so each coordinate has about unit std.

static void swiss_roll(Rng *rng, float *xy, int n) {
    for (int i = 0; i < n; i++) {
        double s = 1.5 * M_PI * (1.0 + 2.0 * rng_uniform(rng));
        xy[2 * i] = (float)(s * cos(s)), xy[2 * i + 1] = (float)(s * sin(s));
    }
}

// Centre and scale `ref` in place and apply the same map to `other` (n_other points).
static void normalise(float *ref, int n, float *other, int n_other) {
    double m[2] = {0, 0}, ss = 0;
    for (int i = 0; i < n; i++) m[0] += ref[2 * i], m[1] += ref[2 * i + 1];
    m[0] /= n, m[1] /= n;
    for (int i = 0; i < 2 * n; i++) ss += (ref[i] - m[i % 2]) * (ref[i] - m[i % 2]);
    float inv = (float)(1.0 / sqrt(ss / (2.0 * n)));
    for (int i = 0; i < 2 * n; i++) ref[i] = (ref[i] - (float)m[i % 2]) * inv;
    for (int i = 0; i < 2 * n_other; i++) other[i] = (other[i] - (float)m[i % 2]) * inv;
}

// P (D, 2) with orthonormal columns: Gram-Schmidt of a Gaussian matrix (in double).
static void projection(Rng *rng, int D, float *P) {
    double *a = core_malloc((size_t)2 * D * sizeof(double), "toy projection");
    for (int k = 0; k < 2 * D; k++) a[k] = rng_normal(rng);
    double n0 = 0, dot = 0, n1 = 0;
    for (int k = 0; k < D; k++) n0 += a[2 * k] * a[2 * k];
    for (int k = 0; k < D; k++) a[2 * k] /= sqrt(n0);
    for (int k = 0; k < D; k++) dot += a[2 * k] * a[2 * k + 1];
    for (int k = 0; k < D; k++) a[2 * k + 1] -= dot * a[2 * k];
    for (int k = 0; k < D; k++) n1 += a[2 * k + 1] * a[2 * k + 1];
    for (int k = 0; k < D; k++) P[2 * k] = (float)a[2 * k], P[2 * k + 1] = (float)(a[2 * k + 1] / sqrt(n1));
    free(a);
}

// ---------------------------------------------------------------------------------------------
// The MLP: [z (D), t, t - r] -> 256 -> ... -> 256 -> D, ReLU between layers.

static void mlp_init(Mlp *m, int D, Rng *rng) {
    params_init(&m->ps, 2 * TOY_LAYERS);
    for (int l = 0; l < TOY_LAYERS; l++) {
        char name[32];
        int in = l == 0 ? D + 2 : TOY_HIDDEN, out = l == TOY_LAYERS - 1 ? D : TOY_HIDDEN;
        int ws[2] = {out, in};
        snprintf(name, sizeof name, "layer%d.weight", l);
        m->w[l] = params_declare(&m->ps, name, 2, ws);
        snprintf(name, sizeof name, "layer%d.bias", l);
        m->b[l] = params_declare(&m->ps, name, 1, &out);
    }
    params_finalize(&m->ps);
    // He-uniform for the ReLU layers, zero biases; the last layer starts at 0 as pMF's final layer
    // (spec 6.3). With a random last layer, x-pred at D = 512 killed every ReLU within ~100 steps
    // (the quickest way to zero 510 off-plane outputs) and sampled one constant point.
    for (int l = 0; l < TOY_LAYERS - 1; l++) {
        float a = sqrtf(6.0f / m->w[l]->shape[1]);
        rng_fill_uniform(rng, m->w[l]->data, m->w[l]->numel, -a, a);
    }
}

static Tensor *mlp_forward(Tape *tp, Mlp *m, Tensor *in) {
    Tensor *h = in;
    for (int l = 0; l < TOY_LAYERS; l++) {
        h = op_linear(tp, h, m->w[l], m->b[l]);
        if (l < TOY_LAYERS - 1) h = op_relu(tp, h);
    }
    return h;
}

// u(z, r, t) for B rows of z (B, D): the net sees [z, t, t - r]. With `tangent` set, z carries the
// tangent v (dz) and (t, r) move along (1, 0), so the result carries du/dt along (v, 0, 1).
static Tensor *toy_velocity(Tape *tp, Mlp *m, const ToyConfig *c, const float *z, const float *dz,
                            const float *t, const float *r, int B) {
    int D = c->dim, is[2] = {B, D + 2}, zs[2] = {B, D}, ps[2] = {B, 1};
    Tensor *in = tensor_new(tp, 2, is, "[z, t, t - r]");
    Tensor *zt = tensor_from(tp, 2, zs, z, "z");
    float *din = dz ? tensor_attach_tangent(tp, in) : NULL;
    if (dz) memcpy(tensor_attach_tangent(tp, zt), dz, (size_t)B * D * sizeof(float));
    for (int i = 0; i < B; i++) {
        float *row = in->data + (size_t)i * (D + 2);
        memcpy(row, z + (size_t)i * D, (size_t)D * sizeof(float));
        row[D] = t[i], row[D + 1] = t[i] - r[i];
        if (din) {
            memcpy(din + (size_t)i * (D + 2), dz + (size_t)i * D, (size_t)D * sizeof(float));
            din[(size_t)i * (D + 2) + D] = 1.0f, din[(size_t)i * (D + 2) + D + 1] = 1.0f;
        }
    }
    Tensor *net = mlp_forward(tp, m, in);
    if (!c->pred_x) return net;
    // x-prediction: u = (z - x) / T, T = clip(t, 0.05, 1); T' = 1 strictly inside, else 0.
    Tensor *inv = tensor_new(tp, 2, ps, "1/clip(t)");
    float *dinv = dz ? tensor_attach_tangent(tp, inv) : NULL;
    for (int i = 0; i < B; i++) {
        float T = fminf(fmaxf(t[i], TOY_T_CLIP), 1.0f);
        inv->data[i] = 1.0f / T;
        if (dinv) dinv[i] = (t[i] > TOY_T_CLIP && t[i] < 1.0f) ? -1.0f / (T * T) : 0.0f;
    }
    return op_mul(tp, op_sub(tp, zt, net), inv);
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

// One training step; returns the raw (unweighted) mean of L over the batch.
static float toy_step(Tape *tp, Mlp *m, AdamW *opt, const ToyConfig *c, const float *train, const float *P,
                      Rng *rng, float *work) {
    int B = c->batch, D = c->dim;
    float *x = work, *e = x + (size_t)B * D, *z = e + (size_t)B * D, *target = z + (size_t)B * D;
    float *v = target + (size_t)B * D, *t = v + (size_t)B * D, *r = t + B;
    tape_reset(tp);
    params_zero_grad(&m->ps);
    // (t, r): logit-normal (or uniform) pairs, the first data_proportion of rows r = t, t >= r.
    int n_fm = (int)(B * c->data_proportion);
    for (int i = 0; i < B; i++) {
        for (int k = 0; k < 2; k++) {
            float s = c->uniform_t ? (float)rng_uniform(rng) : sigmoidf(c->p_std * (float)rng_normal(rng) + c->p_mean);
            if (k == 0) t[i] = s;
            else r[i] = s;
        }
        if (i < n_fm) r[i] = t[i];
        float hi = fmaxf(t[i], r[i]), lo = fminf(t[i], r[i]);
        t[i] = hi, r[i] = lo;
    }
    rng_fill_normal(rng, e, (int64_t)B * D, 0.0f, 1.0f);
    for (int i = 0; i < B; i++) {
        const float *p2 = train + 2 * (size_t)(rng_uniform(rng) * c->n_train);
        float T = fminf(fmaxf(t[i], TOY_T_CLIP), 1.0f);
        for (int k = 0; k < D; k++) {
            size_t j = (size_t)i * D + k;
            x[j] = P[2 * k] * p2[0] + P[2 * k + 1] * p2[1];
            z[j] = (1 - t[i]) * x[j] + t[i] * e[j];
            // x-pred: v_t = (z - x)/T as pMF's code (= e - x for t >= 0.05); u-pred: e - x as iMF.
            target[j] = c->pred_x ? (z[j] - x[j]) / T : e[j] - x[j];
        }
    }
    // The JVP's tangent: the boundary condition v = u(z, t, t), without gradients (spec 3.2).
    tape_set_recording(tp, 0);
    ArenaMark mark = arena_mark(tp->arena);
    memcpy(v, toy_velocity(tp, m, c, z, NULL, t, t, B)->data, (size_t)B * D * sizeof(float));
    arena_release(tp->arena, mark);
    tape_set_recording(tp, 1);
    Tensor *u = toy_velocity(tp, m, c, z, v, t, r, B);
    if (!u->tangent) core_fatal("pmf_toy: the u-path lost its tangent");
    int s2[2] = {B, D};
    Tensor *corr = tensor_new(tp, 2, s2, "(t - r) sg(du/dt)");
    for (int i = 0; i < B; i++)
        for (int k = 0; k < D; k++) {
            size_t j = (size_t)i * D + k;
            corr->data[j] = (t[i] - r[i]) * u->tangent[j];
        }
    Tensor *V = op_add(tp, op_drop_tangent(tp, u), corr);
    Tensor *d = op_sub(tp, V, tensor_wrap(tp, target, 2, s2, "v_t"));
    Tensor *L = op_sum(tp, op_mul(tp, d, d), 0x2, 0);   // (B)
    Tensor *w = tensor_new(tp, 1, &B, "1/sg(L + eps)");
    double raw = 0;
    for (int i = 0; i < B; i++) w->data[i] = 1.0f / (L->data[i] + TOY_NORM_EPS), raw += L->data[i];
    Tensor *loss = op_mean(tp, op_mul(tp, L, w), AXES_ALL, 0);
    tape_backward(tp, loss, NULL);
    adamw_step(opt, &m->ps);
    return (float)(raw / B);
}

// 1-NFE samples x = z_1 - u(z_1, 0, 1), z_1 ~ N(0, I_D), projected to 2-D; also the noise's
// projection (what an untrained generator would give) and the RMS distance off the plane of P.
static double toy_sample(Tape *tp, Mlp *m, const ToyConfig *c, const float *P, Rng *rng, float *gen2,
                         float *noise2) {
    int D = c->dim, B = c->batch;
    float *z = core_malloc((size_t)B * D * sizeof(float), "toy samples");
    float *xs = core_malloc((size_t)D * sizeof(float), "toy sample");
    float *t = core_malloc((size_t)2 * B * sizeof(float), "toy times"), *r = t + B;
    for (int i = 0; i < B; i++) t[i] = 1.0f, r[i] = 0.0f;
    double off = 0;
    tape_set_recording(tp, 0);
    for (int s = 0; s < c->n_gen; s += B) {
        int n = c->n_gen - s < B ? c->n_gen - s : B;
        tape_reset(tp);
        rng_fill_normal(rng, z, (int64_t)n * D, 0.0f, 1.0f);
        const float *u = toy_velocity(tp, m, c, z, NULL, t, r, n)->data;
        for (int i = 0; i < n; i++) {
            float *g = gen2 + 2 * (size_t)(s + i), *e2 = noise2 + 2 * (size_t)(s + i);
            g[0] = g[1] = e2[0] = e2[1] = 0;
            for (int k = 0; k < D; k++) {
                float zk = z[(size_t)i * D + k];
                xs[k] = zk - u[(size_t)i * D + k];
                for (int a = 0; a < 2; a++) g[a] += P[2 * k + a] * xs[k], e2[a] += P[2 * k + a] * zk;
            }
            for (int k = 0; k < D; k++) {
                float res = xs[k] - P[2 * k] * g[0] - P[2 * k + 1] * g[1];
                off += res * res;
            }
        }
    }
    tape_set_recording(tp, 1);
    free(z), free(t), free(xs);
    return sqrt(off / c->n_gen);
}

// ---------------------------------------------------------------------------------------------
// Quality numbers in 2-D.

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

// Sliced 1-Wasserstein distance of two equal-size 2-D point sets over TOY_N_DIRS even angles.
static double sliced_w1(const float *a, const float *b, int n) {
    float *pa = core_malloc((size_t)2 * n * sizeof(float), "sliced W1"), *pb = pa + n;
    double sum = 0;
    for (int k = 0; k < TOY_N_DIRS; k++) {
        float c = cosf((float)(M_PI * k / TOY_N_DIRS)), s = sinf((float)(M_PI * k / TOY_N_DIRS));
        for (int i = 0; i < n; i++) pa[i] = c * a[2 * i] + s * a[2 * i + 1], pb[i] = c * b[2 * i] + s * b[2 * i + 1];
        qsort(pa, n, sizeof(float), cmp_float);
        qsort(pb, n, sizeof(float), cmp_float);
        double w = 0;
        for (int i = 0; i < n; i++) w += fabsf(pa[i] - pb[i]);
        sum += w / n;
    }
    free(pa);
    return sum / TOY_N_DIRS;
}

// Mean distance from each of the n points to its nearest training point.
static double nn_distance(const float *pts, int n, const float *train, int n_train) {
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (int i = 0; i < n; i++) {
        float best = INFINITY;
        for (int j = 0; j < n_train; j++) {
            float dx = pts[2 * i] - train[2 * j], dy = pts[2 * i + 1] - train[2 * j + 1];
            best = fminf(best, dx * dx + dy * dy);
        }
        sum += sqrtf(best);
    }
    return sum / n;
}

// ---------------------------------------------------------------------------------------------
// Output: every file is written to NAME.tmp, fsynced and renamed.

typedef struct OutFile {
    FILE *f;
    char path[4096], tmp[4112];
} OutFile;

static int out_open(OutFile *o, const char *dir, const char *name) {
    snprintf(o->path, sizeof o->path, "%s/%s", dir, name);
    snprintf(o->tmp, sizeof o->tmp, "%s.tmp", o->path);
    o->f = fopen(o->tmp, "w");
    if (!o->f) core_set_error("cannot write %s (%s)", o->tmp, strerror(errno));
    return o->f ? 0 : -1;
}

static int out_close(OutFile *o) {
    int bad = ferror(o->f) | fflush(o->f) | fsync(fileno(o->f));
    bad |= fclose(o->f);
    if (bad || rename(o->tmp, o->path)) {
        core_set_error("cannot write %s (%s)", o->path, strerror(errno));
        return -1;
    }
    return 0;
}

static int write_points(const char *dir, const char *name, const float *p, int n) {
    OutFile o;
    if (out_open(&o, dir, name)) return -1;
    fprintf(o.f, "# x\ty\n");
    for (int i = 0; i < n; i++) fprintf(o.f, "%.4f\t%.4f\n", p[2 * i], p[2 * i + 1]);
    return out_close(&o);
}

// ---------------------------------------------------------------------------------------------

static int toy_run(const ToyConfig *c) {
    const char *arm = c->pred_x ? "x-pred" : "u-pred";
    int D = c->dim, B = c->batch, n_ref = c->n_gen;
    double t0 = core_now();
    if (mkdir(c->out, 0777) && errno != EEXIST) {
        core_set_error("cannot create %s (%s)", c->out, strerror(errno));
        return -1;
    }
    if (c->threads) core_set_threads(c->threads);
    // Separate streams: the 2-D data do not depend on D, so every arm and D see the same roll.
    Rng r_data, r_proj, r_init, r_train, r_sample;
    rng_init(&r_data, c->seed * 8 + 1), rng_init(&r_proj, c->seed * 8 + 2);
    rng_init(&r_init, c->seed * 8 + 3), rng_init(&r_train, c->seed * 8 + 4), rng_init(&r_sample, c->seed * 8 + 5);
    float *train = core_malloc((size_t)2 * c->n_train * sizeof(float), "toy training set");
    float *ref = core_malloc((size_t)4 * n_ref * sizeof(float), "toy reference sets"), *ref2 = ref + 2 * n_ref;
    swiss_roll(&r_data, train, c->n_train);
    swiss_roll(&r_data, ref, 2 * n_ref);
    normalise(train, c->n_train, ref, 2 * n_ref);
    float *P = core_malloc((size_t)2 * D * sizeof(float), "toy projection");
    projection(&r_proj, D, P);

    Mlp m;
    mlp_init(&m, D, &r_init);
    AdamW opt;
    adamw_init(&opt, &m.ps, c->lr, 0.9f, 0.999f, 1e-8f, 0.0f);
    Arena arena;
    arena_init(&arena, 64 << 20);
    Tape tp;
    tape_init(&tp, &arena);
    float *work = core_malloc(((size_t)5 * B * D + 2 * B) * sizeof(float), "toy batch");
    float *losses = core_malloc((size_t)c->steps * sizeof(float), "toy losses");
    fprintf(stderr, "pmf_toy: D=%d %s, %lld parameters, %d steps of batch %d, lr %g, %d threads\n", D, arm,
            (long long)m.ps.total, c->steps, B, c->lr, core_threads());
    for (int s = 0; s < c->steps; s++) {
        losses[s] = toy_step(&tp, &m, &opt, c, train, P, &r_train, work);
        if (!isfinite(losses[s])) {
            core_set_error("D=%d %s: the loss is %g at step %d", D, arm, losses[s], s + 1);
            return -1;
        }
        if ((s + 1) % c->log_every == 0 || s + 1 == c->steps) {
            double el = core_now() - t0;
            fprintf(stderr, "pmf_toy: D=%d %s step %d/%d loss %.4f (%.1f s, ETA %.0f s)\n", D, arm, s + 1, c->steps,
                    losses[s], el, el / (s + 1) * (c->steps - s - 1));
        }
    }
    double t_train = core_now() - t0;

    float *gen2 = core_malloc((size_t)4 * c->n_gen * sizeof(float), "toy samples"), *noise2 = gen2 + 2 * c->n_gen;
    double off = toy_sample(&tp, &m, c, P, &r_sample, gen2, noise2);
    int last = c->steps < 100 ? c->steps : 100;
    double final = 0, first = 0;
    for (int s = c->steps - last; s < c->steps; s++) final += losses[s] / last;
    for (int s = 0; s < last; s++) first += losses[s] / last;
    double sw = sliced_w1(gen2, ref, n_ref), sw_floor = sliced_w1(ref2, ref, n_ref);
    double sw_noise = sliced_w1(noise2, ref, n_ref);
    // Chamfer distance: precision (generated -> nearest training point) and coverage (held-out data
    // -> nearest generated point), averaged; the floor is a held-out data set in place of the samples.
    double nn = nn_distance(gen2, c->n_gen, train, c->n_train), cover = nn_distance(ref, n_ref, gen2, c->n_gen);
    double chamfer = 0.5 * (nn + cover);
    double floor = 0.5 * (nn_distance(ref2, n_ref, train, c->n_train) + nn_distance(ref, n_ref, ref2, n_ref));
    double noise = 0.5 * (nn_distance(noise2, n_ref, train, c->n_train) + nn_distance(ref, n_ref, noise2, n_ref));
    double wall = core_now() - t0;

    OutFile o;
    int rc = write_points(c->out, "points.tsv", gen2, c->n_gen) || write_points(c->out, "data.tsv", ref, n_ref);
    if (!rc && !(rc = out_open(&o, c->out, "loss.tsv"))) {
        fprintf(o.f, "# step\tloss (raw mean over the batch of sum_D (V - v)^2)\n");
        for (int s = 0; s < c->steps; s++) fprintf(o.f, "%d\t%.6g\n", s + 1, losses[s]);
        rc = out_close(&o);
    }
    char json[2048];
    snprintf(json, sizeof json,
             "{\"dim\": %d, \"arm\": \"%s\", \"steps\": %d, \"batch\": %d, \"lr\": %g, \"seed\": %llu, "
             "\"t_sampler\": \"%s\", \"first_loss\": %.6g, \"final_loss\": %.6g, \"sw\": %.5f, \"sw_floor\": %.5f, "
             "\"sw_noise\": %.5f, \"chamfer\": %.5f, \"chamfer_floor\": %.5f, \"chamfer_noise\": %.5f, \"nn\": %.5f, "
             "\"cover\": %.5f, \"off_plane\": %.5f, \"train_s\": %.2f, "
             "\"wall_s\": %.2f}",
             D, arm, c->steps, B, c->lr, (unsigned long long)c->seed, c->uniform_t ? "uniform" : "logit-normal",
             first, final, sw, sw_floor, sw_noise, chamfer, floor, noise, nn, cover, off, t_train, wall);
    if (!rc && !(rc = out_open(&o, c->out, "summary.json"))) {
        fprintf(o.f, "%s\n", json);
        rc = out_close(&o);
    }
    if (!rc) printf("%s\n", json);
    free(train), free(ref), free(P), free(work), free(losses), free(gen2);
    tape_free(&tp), arena_free(&arena), adamw_free(&opt), params_free(&m.ps);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------------------------------------

static void usage(FILE *f) {
    fprintf(f,
            "usage: pmf_toy --dim D --arm x|u --out DIR [options]\n"
            "  the pMF paper's toy (Fig. 2): a Swiss roll in D dims, 1-NFE MeanFlow, x- vs u-prediction\n"
            "  --dim D          ambient dimension, 2..4096 (the paper: 2, 8, 16, 512)\n"
            "  --arm x|u        x: pMF x-prediction, u = (z - net)/clip(t, 0.05); u: iMF u-prediction\n"
            "  --out DIR        points.tsv, data.tsv, loss.tsv, summary.json (created if missing)\n"
            "  --steps N        training steps (default 2000)\n"
            "  --batch B        (default 256)\n"
            "  --lr LR          Adam learning rate, constant (default 3e-3)\n"
            "  --t-sampler S    uniform (default: t, r ~ U(0, 1), sorted) or logit-normal (pMF Tab. 8)\n"
            "  --p-mean M --p-std S   logit-normal parameters (default 0.8 0.8)\n"
            "  --fm-ratio F     share of rows with r = t (default 0.5, as pMF)\n"
            "  --n-train N      training set size (default 8192)\n"
            "  --n-gen N        generated points (default 2000)\n"
            "  --seed S         (default 0)\n"
            "  --threads T      (default: leave OpenMP's setting)\n"
            "  --log-every N    progress line every N steps (default 250)\n");
}

static int parse_int(const char *flag, const char *v, int lo, int hi, int *out) {
    char *end;
    long x = strtol(v, &end, 10);
    if (*v == 0 || *end || x < lo || x > hi) {
        fprintf(stderr, "pmf_toy: %s '%s': expected an integer in [%d, %d]\n", flag, v, lo, hi);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int parse_float(const char *flag, const char *v, float lo, float hi, float *out) {
    char *end;
    *out = strtof(v, &end);
    if (*v == 0 || *end || !(*out >= lo && *out <= hi)) {
        fprintf(stderr, "pmf_toy: %s '%s': expected a number in [%g, %g]\n", flag, v, lo, hi);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    core_prefer_passive_threads(argv);   // see core/core.h: spinning waits stall on a shared machine
    ToyConfig c = {0, -1, 2000, 256, 8192, 2000, 250, 0, 3e-3f, 0.8f, 0.8f, 0.5f, 1, 0, NULL};
    int seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(f, "-h") || !strcmp(f, "--help")) return usage(stdout), 0;
        if (!v) {
            fprintf(stderr, "pmf_toy: %s needs a value (see --help)\n", f);
            return 2;
        }
        i++;
        if (!strcmp(f, "--dim")) bad = parse_int(f, v, 2, 4096, &c.dim);
        else if (!strcmp(f, "--steps")) bad = parse_int(f, v, 1, 10000000, &c.steps);
        else if (!strcmp(f, "--batch")) bad = parse_int(f, v, 1, 65536, &c.batch);
        else if (!strcmp(f, "--n-train")) bad = parse_int(f, v, 1, 10000000, &c.n_train);
        else if (!strcmp(f, "--n-gen")) bad = parse_int(f, v, 1, 1000000, &c.n_gen);
        else if (!strcmp(f, "--seed")) bad = parse_int(f, v, 0, 2147483647, &seed);
        else if (!strcmp(f, "--threads")) bad = parse_int(f, v, 0, 1024, &c.threads);
        else if (!strcmp(f, "--log-every")) bad = parse_int(f, v, 1, 10000000, &c.log_every);
        else if (!strcmp(f, "--lr")) bad = parse_float(f, v, 0.0f, 1.0f, &c.lr);
        else if (!strcmp(f, "--p-mean")) bad = parse_float(f, v, -10.0f, 10.0f, &c.p_mean);
        else if (!strcmp(f, "--p-std")) bad = parse_float(f, v, 0.0f, 10.0f, &c.p_std);
        else if (!strcmp(f, "--fm-ratio")) bad = parse_float(f, v, 0.0f, 1.0f, &c.data_proportion);
        else if (!strcmp(f, "--out")) c.out = v;
        else if (!strcmp(f, "--arm")) {
            c.pred_x = !strcmp(v, "x") ? 1 : !strcmp(v, "u") ? 0 : -1;
            if (c.pred_x < 0) bad = 1, fprintf(stderr, "pmf_toy: --arm '%s': expected x or u\n", v);
        } else if (!strcmp(f, "--t-sampler")) {
            c.uniform_t = !strcmp(v, "uniform") ? 1 : !strcmp(v, "logit-normal") ? 0 : -1;
            if (c.uniform_t < 0) bad = 1, fprintf(stderr, "pmf_toy: --t-sampler '%s': expected logit-normal or uniform\n", v);
        } else {
            fprintf(stderr, "pmf_toy: unknown option '%s' (see --help)\n", f);
            return 2;
        }
        if (bad) return 2;
    }
    if (!c.dim || c.pred_x < 0 || !c.out) {
        fprintf(stderr, "pmf_toy: --dim, --arm and --out are required\n");
        usage(stderr);
        return 2;
    }
    c.seed = (uint64_t)seed;
    if (toy_run(&c)) {
        fprintf(stderr, "pmf_toy: %s\n", core_last_error());
        return 1;
    }
    return 0;
}
