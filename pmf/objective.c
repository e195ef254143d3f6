// pmf/objective.c: the pMF training objective exactly as the released code computes it (spec 5.3):
// (t, r) and condition sampling, the guided target from the v-head, the JVP of the u-path along
// (z' = v_c, t' = 1, r' = 0), V = u + (t - r) sg(du/dt), adaptive weighting, and the v-head loss.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "pmf/pmf.h"

#define PMF_T_CLIP 0.05f

void pmf_objective_default(PmfObjective *o) {
    memset(o, 0, sizeof *o);
    o->sampler = PMF_TR_TRIANGLE;
    o->p_mean = 0.8f, o->p_std = 0.8f;
    o->data_proportion = 0.5f;
    o->cfg = 1, o->cfg_max = 7.0f, o->cfg_beta = 1.0f;
    o->class_dropout = 0.1f;
    o->norm_eps = 0.01f, o->norm_p = 1.0f;
}

static float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

// Power law on [1, 1 + s_max] with density ~ s^-beta, by inverse CDF (spec A4.4).
static float sample_omega(double u, float s_max, float beta) {
    if (fabsf(beta - 1.0f) < 1e-6f) return (float)exp(u * log1p(s_max));
    double b = 1.0 - beta;
    return (float)exp(log1p(u * expm1(b * log1p(s_max))) / b);
}

void pmf_draw_noise(Tape *tp, Rng *rng, const PmfObjective *o, const PmfConfig *mc, int B, PmfStepNoise *n) {
    int64_t numel = (int64_t)mc->channels * mc->img_size * mc->img_size;
    n->B = B;
    n->e = tape_alloc(tp, (size_t)B * numel * sizeof(float));
    float **f[5] = {&n->t, &n->r, &n->t_min, &n->t_max, &n->omega};
    for (int i = 0; i < 5; i++) *f[i] = tape_alloc(tp, (size_t)B * sizeof(float));
    n->fm = tape_alloc(tp, (size_t)B);
    n->drop = tape_alloc(tp, (size_t)B);
    n->step = 0;
    n->row = tape_alloc(tp, (size_t)B * sizeof(int64_t));
    for (int i = 0; i < B; i++) n->row[i] = i;
    rng_fill_normal(rng, n->e, (int64_t)B * numel, 0.0f, mc->noise_scale);
    for (int i = 0; i < B; i++) n->t[i] = sigmoidf(o->p_std * (float)rng_normal(rng) + o->p_mean);
    for (int i = 0; i < B; i++) n->r[i] = sigmoidf(o->p_std * (float)rng_normal(rng) + o->p_mean);
    if (o->tr_uniform)
        for (int i = 0; i < B; i++) {
            int replace = rng_uniform(rng) < 0.1;
            float tu = (float)rng_uniform(rng), ru = (float)rng_uniform(rng);
            if (replace) n->t[i] = tu, n->r[i] = ru;
        }
    int n_fm = (int)(B * o->data_proportion);
    for (int i = 0; i < B; i++) {
        switch (o->sampler) {
        case PMF_TR_TRIANGLE: n->fm[i] = i < n_fm; break;
        case PMF_TR_FM_ONLY: n->fm[i] = 1; break;
        case PMF_TR_R0_ONLY: n->fm[i] = 0, n->r[i] = 0.0f; break;
        case PMF_TR_BOTH_LINES: n->fm[i] = i < B / 2; n->r[i] = 0.0f; break;
        }
        if (n->fm[i]) n->r[i] = n->t[i];
        float hi = fmaxf(n->t[i], n->r[i]), lo = fminf(n->t[i], n->r[i]);
        n->t[i] = hi, n->r[i] = lo;
    }
    for (int i = 0; i < B; i++) {
        float a = 0.5f * (float)rng_uniform(rng), b = 0.5f + 0.5f * (float)rng_uniform(rng);
        n->t_min[i] = n->fm[i] ? 0.0f : a;
        n->t_max[i] = n->fm[i] ? 1.0f : b;
    }
    for (int i = 0; i < B; i++) {
        float w = sample_omega(rng_uniform(rng), o->cfg_max, o->cfg_beta);
        n->omega[i] = o->cfg ? w : 1.0f;
    }
    int k = 0;
    for (int i = 0; i < B; i++) k += rng_uniform(rng) < o->class_dropout;
    for (int i = 0; i < B; i++) n->drop[i] = i < k;   // the first k rows, as the code does
}

// ---------------------------------------------------------------------------------------------

static Tensor *per_sample(Tape *tp, int B, const char *name) {
    int s[4] = {B, 1, 1, 1};
    return tensor_new(tp, 4, s, name);
}

static Tensor *vec(Tape *tp, int B, const float *v, const char *name) {
    Tensor *t = tensor_new(tp, 1, &B, name);
    if (v) memcpy(t->data, v, (size_t)B * sizeof(float));
    return t;
}

// The preconditioner coefficients x = c_skip(t) z + c_out(t) net and their t-derivatives (t' = 1).
// The paper gives no formulas for its EDM and sCM rows (spec 5.6) and the released code has no
// preconditioner; pmf/README.md derives ours from EDM and TrigFlow with sigma_d = 0.5 and states
// the sources. With q = (1 - t)^2 sigma_d^2 + t^2 (the variance of z_t for data of std sigma_d):
//   EDM      c_skip = sigma_d^2 (1 - t) / q,   c_out =  sigma_d t / sqrt(q)
//   sCM      c_skip = sigma_d^2 (1 - t) / q,   c_out = -sigma_d t / sqrt(q)   (TrigFlow: x = cos(a) z/den
//            - sin(a) sigma_d F, tan(a) = t / ((1 - t) sigma_d); the same skip as EDM, F's sign flipped)
#define PMF_SIGMA_DATA 0.5f
void pmf_precond_coeffs(PmfPrecond p, float t, float *cs, float *co, float *dcs, float *dco) {
    switch (p) {
    case PMF_PRECOND_LINEAR: *cs = 1.0f - t, *co = t, *dcs = -1.0f, *dco = 1.0f; return;
    case PMF_PRECOND_EDM:
    case PMF_PRECOND_SCM: {
        const float sd = PMF_SIGMA_DATA, sd2 = sd * sd, sign = p == PMF_PRECOND_SCM ? -1.0f : 1.0f;
        float q = (1 - t) * (1 - t) * sd2 + t * t, rq = sqrtf(q);
        float dq = -2 * (1 - t) * sd2 + 2 * t;
        *cs = (1 - t) * sd2 / q;
        *co = sign * sd * t / rq;
        *dcs = (-sd2 * q - (1 - t) * sd2 * dq) / (q * q);
        *dco = sign * sd * (rq - t * dq / (2 * rq)) / q;
        return;
    }
    default: *cs = 0, *co = 1, *dcs = 0, *dco = 0; return;
    }
}

// Head output -> x-prediction, with the preconditioner; `zt` may carry a tangent.
static Tensor *to_image(Tape *tp, const PmfConfig *c, Tensor *net, Tensor *zt, const float *t, int B,
                        int with_tangent) {
    if (c->precond == PMF_PRECOND_NONE) return net;
    Tensor *cs = per_sample(tp, B, "c_skip"), *co = per_sample(tp, B, "c_out");
    float *dcs = with_tangent ? tensor_attach_tangent(tp, cs) : NULL;
    float *dco = with_tangent ? tensor_attach_tangent(tp, co) : NULL;
    for (int i = 0; i < B; i++) {
        float a, b, da, db;
        pmf_precond_coeffs(c->precond, t[i], &a, &b, &da, &db);
        cs->data[i] = a, co->data[i] = b;
        if (dcs) dcs[i] = da, dco[i] = db;   // t' = 1
    }
    return op_add(tp, op_mul(tp, cs, zt), op_mul(tp, co, net));
}

// Head output -> velocity: x-prediction u = (z - X) / clip(t, 0.05, 1); u-prediction: itself.
Tensor *pmf_velocity(Tape *tp, const PmfConfig *c, Tensor *net, Tensor *zt, const float *t, int with_tangent) {
    if (c->pred == PMF_PRED_U) return net;
    int B = net->shape[0];
    Tensor *X = to_image(tp, c, net, zt, t, B, with_tangent);
    Tensor *inv = per_sample(tp, B, "1/clip(t)");
    float *dinv = with_tangent ? tensor_attach_tangent(tp, inv) : NULL;
    for (int i = 0; i < B; i++) {
        float T = fminf(fmaxf(t[i], PMF_T_CLIP), 1.0f);
        inv->data[i] = 1.0f / T;
        // T' = 1 strictly inside (0.05, 1), 0 on and outside the bounds (spec 15.4); (1/T)' = -T'/T^2.
        if (dinv) dinv[i] = (t[i] > PMF_T_CLIP && t[i] < 1.0f) ? -1.0f / (T * T) : 0.0f;
    }
    return op_mul(tp, op_sub(tp, zt, X), inv);
}

// sum over (C, H, W) of (a - b)^2 -> (B); b is a constant.
static Tensor *sq_dist(Tape *tp, Tensor *a, Tensor *b) {
    Tensor *d = op_sub(tp, a, b);
    return op_sum(tp, op_mul(tp, d, d), 0xE, 0);
}

float pmf_adaptive_weight(float L, float eps, float p) {
    return p == 1.0f ? 1.0f / (L + eps) : (float)pow((double)L + eps, -(double)p);
}

// L / sg((L + eps)^p), per sample.
static Tensor *adaptive(Tape *tp, Tensor *L, float eps, float p) {
    int B = L->shape[0];
    Tensor *w = vec(tp, B, NULL, "adaptive weight");
    for (int i = 0; i < B; i++) w->data[i] = pmf_adaptive_weight(L->data[i], eps, p);
    return op_mul(tp, L, w);
}

// The third guidance call's scale for row i: omega inside [t_min, t_max], else 1.
static float guidance_w(const PmfStepNoise *n, int i) {
    int inside = n->t_min[i] <= n->t[i] && n->t[i] <= n->t_max[i];
    return inside ? n->omega[i] : 1.0f;
}

// What the guidance pass does for row i's call `part` (0: (omega, y), 1: (1, null), 2: (w, y)):
// GUIDE_EVAL evaluates it, GUIDE_AS_FIRST takes part 0's output, GUIDE_UNREAD skips it (its rows
// are zeros). Step 4's target is v_g = v_t + k (v_c - v_u), with v_c part 0's output and
// k = 1 - 1/omega on the r = t rows, v_c part 2's and k = 1 - 1/w on the others; a class-dropped
// row's v_g is v_t. Part 1 is read only where k != 0 and the row is not dropped: outside its
// interval w = 1 and k = 0, and k multiplies finite values, so skipping changes no bit. Part 2 is
// also the JVP's z-tangent v_c2, and where w = omega its inputs are part 0's, so (rows being
// independent) its output is too.
enum { GUIDE_UNREAD, GUIDE_EVAL, GUIDE_AS_FIRST };
static int guidance_part(const PmfObjective *o, const PmfStepNoise *n, int i, int part) {
    if (!o->cfg) return GUIDE_EVAL;   // one call: the target and the tangent
    float w = guidance_w(n, i);
    int repeat = w == n->omega[i];
    float k = n->fm[i] ? 1.0f - 1.0f / n->omega[i] : 1.0f - 1.0f / w;   // as in step 4
    int guided = !n->drop[i] && k != 0.0f;
    if (part == 2) return repeat ? GUIDE_AS_FIRST : GUIDE_EVAL;
    if (part == 1) return guided ? GUIDE_EVAL : GUIDE_UNREAD;
    return (repeat || (guided && n->fm[i])) ? GUIDE_EVAL : GUIDE_UNREAD;
}

int pmf_guidance_rows(const PmfObjective *o, const PmfStepNoise *n, int i) {
    int k = 0;
    for (int part = 0; part < (o->cfg ? 3 : 1); part++) k += guidance_part(o, n, i, part) == GUIDE_EVAL;
    return k;
}

PmfLoss pmf_loss(Tape *tp, PmfModel *m, const PmfObjective *o, const float *x, const int *labels,
                 const PmfStepNoise *n) {
    const PmfConfig *c = &m->cfg;
    int B = n->B, null = c->num_classes;
    int shape[4] = {B, c->channels, c->img_size, c->img_size};
    int64_t N = (int64_t)c->channels * c->img_size * c->img_size;
    PmfLoss out;
    memset(&out, 0, sizeof out);

    // 1-2. z_t = (1 - t) x + t e, v_t = (z - x) / clip(t); constants of the step.
    Tensor *xt = tensor_from(tp, 4, shape, x, "x");
    Tensor *z = tensor_new(tp, 4, shape, "z");
    float *v_t = tape_alloc(tp, (size_t)B * N * sizeof(float));
    for (int i = 0; i < B; i++) {
        float t = n->t[i], T = fminf(fmaxf(t, PMF_T_CLIP), 1.0f);
        for (int64_t k = 0; k < N; k++) {
            int64_t j = (int64_t)i * N + k;
            z->data[j] = (1 - t) * x[j] + t * n->e[j];
            v_t[j] = (z->data[j] - x[j]) / T;
        }
    }

    // 4. The guided target and the JVP's z-tangent from the v-head, without gradients. One call on
    // [z; z; z] with (omega, y), (1, null), (w, y): w = omega inside [t_min, t_max], else 1.
    // Only the rows the step reads are evaluated (guidance_part): the third call only where
    // w != omega (about a quarter of the rows under the default sampler), there neither of the
    // others (w = 1 outside the interval), and class-dropped rows skip the unconditional call.
    // Its intermediates are dead once the velocities are copied out: the arena gives them back.
    int G = o->cfg ? 3 * B : B;
    float *vgd = tape_alloc(tp, (size_t)G * N * sizeof(float));
    float *w_int = tape_alloc(tp, (size_t)B * sizeof(float));
    int *src = tape_alloc(tp, (size_t)G * sizeof(int));   // guidance row g reads evaluated row src[g] (-1: unread)
    int E = 0;                                            // rows evaluated
    for (int i = 0; i < B; i++) w_int[i] = guidance_w(n, i);
    for (int g = 0; g < G; g++) {
        int how = guidance_part(o, n, g % B, g / B);
        src[g] = how == GUIDE_EVAL ? E++ : how == GUIDE_AS_FIRST ? src[g % B] : -1;
    }
    ArenaMark guidance_mark = arena_mark(tp->arena);
    double t_guidance = core_now();
    int saved_recording = tp->recording;
    tape_set_recording(tp, 0);
    int gshape[4] = {E, c->channels, c->img_size, c->img_size};
    Tensor *zg = tensor_new(tp, 4, gshape, "z (guidance)");
    Tensor *hg = vec(tp, E, NULL, "h"), *wg = vec(tp, E, NULL, "omega"), *t0 = vec(tp, E, NULL, "t_min");
    Tensor *t1 = vec(tp, E, NULL, "t_max");
    float *tg = tape_alloc(tp, (size_t)E * sizeof(float));
    int *yg = tape_alloc(tp, (size_t)E * sizeof(int));
    for (int g = 0, e = 0; g < G; g++) {
        if (src[g] != e) continue;   // a repeat of an earlier row
        int i = g % B, part = g / B;
        memcpy(zg->data + (size_t)e * N, z->data + (size_t)i * N, (size_t)N * sizeof(float));
        hg->data[e] = 0.0f, t0->data[e] = 0.0f, t1->data[e] = 1.0f, tg[e] = n->t[i];
        if (!o->cfg) wg->data[e] = 1.0f, yg[e] = labels[i];
        else if (part == 0) wg->data[e] = n->omega[i], yg[e] = labels[i];
        else if (part == 1) wg->data[e] = 1.0f, yg[e] = null;
        else wg->data[e] = w_int[i], yg[e] = labels[i];
        e++;
    }
    PmfCond gc = {hg, wg, t0, t1, yg};
    Tensor *vgt = pmf_velocity(tp, c, pmf_forward(tp, m, zg, &gc, 0, 1).v_out, zg, tg, 0);
    for (int g = 0; g < G; g++) {
        if (src[g] < 0) memset(vgd + (size_t)g * N, 0, (size_t)N * sizeof(float));
        else memcpy(vgd + (size_t)g * N, vgt->data + (size_t)src[g] * N, (size_t)N * sizeof(float));
    }
    tape_set_recording(tp, saved_recording);
    arena_release(tp->arena, guidance_mark);
    out.seconds_guidance = core_now() - t_guidance;
    double t_jvp = core_now();
    const float *v_c2 = o->cfg ? vgd + (size_t)2 * B * N : vgd;
    float *v_g = tape_alloc(tp, (size_t)B * N * sizeof(float));
    for (int i = 0; i < B; i++)
        for (int64_t k = 0; k < N; k++) {
            int64_t j = (int64_t)i * N + k;
            if (!o->cfg) {
                v_g[j] = v_t[j];
                continue;
            }
            float vc = vgd[j], vu = vgd[(size_t)B * N + j];
            if (n->fm[i]) v_g[j] = v_t[j] + (1.0f - 1.0f / n->omega[i]) * (vc - vu);
            else v_g[j] = v_t[j] + (1.0f - 1.0f / w_int[i]) * (v_c2[j] - vu);
        }

    // 5. Class dropout: the first k rows see the null label and the plain target.
    int *y = tape_alloc(tp, (size_t)B * sizeof(int));
    for (int i = 0; i < B; i++) {
        y[i] = n->drop[i] ? null : labels[i];
        if (n->drop[i]) memcpy(v_g + (size_t)i * N, v_t + (size_t)i * N, (size_t)N * sizeof(float));
    }

    // 6. JVP forward: primals (z, t, r), tangents (v_c2, 1, 0), so h = t - r has h' = 1.
    // du/dt only enters step 7 times t - r, which is 0 on the r = t rows (the first half of a
    // batch under the default sampler): rows made only of those skip the tangents altogether.
    // That is exact for a finite du/dt, and the lanes cut their chunks where the kind of row
    // changes (pmf/step.c), so most chunks are of one kind.
    int with_tangent = 0;
    for (int i = 0; i < B; i++) with_tangent |= n->t[i] != n->r[i];
    Tensor *zj = tensor_from(tp, 4, shape, z->data, "z");
    if (with_tangent) memcpy(tensor_attach_tangent(tp, zj), v_c2, (size_t)B * N * sizeof(float));
    Tensor *h = vec(tp, B, NULL, "h");
    float *dh = with_tangent ? tensor_attach_tangent(tp, h) : NULL;
    for (int i = 0; i < B; i++) h->data[i] = n->t[i] - n->r[i];
    if (dh)
        for (int i = 0; i < B; i++) dh[i] = 1.0f;
    PmfCond jc = {h, vec(tp, B, n->omega, "omega"), vec(tp, B, n->t_min, "t_min"), vec(tp, B, n->t_max, "t_max"), y};
    PmfHeads heads = pmf_forward(tp, m, zj, &jc, 1, 1);
    Tensor *u = pmf_velocity(tp, c, heads.u_out, zj, n->t, with_tangent);
    Tensor *v = pmf_velocity(tp, c, heads.v_out, z, n->t, 0);
    if (with_tangent && !u->tangent) core_fatal("pmf_loss: the u-path lost its tangent");

    // 7. V = u + (t - r) sg(du/dt); v_g is a constant.
    Tensor *corr = tensor_new(tp, 4, shape, "(t - r) du/dt");
    for (int i = 0; i < B; i++)
        for (int64_t k = 0; k < N; k++) {
            int64_t j = (int64_t)i * N + k;
            corr->data[j] = with_tangent ? (n->t[i] - n->r[i]) * u->tangent[j] : 0.0f;
        }
    Tensor *V = op_add(tp, op_drop_tangent(tp, u), corr);
    Tensor *vg = tensor_wrap(tp, v_g, 4, shape, "v_g");

    // 8. Per-sample sums, adaptive weighting, and the v-head's flow-matching loss.
    Tensor *L_u = sq_dist(tp, V, vg), *L_v = sq_dist(tp, v, vg);
    Tensor *total = op_add(tp, adaptive(tp, L_u, o->norm_eps, o->norm_p), adaptive(tp, L_v, o->norm_eps, o->norm_p));

    // 9. Perceptual hook on pred_x = z - t u (t, not clip(t): spec 5.3 step 9).
    Tensor *tt = per_sample(tp, B, "t");
    memcpy(tt->data, n->t, (size_t)B * sizeof(float));
    Tensor *pred_x = op_sub(tp, z, op_mul(tp, tt, op_drop_tangent(tp, u)));
    if (o->perceptual) {
        Tensor *aux = o->perceptual(o->perceptual_ctx, tp, pred_x, xt, n->t, n->step, n->row);
        if (aux) total = op_add(tp, total, aux);
    }
    out.loss = op_mean(tp, total, AXES_ALL, 0);
    out.L_u = L_u->data, out.L_v = L_v->data;
    out.u = u, out.v = v, out.x_u = pred_x;
    out.du_dt = u->tangent, out.V = V->data, out.v_g = v_g;
    out.seconds_jvp = core_now() - t_jvp;
    return out;
}
