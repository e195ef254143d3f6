// tests/test_convnext.c: perceptual/convnext.c against numbers from elsewhere.
// - ConvNeXt-V2-Base (hash weights of perceptual.h, full depth) vs a float64 plain-torch
//   re-implementation of HF's modeling_convnextv2.py (tools/goldens/cases_convnext.py): features of
//   both images, the distance and d sum(dist * g) / d a at 64 px (batch 2, whole gradient) and 224 px
//   (batch 1; gradient at 8192 positions, 4 projections and its norm), within 1e-4 relative.
// - A tiny ConvNeXt-V2 (depths 1,1,2,1, dims 4,8,12,16) whose HF-named state dict went through
//   tools/convert_weights.py convnextv2: features, distance and gradient vs torch, and the gradient
//   vs central differences of the C forward at a few pixels.
// - convnext_loss: defaults, the t < t_thr mask (0 and no gradient), lambda, crops as documented, no
//   gradient to the target, 1-channel inputs.
// - The loader: a missing file names the converter; a wrong shape names the file and the tensor; a
//   missing tensor and a file of another architecture are refused.
#include "harness.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "perceptual/perceptual.h"

static const int tiny_depths[4] = {1, 1, 2, 1}, tiny_dims[4] = {4, 8, 12, 16};

static Tensor *hash_image(Tape *tp, int N, int C, int S, uint64_t id, const char *name) {
    int shape[4] = {N, C, S, S};
    Tensor *t = tensor_new(tp, 4, shape, name);
    perceptual_hash_fill(t->data, t->numel, id, 1.0f);
    return t;
}

// max_i |got_i - want_i| / |want_i|
static double max_rel(const float *got, const float *want, int n) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double r = fabs((double)got[i] - want[i]) / fabs(want[i]);
        worst = r > worst ? r : worst;
    }
    return worst;
}

// ---------------------------------------------------------------------------------------------
// Base goldens

static ConvNext g_base;
static int g_base_ready;

static ConvNext *base_net(void) {
    if (!g_base_ready) {
        double t0 = core_now();
        convnext_init(&g_base, NULL, NULL);
        convnext_fill_hash(&g_base);
        printf("convnext base: %d tensors, %lld floats, hash fill %.2fs\n", g_base.ps.n, (long long)g_base.ps.total,
               core_now() - t0);
        g_base_ready = 1;
    }
    return &g_base;
}

static void check_wsum(const ConvNext *net, const Tensor *wsum, const char *stem) {
    ck_assert_int_eq((int)wsum->numel, net->ps.n);
    for (int i = 0; i < net->ps.n; i++) {
        const Tensor *t = &net->ps.tensors[i];
        double s = test_sum(t->data, t->numel);
        ck_assert_msg(fabs(s - wsum->data[i]) <= 1e-4 * (1 + fabs(s)), "%s: hash weights of '%s' differ from python's: %g vs %g",
                      stem, t->name, s, wsum->data[i]);
    }
}

// Features (no tape), then the distance with the gradient to a; returns the gradient buffer.
static const float *run_golden(TestWork *w, const ConvNext *net, const SafeTensors *st, const char *stem, Tensor **dist_out,
                               Tensor **a_out) {
    Tensor *gfa = golden_tensor(&w->tp, st, "feat_a"), *gfb = golden_tensor(&w->tp, st, "feat_b");
    Tensor *gdist = golden_tensor(&w->tp, st, "dist"), *gg = golden_tensor(&w->tp, st, "g");
    Tensor *d32 = golden_tensor(&w->tp, st, "dist_f32");
    int N = gfa->shape[0];
    int S = (int)atoi(safetensors_meta(st, "S"));
    Tensor *a = hash_image(&w->tp, N, 3, S, 1100, "a"), *b = hash_image(&w->tp, N, 3, S, 1101, "b");
    double t0 = core_now();
    tape_set_recording(&w->tp, 0);
    Tensor *fa = convnext_features(&w->tp, net, a), *fb = convnext_features(&w->tp, net, b);
    double t1 = core_now();
    tape_set_recording(&w->tp, 1);
    ck_assert(fa->ndim == 2 && fa->shape[0] == N && fa->shape[1] == convnext_feature_dim(net));
    double ea = compare_rel("feat_a", fa->data, gfa->data, gfa->numel);
    double eb = compare_rel("feat_b", fb->data, gfb->data, gfb->numel);
    ck_assert_msg(ea < 1e-4 && eb < 1e-4, "%s: feature error %.3g, %.3g", stem, ea, eb);
    a->requires_grad = 1;
    double t2 = core_now();
    Tensor *d = convnext_distance(&w->tp, net, a, b);
    ck_assert_int_eq((int)d->numel, N);
    tape_backward(&w->tp, d, gg->data);
    printf("%s: 2 forwards %.2fs; distance forward + backward %.2fs; arena peak %.0f MB\n", stem, t1 - t0,
           core_now() - t2, w->arena.peak / 1048576.0);
    double ed = max_rel(d->data, gdist->data, N), ed32 = max_rel(d->data, d32->data, N);
    printf("  dist max rel err %.2e (f64), %.2e (torch f32)\n", ed, ed32);
    ck_assert_msg(ed < 1e-4 && ed32 < 1e-4, "%s: distance max rel error %.3g (f64), %.3g (f32)", stem, ed, ed32);
    *dist_out = d;
    *a_out = a;
    return tensor_grad(&w->tp, a);
}

START_TEST(test_base_64) {
    SafeTensors st;
    golden_open(&st, "convnext_base_64");
    TestWork w;
    test_work_init(&w, 64 << 20);
    ConvNext *net = base_net();
    check_wsum(net, golden_tensor(&w.tp, &st, "wsum"), "convnext_base_64");
    Tensor *d, *a;
    const float *g = run_golden(&w, net, &st, "convnext_base_64", &d, &a);
    Tensor *want = golden_tensor(&w.tp, &st, "grad");
    ck_assert(tensor_same_shape(want, a));
    double eg = compare_rel("grad", g, want->data, want->numel);
    ck_assert_msg(eg < 1e-4, "convnext_base_64: gradient error %.3g", eg);
    test_work_free(&w);
    safetensors_close(&st);
}
END_TEST

START_TEST(test_base_224) {
    SafeTensors st;
    golden_open(&st, "convnext_base_224");
    TestWork w;
    test_work_init(&w, 64 << 20);
    ConvNext *net = base_net();
    check_wsum(net, golden_tensor(&w.tp, &st, "wsum"), "convnext_base_224");
    Tensor *d, *a;
    const float *g = run_golden(&w, net, &st, "convnext_base_224", &d, &a);
    Tensor *at = golden_tensor(&w.tp, &st, "grad_at"), *dots = golden_tensor(&w.tp, &st, "grad_dot");
    Tensor *norm = golden_tensor(&w.tp, &st, "grad_norm");
    float *got = core_malloc((size_t)at->numel * sizeof(float), "grad_at");
    for (int64_t k = 0; k < at->numel; k++) got[k] = g[5 + 18 * k];
    double eat = compare_rel("grad at 8192 positions", got, at->data, at->numel);
    free(got);
    float *dir = core_malloc((size_t)a->numel * sizeof(float), "direction");
    double nrm = 0;
    for (int64_t i = 0; i < a->numel; i++) nrm += (double)g[i] * g[i];
    nrm = sqrt(nrm);
    double worst_dot = 0;
    for (int k = 0; k < 4; k++) {
        perceptual_hash_fill(dir, a->numel, 1200 + (uint64_t)k, 1.0f);
        double s = 0;
        for (int64_t i = 0; i < a->numel; i++) s += (double)g[i] * dir[i];
        // a projection can be small: hold it to the gradient's scale (norm * sqrt(E dir^2 = 1/3))
        double e = fabs(s - dots->data[k]) / (norm->data[0] * sqrt(1.0 / 3.0));
        printf("  grad . dir%d = %.6g (torch %.6g), err / scale %.2e\n", k, s, dots->data[k], e);
        worst_dot = e > worst_dot ? e : worst_dot;
    }
    free(dir);
    double en = fabs(nrm - norm->data[0]) / norm->data[0];
    printf("  |grad| %.6g (torch %.6g), rel err %.2e\n", nrm, norm->data[0], en);
    ck_assert_msg(eat < 1e-4, "convnext_base_224: gradient error %.3g at the stored positions", eat);
    ck_assert_msg(worst_dot < 1e-4 && en < 1e-4, "convnext_base_224: projection error %.3g, norm error %.3g", worst_dot, en);
    test_work_free(&w);
    safetensors_close(&st);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Tiny net through the converter

static void tiny_load(ConvNext *net) {
    char path[1024];
    snprintf(path, sizeof path, "%s/convnext_tiny_weights.safetensors", PMF_GOLDEN_DIR);
    convnext_init(net, tiny_depths, tiny_dims);
    ck_assert_msg(convnext_load(net, path) == 0, "%s", core_last_error());
}

START_TEST(test_tiny_converted) {
    SafeTensors st;
    golden_open(&st, "convnext_tiny");
    TestWork w;
    test_work_init(&w, 64 << 20);
    ConvNext net;
    tiny_load(&net);
    ck_assert_int_eq(net.ps.n, 68);
    Tensor *gfa = golden_tensor(&w.tp, &st, "feat_a"), *gfb = golden_tensor(&w.tp, &st, "feat_b");
    Tensor *gdist = golden_tensor(&w.tp, &st, "dist"), *gg = golden_tensor(&w.tp, &st, "g");
    Tensor *ggrad = golden_tensor(&w.tp, &st, "grad");
    Tensor *a = hash_image(&w.tp, 2, 3, 32, 1300, "a"), *b = hash_image(&w.tp, 2, 3, 32, 1301, "b");
    Tensor *fa = convnext_features(&w.tp, &net, a), *fb = convnext_features(&w.tp, &net, b);
    ck_assert(fa->ndim == 2 && fa->shape[0] == 2 && fa->shape[1] == 16);
    ck_assert(compare_rel("tiny feat_a", fa->data, gfa->data, gfa->numel) < 1e-5);
    ck_assert(compare_rel("tiny feat_b", fb->data, gfb->data, gfb->numel) < 1e-5);
    a->requires_grad = 1;
    Tensor *d = convnext_distance(&w.tp, &net, a, b);
    tape_backward(&w.tp, d, gg->data);
    double ed = max_rel(d->data, gdist->data, 2);
    double eg = compare_rel("tiny grad", tensor_grad(&w.tp, a), ggrad->data, ggrad->numel);
    ck_assert_msg(ed < 1e-5 && eg < 1e-5, "tiny: distance error %.3g, gradient error %.3g", ed, eg);
    convnext_free(&net);
    test_work_free(&w);
    safetensors_close(&st);
}
END_TEST

START_TEST(test_tiny_finite_differences) {
    // d sum(dist * g) / d a at 12 pixels vs central differences of the C forward (float32, step 1e-2).
    TestWork w;
    test_work_init(&w, 64 << 20);
    ConvNext net;
    tiny_load(&net);
    const float g[2] = {0.8f, -1.1f};
    Tensor *a = hash_image(&w.tp, 2, 3, 32, 1300, "a"), *b = hash_image(&w.tp, 2, 3, 32, 1301, "b");
    a->requires_grad = 1;
    Tensor *d = convnext_distance(&w.tp, &net, a, b);
    tape_backward(&w.tp, d, g);
    const float *ga = tensor_grad(&w.tp, a);
    float *grad = core_malloc((size_t)a->numel * sizeof(float), "grad");
    memcpy(grad, ga, (size_t)a->numel * sizeof(float));
    double gmax = 0;
    for (int64_t i = 0; i < a->numel; i++) gmax = fabs(grad[i]) > gmax ? fabs(grad[i]) : gmax;
    tape_set_recording(&w.tp, 0);
    const double eps = 1e-2;
    double worst = 0;
    for (int k = 0; k < 12; k++) {
        int64_t i = (k * 523 + 17) % a->numel;
        float keep = a->data[i];
        double f[2];
        for (int side = 0; side < 2; side++) {
            a->data[i] = keep + (float)(side ? -eps : eps);
            Tensor *dd = convnext_distance(&w.tp, &net, a, b);
            f[side] = (double)g[0] * dd->data[0] + (double)g[1] * dd->data[1];
        }
        a->data[i] = keep;
        double fd = (f[0] - f[1]) / (2 * eps), e = fabs(fd - grad[i]) / gmax;
        printf("  pixel %5lld: grad %+.6f fd %+.6f\n", (long long)i, grad[i], fd);
        worst = e > worst ? e : worst;
    }
    printf("tiny finite differences: max error / max|grad| %.2e\n", worst);
    ck_assert_msg(worst < 2e-3, "finite differences disagree: %.3g of max|grad| %.3g", worst, gmax);
    free(grad);
    convnext_free(&net);
    test_work_free(&w);
}
END_TEST

START_TEST(test_tiny_tangent) {
    // The features' forward-mode tangent along a random input direction v (through the fused
    // GELU + GRN op, the channel LayerNorms, the depthwise and 1x1 convs) vs central differences
    // of the C forward, and vs the backward: <J v, u> = <v, J^T u>.
    TestWork w;
    test_work_init(&w, 64 << 20);
    ConvNext net;
    tiny_load(&net);
    Tensor *a = hash_image(&w.tp, 2, 3, 32, 1300, "a"), *v = hash_image(&w.tp, 2, 3, 32, 1302, "v");
    float *ta = tensor_attach_tangent(&w.tp, a);
    memcpy(ta, v->data, (size_t)a->numel * sizeof(float));
    a->requires_grad = 1;
    Tensor *f = convnext_features(&w.tp, &net, a);
    ck_assert_ptr_nonnull(f->tangent);
    int nf = (int)f->numel;
    float *jv = core_malloc((size_t)nf * sizeof(float), "jv"), *u = core_malloc((size_t)nf * sizeof(float), "u");
    memcpy(jv, f->tangent, (size_t)nf * sizeof(float));
    perceptual_hash_fill(u, nf, 1303, 1.0f);
    tape_backward(&w.tp, f, u);
    double jv_u = 0, v_jtu = 0, tmax = 0;
    const float *g = tensor_grad(&w.tp, a);
    for (int i = 0; i < nf; i++) jv_u += (double)jv[i] * u[i], tmax = fmax(tmax, fabs(jv[i]));
    for (int64_t i = 0; i < a->numel; i++) v_jtu += (double)v->data[i] * g[i];
    int64_t na = a->numel;
    float *dir = core_malloc((size_t)na * sizeof(float), "v");   // v's arena memory goes with the reset
    memcpy(dir, v->data, (size_t)na * sizeof(float));
    tape_reset(&w.tp);
    tape_set_recording(&w.tp, 0);
    a = hash_image(&w.tp, 2, 3, 32, 1300, "a");   // tangent-free copy to perturb
    const double eps = 1e-3;   // along a whole-image direction (|v| ~ 78): 1e-2 is already curved
    float *fp = core_malloc((size_t)nf * sizeof(float), "f+");
    for (int64_t i = 0; i < na; i++) a->data[i] += (float)eps * dir[i];
    memcpy(fp, convnext_features(&w.tp, &net, a)->data, (size_t)nf * sizeof(float));
    for (int64_t i = 0; i < na; i++) a->data[i] -= (float)(2 * eps) * dir[i];
    const float *fm = convnext_features(&w.tp, &net, a)->data;
    double worst = 0;
    for (int i = 0; i < nf; i++) worst = fmax(worst, fabs((fp[i] - fm[i]) / (2 * eps) - jv[i]) / tmax);
    double adj = fabs(jv_u - v_jtu) / fmax(fabs(jv_u), 1e-12);
    printf("tiny tangent: max |fd - Jv| / max|Jv| %.2e, <Jv,u> %.6g vs <v,J^T u> %.6g (rel %.2e)\n", worst, jv_u, v_jtu, adj);
    ck_assert_msg(worst < 2e-3, "tangent vs finite differences: %.3g of max|Jv|", worst);
    ck_assert_msg(adj < 1e-4, "tangent and backward disagree: %.3g relative", adj);
    free(jv), free(u), free(fp), free(dir);
    convnext_free(&net);
    test_work_free(&w);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Loss

START_TEST(test_loss_mask_lambda) {
    TestWork w;
    test_work_init(&w, 64 << 20);
    ConvNext net;
    tiny_load(&net);
    LpipsLossConfig cfg;
    convnext_loss_defaults(&cfg);
    ck_assert(cfg.t_thr == 0.8f && cfg.lambda == 0.1f && cfg.crop_size == 224 && cfg.random_crop == 1);
    cfg.crop_size = 40;   // the tiny net at a small size; the rest as pMF
    enum { B = 4, S = 48 };
    for (int C = 1; C <= 3; C += 2) {
        tape_reset(&w.tp);
        Tensor *pred = hash_image(&w.tp, B, C, S, 3000, "pred"), *x = hash_image(&w.tp, B, C, S, 3001, "x");
        pred->requires_grad = 1;
        x->requires_grad = 1;   // a parameter-like target must still get no gradient
        const float t[B] = {0.1f, 0.9f, 0.5f, 0.8f};
        Rng rng;
        rng_init(&rng, 9);
        Tensor *loss = convnext_loss(&net, &w.tp, pred, x, t, &cfg, &rng);
        ck_assert_int_eq((int)loss->numel, B);
        ck_assert_msg(loss->data[1] == 0.0f && loss->data[3] == 0.0f, "masked samples: %g %g", loss->data[1],
                      loss->data[3]);
        ck_assert_msg(loss->data[0] > 0 && loss->data[2] > 0, "active samples: %g %g", loss->data[0], loss->data[2]);
        // the same crops drawn by hand: 4 values per sample in order, masked ones included
        Rng r2;
        rng_init(&r2, 9);
        uint64_t r2_start = r2.offset;
        CropBox boxes[B];
        for (int b = 0; b < B; b++) boxes[b] = perceptual_crop_sample(&r2, S, S);
        ck_assert_msg(rng.offset == r2.offset, "convnext_loss drew %llu values, want %llu",
                      (unsigned long long)rng.offset, (unsigned long long)r2.offset);
        tape_set_recording(&w.tp, 0);
        Tensor *d = convnext_distance(&w.tp, &net, perceptual_crop_resize(&w.tp, pred, boxes, 40),
                                      perceptual_crop_resize(&w.tp, x, boxes, 40));
        tape_set_recording(&w.tp, 1);
        for (int b = 0; b < B; b += 2)
            ck_assert_msg(fabsf(loss->data[b] - 0.1f * d->data[b]) <= 1e-5f * d->data[b], "sample %d: %g vs 0.1 * %g", b,
                          loss->data[b], d->data[b]);
        // gradients: only pred's active samples
        tape_backward(&w.tp, op_sum(&w.tp, loss, AXES_ALL, 0), NULL);
        float *gp = tensor_grad(&w.tp, pred), *gx = tensor_grad(&w.tp, x);
        int per = C * S * S;
        for (int b = 0; b < B; b++) {
            double s = 0, sx = 0;
            for (int i = 0; i < per; i++) s += fabs(gp[b * per + i]), sx += fabs(gx[b * per + i]);
            if (t[b] < 0.8f) ck_assert_msg(s > 0 && isfinite(s), "C=%d sample %d: no gradient", C, b);
            else ck_assert_msg(s == 0, "C=%d masked sample %d has gradient %g", C, b, s);
            ck_assert_msg(sx == 0, "C=%d: target got a gradient (%g) in sample %d", C, sx, b);
        }
        // all masked: zeros, no network run, the crops still drawn
        const float tall[B] = {0.9f, 0.95f, 1.0f, 0.8f};
        uint64_t before = rng.offset;
        Tensor *z = convnext_loss(&net, &w.tp, pred, x, tall, &cfg, &rng);
        for (int b = 0; b < B; b++) ck_assert(z->data[b] == 0.0f);
        ck_assert_msg(rng.offset - before == r2.offset - r2_start, "all masked: drew %llu values, want %llu",
                      (unsigned long long)(rng.offset - before), (unsigned long long)(r2.offset - r2_start));
        // a tangent on pred is dropped: the loss carries none
        tape_reset(&w.tp);
        Tensor *p2 = hash_image(&w.tp, B, C, S, 3000, "pred"), *x2 = hash_image(&w.tp, B, C, S, 3001, "x");
        float *tan = tensor_attach_tangent(&w.tp, p2);
        for (int64_t i = 0; i < p2->numel; i++) tan[i] = 1.0f;
        Tensor *l2 = convnext_loss(&net, &w.tp, p2, x2, t, &cfg, &rng);
        ck_assert_msg(l2->tangent == NULL, "convnext_loss propagated pred_x's tangent");
    }
    convnext_free(&net);
    test_work_free(&w);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Loader

// The tiny weights re-written to a temporary file, with tensor `bad` given shape `shape` (NULL:
// left out) and the metadata copied. The writer keeps pointers, so the buffers live until the save.
static void write_modified(const char *path, const char *bad, int ndim, const int *shape) {
    SafeTensors st;
    char src[1024];
    snprintf(src, sizeof src, "%s/convnext_tiny_weights.safetensors", PMF_GOLDEN_DIR);
    ck_assert_msg(safetensors_open(&st, src) == 0, "%s", core_last_error());
    StWriter *wr = st_writer_new();
    float **bufs = core_calloc((size_t)st.n_entries, sizeof(float *), "buffers");
    for (int i = 0; i < st.n_meta; i++) st_writer_meta(wr, st.meta_keys[i], st.meta_values[i]);
    for (int i = 0; i < st.n_entries; i++) {
        const StEntry *e = &st.entries[i];
        int shp[4], nd = e->ndim;
        for (int k = 0; k < nd; k++) shp[k] = (int)e->shape[k];
        if (!strcmp(e->name, bad)) {
            if (!shape) continue;
            int64_t n = 1;
            for (int k = 0; k < ndim; k++) n *= shape[k];
            bufs[i] = core_calloc((size_t)n, sizeof(float), "bad");
            st_writer_add(wr, e->name, ndim, shape, bufs[i]);
        } else {
            bufs[i] = core_malloc((size_t)e->numel * sizeof(float), "entry");
            ck_assert(safetensors_read_f32(&st, e->name, nd, shp, bufs[i]) == 0);
            st_writer_add(wr, e->name, nd, shp, bufs[i]);
        }
    }
    ck_assert(st_writer_save(wr, path) == 0);
    st_writer_free(wr);
    for (int i = 0; i < st.n_entries; i++) free(bufs[i]);
    free(bufs);
    safetensors_close(&st);
}

START_TEST(test_loader_errors) {
    ConvNext net;
    convnext_init(&net, tiny_depths, tiny_dims);
    ck_assert(convnext_load(&net, "/nonexistent/convnextv2.safetensors") == -1);
    ck_assert_msg(strstr(core_last_error(), "tools/convert_weights.py convnextv2") &&
                      strstr(core_last_error(), "/nonexistent/convnextv2.safetensors"),
                  "message: %s", core_last_error());
    char path[] = "/tmp/pmf_test_convnext_XXXXXX";
    int fd = mkstemp(path);
    ck_assert(fd >= 0);
    close(fd);
    // wrong shape: pwconv1 of stage 2, layer 1 as (48, 11) instead of (48, 12)
    const char *bad = "encoder.stages.2.layers.1.pwconv1.weight";
    int shp[2] = {48, 11};
    write_modified(path, bad, 2, shp);
    ck_assert(convnext_load(&net, path) == -1);
    printf("wrong shape: %s\n", core_last_error());
    ck_assert_msg(strstr(core_last_error(), path) && strstr(core_last_error(), bad), "message: %s", core_last_error());
    // missing tensor
    write_modified(path, "encoder.stages.1.downsampling_layer.0.bias", 0, NULL);
    ck_assert(convnext_load(&net, path) == -1);
    printf("missing: %s\n", core_last_error());
    ck_assert_msg(strstr(core_last_error(), "encoder.stages.1.downsampling_layer.0.bias"), "message: %s", core_last_error());
    unlink(path);
    convnext_free(&net);
    // the tiny file read into a network declared with other widths: refused by its metadata
    const int other[4] = {4, 8, 12, 20};
    convnext_init(&net, tiny_depths, other);
    char src[1024];
    snprintf(src, sizeof src, "%s/convnext_tiny_weights.safetensors", PMF_GOLDEN_DIR);
    ck_assert(convnext_load(&net, src) == -1);
    printf("other architecture: %s\n", core_last_error());
    ck_assert_msg(strstr(core_last_error(), "dims 4,8,12,16"), "message: %s", core_last_error());
    convnext_free(&net);
}
END_TEST

int main(void) {
    Suite *s = suite_create("convnext");
    TCase *tc = tcase_create("convnext");
    tcase_set_timeout(tc, 900);
    tcase_add_test(tc, test_loader_errors);
    tcase_add_test(tc, test_tiny_converted);
    tcase_add_test(tc, test_tiny_finite_differences);
    tcase_add_test(tc, test_tiny_tangent);
    tcase_add_test(tc, test_loss_mask_lambda);
    tcase_add_test(tc, test_base_64);
    tcase_add_test(tc, test_base_224);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
