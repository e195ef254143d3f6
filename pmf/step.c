// pmf/step.c: the gradient of one training step: the loss and backward of every micro-batch of
// this rank's rows, summed into the parameter store's gradient. pmf_train and bench_step call it,
// so the bench times exactly the step training runs.
#include <stdlib.h>
#include <string.h>

#include "pmf/pmf.h"

struct PmfStepper {
    Arena arena;
    Tape tp;
    int micro_batch;
};

PmfStepper *pmf_stepper_new(int micro_batch) {
    PmfStepper *s = core_calloc(1, sizeof *s, "stepper");
    arena_init(&s->arena, 64 << 20);
    tape_init(&s->tp, &s->arena);
    s->micro_batch = micro_batch;
    return s;
}

void pmf_stepper_free(PmfStepper *s) {
    if (!s) return;
    tape_free(&s->tp);
    arena_free(&s->arena);
    free(s);
}

size_t pmf_stepper_peak_bytes(const PmfStepper *s) { return s->arena.peak; }

PmfStepStats pmf_step_gradient(PmfStepper *s, PmfModel *m, const PmfObjective *o, const float *x, const int *y,
                               const PmfStepNoise *n, int global_batch) {
    PmfStepStats st;
    memset(&st, 0, sizeof st);
    int64_t numel = (int64_t)m->cfg.channels * m->cfg.img_size * m->cfg.img_size;
    int BL = n->B, MB = s->micro_batch > 0 ? s->micro_batch : BL;
    if (BL % MB) core_fatal("pmf_step_gradient: micro-batch %d does not divide the batch %d", MB, BL);
    params_zero_grad(&m->ps);
    for (int m0 = 0; m0 < BL; m0 += MB) {
        tape_reset(&s->tp);
        PmfStepNoise part = {MB, n->e + (size_t)m0 * numel, n->t + m0, n->r + m0, n->t_min + m0,
                             n->t_max + m0, n->omega + m0, n->fm + m0, n->drop + m0, n->step, n->row + m0};
        PmfLoss L = pmf_loss(&s->tp, m, o, x + (size_t)m0 * numel, y + m0, &part);
        float seed_grad = (float)MB / (float)global_batch;   // the loss is a mean over the whole global batch
        double tb = core_now();
        tape_backward(&s->tp, L.loss, &seed_grad);
        st.seconds_guidance += L.seconds_guidance, st.seconds_jvp += L.seconds_jvp;
        st.seconds_backward += core_now() - tb;
        st.loss += L.loss->data[0] * seed_grad;
        for (int i = 0; i < MB; i++) st.L_u += L.L_u[i], st.L_v += L.L_v[i];
    }
    return st;
}
