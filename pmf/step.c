// pmf/step.c: the gradient of one training step: the loss and backward of every micro-batch of
// this rank's rows, summed into the parameter store's gradient. pmf_train and bench_step call it,
// so the bench times exactly the step training runs.
//
// Lanes: with T threads the rows are split into T contiguous parts ("lanes"), each run by one
// thread on its own tape and arena with single-threaded ops and GEMMs, its parameter gradients in
// its own buffer (tape_redirect_grads); the buffers are then added in lane order. A small model's
// ops (XS/4: width 96, 84 tokens) are too small to split well across threads: one op per thread
// at a time keeps both cores busy without meeting at every op. A lane is a micro-batch in all but
// name (its loss is seeded with rows / global batch), so the step is the micro-batched step, and a
// fixed thread count gives the same bits every time.
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "pmf/pmf.h"

#define MAX_LANES 16

typedef struct {
    Arena arena;
    Tape tp;
    float *grad;          // lanes 1..: own parameter gradients; lane 0 writes the store's
    PmfStepStats st;
} Lane;

struct PmfStepper {
    int micro_batch, lanes_wanted;
    int chunk_rows;       // rows a lane runs at a time without micro-batching; 0 = chosen per model
    Lane lane[MAX_LANES];
    int n_lanes;          // lanes initialised so far
    int64_t grad_n;       // floats in each lane's gradient buffer
};

PmfStepper *pmf_stepper_new(int micro_batch, int lanes) {
    PmfStepper *s = core_calloc(1, sizeof *s, "stepper");
    s->micro_batch = micro_batch;
    s->lanes_wanted = lanes;
    return s;
}

void pmf_stepper_set_chunk_rows(PmfStepper *s, int rows) {
    s->chunk_rows = rows;
}

// Rows a lane runs at a time when the step is not micro-batched: as many as keep the widest
// activation between two GEMMs (the MLP's fused gate and value, or q, k, v) within CHUNK_BYTES,
// about half of one core's L2 here. Between GEMMs every op streams its tensors; at batch 64 those
// are megabytes and each pass goes to memory, and OpenBLAS packs each GEMM's activation operand
// through memory too. In chunks, the next op finds them in cache (XS/4 at 1 thread: 8% faster,
// bench_step --chunk). The rule depends on the model only, never on the machine, so a given
// thread count gives the same bits everywhere.
#define CHUNK_BYTES (1 << 20)
int pmf_step_chunk_rows(const PmfConfig *c) {
    int64_t tokens = (int64_t)(c->img_size / c->patch) * (c->img_size / c->patch) + PMF_PREFIX;
    int64_t width = 2 * (int64_t)c->mlp_hidden > 3 * (int64_t)c->dim ? 2 * (int64_t)c->mlp_hidden : 3 * (int64_t)c->dim;
    int64_t rows = CHUNK_BYTES / (tokens * width * (int64_t)sizeof(float));
    return rows < 1 ? 1 : (int)rows;
}

void pmf_stepper_free(PmfStepper *s) {
    if (!s) return;
    for (int i = 0; i < s->n_lanes; i++) {
        tape_free(&s->lane[i].tp);
        arena_free(&s->lane[i].arena);
        free(s->lane[i].grad);
    }
    free(s);
}

size_t pmf_stepper_peak_bytes(const PmfStepper *s) {
    size_t b = 0;
    for (int i = 0; i < s->n_lanes; i++) b += s->lane[i].arena.peak + (size_t)(i ? s->grad_n : 0) * sizeof(float);
    return b;
}

static void lane_init(PmfStepper *s, int i, int64_t grad_n) {
    Lane *l = &s->lane[i];
    arena_init(&l->arena, 64 << 20);
    tape_init(&l->tp, &l->arena);
    l->grad = i ? core_malloc((size_t)grad_n * sizeof(float), "a lane's parameter gradients") : NULL;
}

static int has_h(const PmfStepNoise *n, int i) {
    return n->t[i] != n->r[i];
}

// Rows [r0, r1) of n in micro-batches of mb (the last may be shorter), on lane l. With
// split_kinds (a lane's own chunks, not the user's micro-batches) a chunk also ends where the rows
// change between r = t and r != t: a chunk of r = t rows only skips the tangents (pmf/objective.c).
static void lane_run(Lane *l, PmfModel *m, const PmfObjective *o, const float *x, const int *y, const PmfStepNoise *n,
                     int r0, int r1, int mb, int split_kinds, int global_batch, int64_t numel) {
    memset(&l->st, 0, sizeof l->st);
    for (int m0 = r0, rows; m0 < r1; m0 += rows) {
        rows = r1 - m0 < mb ? r1 - m0 : mb;
        for (int i = m0 + 1; split_kinds && i < m0 + rows; i++)
            if (has_h(n, i) != has_h(n, m0)) rows = i - m0;
        tape_reset(&l->tp);
        PmfStepNoise part = {rows, n->e + (size_t)m0 * numel, n->t + m0, n->r + m0, n->t_min + m0,
                             n->t_max + m0, n->omega + m0, n->fm + m0, n->drop + m0, n->step, n->row + m0};
        PmfLoss L = pmf_loss(&l->tp, m, o, x + (size_t)m0 * numel, y + m0, &part);
        float seed_grad = (float)rows / (float)global_batch;   // the loss is a mean over the whole global batch
        double tb = core_now();
        tape_backward(&l->tp, L.loss, &seed_grad);
        l->st.seconds_guidance += L.seconds_guidance, l->st.seconds_jvp += L.seconds_jvp;
        l->st.seconds_backward += core_now() - tb;
        l->st.loss += L.loss->data[0] * seed_grad;
        for (int i = 0; i < rows; i++) l->st.L_u += L.L_u[i], l->st.L_v += L.L_v[i];
    }
}

// Rows per pass for a lane of `rows` rows that is not micro-batched.
static int lane_chunk(const PmfStepper *s, const PmfModel *m, int rows) {
    int c = s->chunk_rows > 0 ? s->chunk_rows : s->chunk_rows < 0 ? rows : pmf_step_chunk_rows(&m->cfg);
    return c < rows ? c : rows;
}

// Lane boundaries without micro-batching. Rows differ in cost: the guidance pass evaluates 1 to 3
// network rows per row (pmf_guidance_rows), and the r = t rows, which come first, skip the
// tangents. With equal row counts the first lane sat idle at the end of every step (XS/4: 6% of
// the other lane's GEMM work). In units of one guidance row (a trunk and v-head forward, 3 of a
// row's 27 block evaluations in bench_step.c's count) a row costs its guidance rows, 5 for the
// JVP forward's primal and backward, and 1 for the tangents where r != t; each lane gets
// contiguous rows of as equal a total as the rows allow.
static double row_cost(const PmfObjective *o, const PmfStepNoise *n, int i) {
    return 5.0 + has_h(n, i) + pmf_guidance_rows(o, n, i);
}

static void lane_bounds(const PmfObjective *o, const PmfStepNoise *n, int P, int *bound) {
    int B = n->B;
    double total = 0;
    for (int i = 0; i < B; i++) total += row_cost(o, n, i);
    bound[0] = 0, bound[P] = B;
    for (int p = 1; p < P; p++) {
        double target = total * p / P, prefix = 0, best_gap = -1;
        int lo = bound[p - 1] + 1, hi = B - (P - p);   // every lane keeps at least one row
        bound[p] = lo;
        for (int j = 0; j <= hi; j++) {
            if (j >= lo) {
                double gap = prefix > target ? prefix - target : target - prefix;
                if (best_gap < 0 || gap < best_gap) best_gap = gap, bound[p] = j;
            }
            if (j < B) prefix += row_cost(o, n, j);
        }
    }
}

int pmf_stepper_lanes(const PmfStepper *s, int rows) {
    int want = s->lanes_wanted > 0 ? s->lanes_wanted : core_threads();
    int mb = s->micro_batch > 0 && s->micro_batch < rows ? s->micro_batch : rows;
    int units = (rows + mb - 1) / mb;   // micro-batches; without micro-batching, rows
    if (mb == rows) units = rows;
    if (want > units) want = units;
    if (want > MAX_LANES) want = MAX_LANES;
    return want < 1 ? 1 : want;
}

PmfStepStats pmf_step_gradient(PmfStepper *s, PmfModel *m, const PmfObjective *o, const float *x, const int *y,
                               const PmfStepNoise *n, int global_batch) {
    int64_t numel = (int64_t)m->cfg.channels * m->cfg.img_size * m->cfg.img_size;
    int BL = n->B, MB = s->micro_batch > 0 ? s->micro_batch : BL;
    if (MB > BL || BL % MB) core_fatal("pmf_step_gradient: micro-batch %d does not divide the batch %d", MB, BL);
    int P = pmf_stepper_lanes(s, BL);
    if (s->n_lanes && s->grad_n != m->ps.total) core_fatal("pmf_step_gradient: the stepper was used with another model");
    s->grad_n = m->ps.total;
    while (s->n_lanes < P) lane_init(s, s->n_lanes, s->grad_n), s->n_lanes++;
    params_zero_grad(&m->ps);
    if (P == 1) {
        lane_run(&s->lane[0], m, o, x, y, n, 0, BL, MB < BL ? MB : lane_chunk(s, m, BL), MB == BL, global_batch, numel);
        return s->lane[0].st;
    }
    // Lane p takes whole micro-batches [p U / P, (p + 1) U / P) of the U, or (no micro-batching)
    // rows [bound[p], bound[p + 1]) of equal cost.
    int units = BL / MB, bound[MAX_LANES + 1];
    if (MB == BL) lane_bounds(o, n, P, bound);
    else
        for (int p = 0; p <= P; p++) bound[p] = (int)((int64_t)p * units / P) * MB;
#pragma omp parallel num_threads(P)
    {
        int p = omp_get_thread_num();
        Lane *l = &s->lane[p];
        if (p) memset(l->grad, 0, (size_t)s->grad_n * sizeof(float));
        tape_redirect_grads(&l->tp, m->ps.grad, l->grad, s->grad_n);
        int r0 = bound[p], r1 = bound[p + 1];
        lane_run(l, m, o, x, y, n, r0, r1, MB < BL ? MB : lane_chunk(s, m, r1 - r0), MB == BL, global_batch, numel);
#pragma omp barrier
        // Sum the lanes' gradients into the store's, element ranges split over the threads, each
        // element in lane order (so the bits depend on the thread count only).
        int64_t lo = s->grad_n * p / P, hi = s->grad_n * (p + 1) / P;
        float *g = m->ps.grad;
        for (int q = 1; q < P; q++) {
            const float *gq = s->lane[q].grad;
            for (int64_t i = lo; i < hi; i++) g[i] += gq[i];
        }
    }
    PmfStepStats st = s->lane[0].st;   // wall times: lane 0's
    for (int q = 1; q < P; q++) st.loss += s->lane[q].st.loss, st.L_u += s->lane[q].st.L_u, st.L_v += s->lane[q].st.L_v;
    return st;
}
