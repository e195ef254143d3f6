// tests/test_pmf_train.c: the training program's promises, on Fashion-MNIST with a shrunken S/4.
//  - resume: 4 steps straight equal 2 steps, stop, resume, 2 steps, bit for bit (model, optimizer
//    state, EMAs), for Muon and AdamW;
//  - micro-batches: one step of batch 8 in micro-batches of 2 gives the update of one batch of 8
//    (normalized difference of the parameter updates below 1e-4: only summation order differs);
//  - a SIGKILL while a checkpoint is being written leaves the previous checkpoint loadable.
#include "harness.h"

#include <hdf5.h>
#include "dataset/dataset.h"
#include "perceptual/perceptual.h"
#include "pmf/pmf.h"
#include "pmf/train_internal.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

static void small_config(PmfTrainConfig *c, const char *out, const char *optimizer, int steps, int batch, int micro) {
    char v[64];
    pmf_train_config_default(c);
    ck_assert(pmf_train_config_set(c, "model.model_str", "S/4") == 0);
    ck_assert(pmf_train_config_set(c, "dataset.root", "fashion-mnist") == 0);
    ck_assert(pmf_train_config_set(c, "dataset.image_size", "32") == 0);
    ck_assert(pmf_train_config_set(c, "model.dim", "32") == 0);
    ck_assert(pmf_train_config_set(c, "model.heads", "2") == 0);
    ck_assert(pmf_train_config_set(c, "model.depth_shared", "1") == 0);
    ck_assert(pmf_train_config_set(c, "model.depth_head", "1") == 0);
    ck_assert(pmf_train_config_set(c, "model.mlp_hidden", "64") == 0);
    ck_assert(pmf_train_config_set(c, "model.bottleneck", "8") == 0);
    ck_assert(pmf_train_config_set(c, "training.optimizer", optimizer) == 0);
    ck_assert(pmf_train_config_set(c, "training.learning_rate", "0.001") == 0);
    snprintf(v, sizeof v, "%d", steps);
    ck_assert(pmf_train_config_set(c, "training.steps", v) == 0);
    snprintf(v, sizeof v, "%d", batch);
    ck_assert(pmf_train_config_set(c, "training.batch_size", v) == 0);
    snprintf(v, sizeof v, "%d", micro);
    ck_assert(pmf_train_config_set(c, "training.micro_batch", v) == 0);
    ck_assert(pmf_train_config_set(c, "training.checkpoint_per_step", "0") == 0);
    ck_assert(pmf_train_config_set(c, "training.sample_per_step", "0") == 0);
    ck_assert(pmf_train_config_set(c, "training.log_per_step", "1000") == 0);
    ck_assert(pmf_train_config_set(c, "training.seed", "11") == 0);
    // Sampling settings that are not pmf_sample's built-in ones: it must take them from the checkpoint.
    ck_assert(pmf_train_config_set(c, "sampling.omega", "2.5") == 0);
    ck_assert(pmf_train_config_set(c, "sampling.t_min", "0.125") == 0);
    ck_assert(pmf_train_config_set(c, "sampling.t_max", "0.875") == 0);
    ck_assert(pmf_train_config_set(c, "sampling.num_steps", "2") == 0);
    ck_assert(pmf_train_config_set(c, "out", out) == 0);
    ck_assert_msg(pmf_train_config_finish(c) == 0, "%s", core_last_error());
}

static void run_ok(PmfTrainConfig *c) { ck_assert_msg(pmf_train(c) == 0, "pmf_train failed: %s", core_last_error()); }

// Every tensor of two checkpoints, bit for bit; returns how many tensors were compared.
static int same_checkpoints(const char *a, const char *b) {
    SafeTensors sa, sb;
    ck_assert_msg(safetensors_open(&sa, a) == 0, "%s", core_last_error());
    ck_assert_msg(safetensors_open(&sb, b) == 0, "%s", core_last_error());
    ck_assert_int_eq(sa.n_entries, sb.n_entries);
    for (int i = 0; i < sa.n_entries; i++) {
        const StEntry *ea = &sa.entries[i], *eb = safetensors_find(&sb, ea->name);
        ck_assert_msg(eb != NULL, "%s lacks '%s'", b, ea->name);
        ck_assert_int_eq(ea->end - ea->begin, eb->end - eb->begin);
        int same = memcmp(sa.bytes + sa.data_start + ea->begin, sb.bytes + sb.data_start + eb->begin, ea->end - ea->begin) == 0;
        ck_assert_msg(same, "tensor '%s' differs between the straight and the resumed run", ea->name);
    }
    ck_assert_str_eq(safetensors_meta(&sa, "step"), safetensors_meta(&sb, "step"));
    int n = sa.n_entries;
    safetensors_close(&sa), safetensors_close(&sb);
    return n;
}

static void resume_case_from(const char *optimizer, const char *data) {
    char root[] = "/tmp/pmf_resume_XXXXXX", a[256], b[256], ca[300], cb[300];
    ck_assert(mkdtemp(root) != NULL);
    snprintf(a, sizeof a, "%s/straight", root);
    snprintf(b, sizeof b, "%s/resumed", root);
    PmfTrainConfig c;
    small_config(&c, a, optimizer, 4, 4, 4);
    snprintf(c.data, sizeof c.data, "%s", data);
    run_ok(&c);
    small_config(&c, b, optimizer, 2, 4, 4);
    snprintf(c.data, sizeof c.data, "%s", data);
    run_ok(&c);
    snprintf(cb, sizeof cb, "%s/checkpoint.safetensors", b);
    small_config(&c, b, optimizer, 4, 4, 4);
    snprintf(c.data, sizeof c.data, "%s", data);
    snprintf(c.load_from, sizeof c.load_from, "%s", cb);
    run_ok(&c);
    snprintf(ca, sizeof ca, "%s/checkpoint.safetensors", a);
    int n = same_checkpoints(ca, cb);
    printf("  %s on %s: %d tensors identical after 4 straight steps and 2 + resume + 2\n", optimizer, data, n);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ck_assert(system(cmd) == 0);
}

static void resume_case(const char *optimizer) { resume_case_from(optimizer, "fashion-mnist"); }

// The built-in data keeps Fashion-MNIST's 28 x 28 bytes and puts each on the S x S canvas when a
// batch is made: at 512 px the canvases of 60,000 images would be 63 GB (the paper's
// `pmf_train --res 512 --patch 32` aborted allocating them).
START_TEST(builtin_data_is_put_on_the_canvas_per_batch) {
    PmfTrainConfig c;
    small_config(&c, "/tmp/pmf_canvas_run", "muon", 1, 2, 0);
    c.model.img_size = 512;
    PmfTrainData d;
    ck_assert_msg(pmf_train_data_open(&d, &c, 0, 1) == 0, "%s", core_last_error());
    IdxImages im;
    IdxLabels lb;
    ck_assert(fashion_mnist_load(NULL, "train", &im, &lb) == 0);
    float *x = malloc((size_t)2 * 512 * 512 * sizeof(float));
    int y[2];
    DsStreamPos pos;
    ck_assert(pmf_train_data_batch(&d, 0, d.n / 2, 2, 10, x, y, &pos) == 0);
    for (int b = 0; b < 2; b++) {
        int i = d.order[b], off = (512 - 28) / 2, bad = 0;
        ck_assert_int_eq(y[b], lb.labels[i]);
        for (int r = 0; r < 512; r++)
            for (int q = 0; q < 512; q++) {
                int in = r >= off && r < off + 28 && q >= off && q < off + 28;
                float want = in ? im.pixels[((size_t)i * 28 + r - off) * 28 + q - off] / 127.5f - 1.0f : -1.0f;
                bad += x[((size_t)b * 512 + r) * 512 + q] != want;
            }
        ck_assert_msg(bad == 0, "image %d: %d pixels differ from the idx file's on the canvas", b, bad);
    }
    free(x);
    idx_free_images(&im);
    idx_free_labels(&lb);
    pmf_train_data_close(&d);
}
END_TEST

START_TEST(resume_is_bit_exact_muon) { resume_case("muon"); }
END_TEST

START_TEST(resume_is_bit_exact_adamw) { resume_case("adamw"); }
END_TEST

// The same from HDF5 shards (pmf_prepare's output): the stream's position rides in the checkpoint.
// dir (a mkdtemp template) becomes a folder of shards of 16 holding the first n test images at 32 x 32.
static void make_fmnist_shards(char *dir, int n) {
    ck_assert(mkdtemp(dir) != NULL);
    DsPrepareConfig pc = {DS_SRC_FASHION_MNIST, NULL, NULL, "t10k", dir, 32, 16, 0, n, 1, 0, 1};
    DsPrepareStats ps;
    ck_assert_msg(ds_prepare(&pc, &ps) == 0, "%s", core_last_error());
    ck_assert_int_eq((int)ps.written, n);
}

static void remove_tree(const char *dir) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    ck_assert(system(cmd) == 0);
}

START_TEST(resume_is_bit_exact_from_shards) {
    char dir[] = "/tmp/pmf_shards_XXXXXX";
    make_fmnist_shards(dir, 40);
    resume_case_from("muon", dir);   // 40 images, batch 4: 10 steps per epoch; shards of 16
    remove_tree(dir);
}
END_TEST

// Sample grids stay 10 classes x 10 images whatever the label table holds: a model of 1000 classes
// trained on shards writes samples.png of 10 x 10 tiles (32 + 2 pixels each, 2 of border).
START_TEST(grid_of_a_1000_class_model_stays_small) {
    char dir[] = "/tmp/pmf_grid_shards_XXXXXX";
    make_fmnist_shards(dir, 16);
    char out[300];
    snprintf(out, sizeof out, "%s/run", dir);
    PmfTrainConfig c;
    small_config(&c, out, "muon", 1, 4, 0);
    ck_assert(pmf_train_config_set(&c, "dataset.root", dir) == 0);
    ck_assert(pmf_train_config_set(&c, "model.num_classes", "1000") == 0);
    ck_assert_msg(pmf_train_config_finish(&c) == 0, "%s", core_last_error());
    ck_assert_int_eq(c.model.num_classes, 1000);
    run_ok(&c);
    char png[400];
    snprintf(png, sizeof png, "%s/samples.png", out);
    FILE *f = fopen(png, "rb");
    ck_assert_msg(f != NULL, "no %s", png);
    unsigned char h[24];
    ck_assert(fread(h, 1, 24, f) == 24);
    fclose(f);
    unsigned w = (unsigned)h[16] << 24 | h[17] << 16 | h[18] << 8 | h[19], ht = (unsigned)h[20] << 24 | h[21] << 16 | h[22] << 8 | h[23];
    ck_assert_msg(w == 10 * 34 + 2 && ht == 10 * 34 + 2, "grid %ux%u, expected 342x342 (10 x 10 tiles)", w, ht);
    remove_tree(dir);
}
END_TEST

// The "model/" tensors of a checkpoint, in the store's order of `like`.
static float *read_model(const char *path, const ParamStore *like) {
    SafeTensors st;
    ck_assert_msg(safetensors_open(&st, path) == 0, "%s", core_last_error());
    float *p = calloc((size_t)like->total, sizeof(float));   // zero in the store's alignment gaps
    for (int i = 0; i < like->n; i++) {
        const Tensor *t = &like->tensors[i];
        char name[256];
        snprintf(name, sizeof name, "model/%s", t->name);
        ck_assert_msg(safetensors_read_f32(&st, name, t->ndim, t->shape, p + (t->data - like->data)) == 0, "%s", core_last_error());
    }
    safetensors_close(&st);
    return p;
}

START_TEST(micro_batches_give_the_batch_update) {
    char root[] = "/tmp/pmf_micro_XXXXXX", a[256], b[256], p[300];
    ck_assert(mkdtemp(root) != NULL);
    snprintf(a, sizeof a, "%s/full", root);
    snprintf(b, sizeof b, "%s/micro", root);
    PmfTrainConfig c;
    small_config(&c, a, "muon", 1, 8, 8);
    run_ok(&c);
    small_config(&c, b, "muon", 1, 8, 2);
    run_ok(&c);
    PmfModel init;   // the run's initial parameters: the model is a function of the seed
    pmf_model_init(&init, &c.model, c.seed);
    snprintf(p, sizeof p, "%s/checkpoint.safetensors", a);
    float *p1 = read_model(p, &init.ps);
    snprintf(p, sizeof p, "%s/checkpoint.safetensors", b);
    float *p2 = read_model(p, &init.ps);
    const float *p0 = init.ps.data;
    int64_t n0 = init.ps.total;
    double num = 0, den = 0;
    for (int64_t i = 0; i < n0; i++) {
        double d1 = (double)p1[i] - p0[i], d2 = (double)p2[i] - p0[i];
        num += (d1 - d2) * (d1 - d2), den += d1 * d1;
    }
    double e = sqrt(num / den);
    printf("  batch 8 vs 4 micro-batches of 2: update norm %.4g, normalized difference %.2e\n", sqrt(den), e);
    ck_assert_msg(den > 0, "the step changed nothing");
    ck_assert_msg(e < 1e-4, "micro-batched update differs: %.3g", e);
    free(p1), free(p2);
    pmf_model_free(&init);

    // pmf_sample from that checkpoint: an HDF5 batch of the right layout, reproducible per seed.
    snprintf(p, sizeof p, "%s/checkpoint.safetensors", b);
    char h1[300], h2[300], h3[300];
    snprintf(h1, sizeof h1, "%s/s1.h5", root);
    snprintf(h2, sizeof h2, "%s/s2.h5", root);
    snprintf(h3, sizeof h3, "%s/s3.h5", root);
    int cls[2] = {3, 7};
    PmfSampleArgs sa = {p, 0, 6, 4, 1, 2.0f, 0.0f, 1.0f, cls, 2, 5, NULL, NULL, h1, 10, NULL, NULL, NULL, 0};
    ck_assert_msg(pmf_sample_run(&sa) == 0, "%s", core_last_error());
    sa.h5 = h2;
    ck_assert_msg(pmf_sample_run(&sa) == 0, "%s", core_last_error());
    sa.h5 = h3, sa.seed = 6, sa.steps = 2;
    ck_assert_msg(pmf_sample_run(&sa) == 0, "%s", core_last_error());
    uint8_t img[3][6 * 32 * 32];
    int lab[6];
    const char *files[3] = {h1, h2, h3};
    for (int k = 0; k < 3; k++) {
        hid_t f = H5Fopen(files[k], H5F_ACC_RDONLY, H5P_DEFAULT);
        ck_assert(f >= 0);
        hid_t d = H5Dopen2(f, "images", H5P_DEFAULT), l = H5Dopen2(f, "labels", H5P_DEFAULT);
        hid_t sp = H5Dget_space(d);
        hsize_t dims[4];
        ck_assert_int_eq(H5Sget_simple_extent_dims(sp, dims, NULL), 4);
        ck_assert(dims[0] == 6 && dims[1] == 32 && dims[2] == 32 && dims[3] == 1);
        ck_assert(H5Dread(d, H5T_NATIVE_UINT8, H5S_ALL, H5S_ALL, H5P_DEFAULT, img[k]) >= 0);
        ck_assert(H5Dread(l, H5T_NATIVE_INT, H5S_ALL, H5S_ALL, H5P_DEFAULT, lab) >= 0);
        for (int i = 0; i < 6; i++) ck_assert_int_eq(lab[i], cls[i % 2]);
        H5Sclose(sp), H5Dclose(d), H5Dclose(l), H5Fclose(f);
        DsShard sh;   // one shard format: written by dataset/'s writer, read by its reader
        ck_assert_msg(ds_shard_open(files[k], &sh) == 0, "%s", core_last_error());
        ck_assert(sh.n == 6 && sh.resolution == 32 && sh.c == 1 && sh.labels[1] == cls[1]);
        ds_shard_close(&sh);
    }
    ck_assert_msg(memcmp(img[0], img[1], sizeof img[0]) == 0, "pmf_sample is not reproducible for a fixed seed");
    ck_assert_msg(memcmp(img[0], img[2], sizeof img[0]) != 0, "another seed and step count gave the same images");
    printf("  pmf_sample: 6 images (classes 3, 7) to HDF5, identical for one seed, different for another\n");
    // What the caller leaves open comes from the checkpoint's sampling section; what it sets stays.
    PmfSampleArgs open = sa, got;
    open.steps = 0, open.omega = open.t_min = open.t_max = NAN;
    ck_assert_msg(pmf_sample_resolve(&open, &got) == 0, "%s", core_last_error());
    ck_assert_msg(got.steps == 2 && got.omega == 2.5f && got.t_min == 0.125f && got.t_max == 0.875f,
                  "resolved steps %d omega %g interval [%g, %g]", got.steps, got.omega, got.t_min, got.t_max);
    open.omega = 1.25f;
    ck_assert(pmf_sample_resolve(&open, &got) == 0 && got.omega == 1.25f && got.steps == 2);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ck_assert(system(cmd) == 0);
}
END_TEST

// A child saves checkpoints of a real training state in a loop, each with a distinct step and
// parameters all equal to that step; the parent SIGKILLs it at random moments. Whatever instant
// the kill lands on, the file on disk must load and be one whole checkpoint.
// The 224 px perceptual terms need converted weights: without them pmf_train stops before the first
// step with a message naming the converter, never trains on a zeroed network. (featnet's weights
// are committed; its terms are trained with in test_mpi.)
// Every perceptual term sees the same crop of a sample (the official auxloss_fn crops once; spec
// 5.3 step 9): the hook's featnet+features sum equals both terms computed by hand on the crop
// pmf_perceptual_crop names for (step, row). Per-term crops would break the equality.
static Tensor *lpips_fn(void *net, Tape *tp, Tensor *a, Tensor *b) { return lpips_distance(net, tp, a, b); }
static Tensor *features_fn(void *net, Tape *tp, Tensor *a, Tensor *b) { return featnet_feature_distance(tp, net, a, b); }

START_TEST(perceptual_terms_share_one_crop) {
    PmfTrainConfig c;
    small_config(&c, "/tmp/pmf_unused", "muon", 1, 4, 4);
    ck_assert(pmf_train_config_set(&c, "model.perceptual", "featnet+features") == 0);
    ck_assert_msg(pmf_train_config_finish(&c) == 0, "%s", core_last_error());
    PmfObjective o = c.objective;
    PmfPerceptual *hook = pmf_perceptual_open(&c, &o);
    ck_assert_msg(hook != NULL, "%s", core_last_error());
    TestWork w;
    test_work_init(&w, 64 << 20);
    enum { B = 4 };
    int shape[4] = {B, 1, 32, 32};
    Tensor *pred = tensor_new(&w.tp, 4, shape, "pred_x"), *x = tensor_new(&w.tp, 4, shape, "x");
    Rng r;
    rng_init(&r, 3);
    rng_fill_uniform(&r, pred->data, pred->numel, -1, 1);
    rng_fill_uniform(&r, x->data, x->numel, -1, 1);
    float t[B] = {0.1f, 0.3f, 0.5f, 0.9f};   // the last is above perceptual_max_t 0.8: no term
    int64_t rows[B] = {5, 17, 2, 9}, step = 3;
    Tensor *aux = o.perceptual(o.perceptual_ctx, &w.tp, pred, x, t, step, rows);
    CropBox boxes[B];
    for (int b = 0; b < B; b++) {
        int box[4];
        pmf_perceptual_crop(hook, step, rows[b], 32, 32, box);
        boxes[b] = (CropBox){box[0], box[1], box[2], box[3]};
    }
    ck_assert_msg(memcmp(&boxes[0], &boxes[1], sizeof boxes[0]) != 0, "two rows drew the same crop");
    Lpips lp;
    ck_assert(lpips_featnet_load(&lp, NULL) == 0);
    LpipsLossConfig lc = {c.perceptual_max_t, 1.0f, FEATNET_SIZE, 1};
    Tensor *d1 = perceptual_masked_loss(&w.tp, pred, x, t, &lc, boxes, lpips_fn, &lp);
    Tensor *d2 = perceptual_masked_loss(&w.tp, pred, x, t, &lc, boxes, features_fn, &lp.featnet);
    float eps = c.objective.norm_eps;
    for (int b = 0; b < B; b++) {
        double want = c.lpips_lambda * d1->data[b] / (d1->data[b] + eps) + c.convnext_lambda * d2->data[b] / (d2->data[b] + eps);
        ck_assert_msg(fabs(aux->data[b] - want) <= 1e-6 * fabs(want) + 1e-9, "row %d: hook %.9g, one shared crop %.9g", b,
                      aux->data[b], want);
        ck_assert_msg((b == 3) == (want == 0), "row %d: masking", b);
    }
    lpips_free(&lp);
    pmf_perceptual_close(hook);
    test_work_free(&w);
}
END_TEST

// featnet+features runs the featnet once per crop for both terms; the two separate passes
// (PMF_PERCEPTUAL_SEPARATE, read when the hook opens) must give the same loss and the same
// gradient with respect to pred_x, up to the order of the gradient's sums.
static void featnet_terms(int separate, const float *pred0, const float *x0, float *aux, float *grad, int B) {
    PmfTrainConfig c;
    small_config(&c, "/tmp/pmf_unused", "muon", 1, 4, 4);
    ck_assert(pmf_train_config_set(&c, "model.perceptual", "featnet+features") == 0);
    ck_assert_msg(pmf_train_config_finish(&c) == 0, "%s", core_last_error());
    PmfObjective o = c.objective;
    if (separate) setenv("PMF_PERCEPTUAL_SEPARATE", "1", 1);
    PmfPerceptual *hook = pmf_perceptual_open(&c, &o);
    unsetenv("PMF_PERCEPTUAL_SEPARATE");
    ck_assert_msg(hook != NULL, "%s", core_last_error());
    TestWork w;
    test_work_init(&w, 64 << 20);
    int shape[4] = {B, 1, 32, 32};
    Tensor *pred = tensor_from(&w.tp, 4, shape, pred0, "pred_x"), *x = tensor_from(&w.tp, 4, shape, x0, "x");
    pred->requires_grad = 1;
    float t[4] = {0.1f, 0.3f, 0.5f, 0.7f};
    int64_t rows[4] = {5, 17, 2, 9};
    Tensor *a = o.perceptual(o.perceptual_ctx, &w.tp, pred, x, t, 3, rows);
    memcpy(aux, a->data, (size_t)B * sizeof(float));
    tape_backward(&w.tp, a, NULL);
    memcpy(grad, tensor_grad(&w.tp, pred), (size_t)pred->numel * sizeof(float));
    pmf_perceptual_close(hook);
    test_work_free(&w);
}

START_TEST(perceptual_featnet_one_pass_matches_two) {
    enum { B = 4, N = B * 32 * 32 };
    static float pred[N], x[N], aux[2][B], grad[2][N];
    Rng r;
    rng_init(&r, 8);
    rng_fill_uniform(&r, pred, N, -1, 1);
    rng_fill_uniform(&r, x, N, -1, 1);
    for (int k = 0; k < 2; k++) featnet_terms(k, pred, x, aux[k], grad[k], B);
    for (int b = 0; b < B; b++)
        ck_assert_msg(aux[0][b] == aux[1][b], "row %d: one pass %.9g, two passes %.9g", b, aux[0][b], aux[1][b]);
    double e = compare_rel("perceptual grad (one pass vs two)", grad[0], grad[1], N);
    ck_assert_msg(e <= 1e-6 && test_sum(grad[1], N) != 0.0, "gradient rel err %.3g", e);
}
END_TEST

// Every stage of a run can fail, and each failure frees all that the earlier stages opened (the
// ASan build checks for leaks right here) and names the stage.
START_TEST(failure_at_each_stage_frees_everything) {
    const char *stages[] = {"data", "perceptual", "model", "resume", "stream", "memory", "outputs", "step", "finish"};
    for (size_t i = 0; i < sizeof stages / sizeof stages[0]; i++) {
        PmfTrainConfig c;
        small_config(&c, "/tmp/pmf_fault_run", "muon", 2, 4, 2);
        ck_assert(pmf_train_config_set(&c, "model.perceptual", "featnet") == 0);
        ck_assert(pmf_train_config_finish(&c) == 0);
        setenv("PMF_TRAIN_FAULT", stages[i], 1);
        int rc = pmf_train(&c);
        unsetenv("PMF_TRAIN_FAULT");
        ck_assert_msg(rc == 1, "a failure injected at '%s' was not reported", stages[i]);
        ck_assert_msg(strstr(core_last_error(), stages[i]), "stage %s: %s", stages[i], core_last_error());
    }
#if defined(__SANITIZE_ADDRESS__)
    ck_assert_msg(__lsan_do_recoverable_leak_check() == 0, "a failed run leaked memory (see the report above)");
#endif
    ck_assert(system("rm -rf /tmp/pmf_fault_run") == 0);
}
END_TEST

// The memory plan: with a stated budget (PMF_MEMORY_AVAILABLE) the run picks the largest micro-batch
// that fits, and refuses, naming the memory it needs, when micro-batch 1 does not fit either.
START_TEST(memory_plan_picks_a_micro_batch_or_refuses) {
    ck_assert_int_eq(pmf_memory_pick_micro_batch(8, 8, 100, 10, 20), 4);    // 10 + 20 mb <= 100: mb 4
    ck_assert_int_eq(pmf_memory_pick_micro_batch(8, 2, 1000, 10, 20), 2);   // never above what was asked
    ck_assert_int_eq(pmf_memory_pick_micro_batch(6, 6, 75, 10, 20), 3);     // divisors only: 3, not 4
    ck_assert_int_eq(pmf_memory_pick_micro_batch(8, 8, 20, 10, 20), 0);
    PmfTrainConfig c;
    small_config(&c, "/tmp/pmf_plan_run", "muon", 1, 8, 0);
    // A model whose rows cost tens of MB, so the limits below are far from the process's noise.
    ck_assert(pmf_train_config_set(&c, "model.dim", "192") == 0 && pmf_train_config_set(&c, "model.heads", "4") == 0);
    ck_assert(pmf_train_config_set(&c, "model.mlp_hidden", "512") == 0);
    ck_assert(pmf_train_config_finish(&c) == 0);
    unsetenv("PMF_MEMORY_AVAILABLE");
    PmfRun *r = pmf_run_open(&c);
    ck_assert_msg(r != NULL, "%s", core_last_error());
    PmfMemoryPlan p = *pmf_run_memory_plan(r);
    pmf_run_close(r);
    printf("  memory plan: %.1f MB + %.1f MB per row of arena, %.1f MB other, %.1f MB resident; micro-batch %d\n",
           p.intercept / 1048576.0, p.per_row / 1048576.0, p.other / 1048576.0, p.resident / 1048576.0, p.micro_batch);
    ck_assert_msg(p.per_row > ((int64_t)4 << 20), "per-row cost %lld bytes", (long long)p.per_row);
    ck_assert_int_eq(p.micro_batch, 8);
    char lim[64];
    // Unbatched lanes run `chunk` rows at a time (pmf/step.c): room for lanes x chunk rows keeps the
    // whole batch; one row less falls back to micro-batches, the largest divisor of 8 that fits.
    int lanes = core_threads() < 8 ? core_threads() : 8, chunk = pmf_step_chunk_rows(&c.model);
    ck_assert_msg(chunk < (8 + lanes - 1) / lanes, "chunk %d: this model's lanes are not chunked", chunk);
    int in_flight = lanes * chunk, expect = 1;
    for (int d = 1; d <= 8; d++)
        if (8 % d == 0 && d <= in_flight - 1) expect = d;
    for (int room = in_flight; room >= in_flight - 1; room--) {
        snprintf(lim, sizeof lim, "%lld", (long long)(p.other + p.intercept + p.per_row * room));
        setenv("PMF_MEMORY_AVAILABLE", lim, 1);
        r = pmf_run_open(&c);
        ck_assert_msg(r != NULL, "%s", core_last_error());
        int mb = pmf_run_memory_plan(r)->micro_batch;
        pmf_run_close(r);
        int want = room == in_flight ? 8 : expect;
        ck_assert_msg(mb == want, "room for %d rows (%d lanes of %d): micro-batch %d, expected %d", room, lanes, chunk,
                      mb, want);
    }
    snprintf(lim, sizeof lim, "%lld", (long long)(p.other / 2));
    setenv("PMF_MEMORY_AVAILABLE", lim, 1);
    r = pmf_run_open(&c);
    unsetenv("PMF_MEMORY_AVAILABLE");
    ck_assert_msg(r == NULL, "the run opened without memory for one row");
    ck_assert_msg(strstr(core_last_error(), "not enough memory") && strstr(core_last_error(), "GB"), "%s", core_last_error());
    ck_assert(system("rm -rf /tmp/pmf_plan_run") == 0);
}
END_TEST

START_TEST(missing_perceptual_weights_stop_the_run) {
    const char *cases[][3] = {
        {"lpips", "model.perceptual_weights", "convert_weights.py vgg16"},
        {"lpips+convnext", "model.perceptual_weights", "convert_weights.py vgg16"},
        {"convnext", "model.convnext_weights", "convert_weights.py convnextv2"},
    };
    for (int i = 0; i < 3; i++) {
        char root[] = "/tmp/pmf_noweights_XXXXXX", out[256], w[300];
        ck_assert(mkdtemp(root) != NULL);
        snprintf(out, sizeof out, "%s/run", root);
        snprintf(w, sizeof w, "%s/absent.safetensors", root);
        PmfTrainConfig c;
        small_config(&c, out, "muon", 1, 4, 0);
        ck_assert(pmf_train_config_set(&c, "model.perceptual", cases[i][0]) == 0);
        ck_assert(pmf_train_config_set(&c, cases[i][1], w) == 0);
        ck_assert_msg(pmf_train(&c) != 0, "%s trained without its weights", cases[i][0]);
        ck_assert_msg(strstr(core_last_error(), cases[i][2]) && strstr(core_last_error(), "absent.safetensors"),
                      "%s: the error does not name the file and the converter: %s", cases[i][0], core_last_error());
        char p[300];
        snprintf(p, sizeof p, "%s/checkpoint.safetensors", out);
        ck_assert_msg(access(p, F_OK) != 0, "%s wrote a checkpoint", cases[i][0]);
        snprintf(p, sizeof p, "rm -rf '%s'", root);
        ck_assert(system(p) == 0);
    }
}
END_TEST

START_TEST(sigkill_while_saving_leaves_a_loadable_checkpoint) {
    char root[] = "/tmp/pmf_kill_XXXXXX", path[300];
    ck_assert(mkdtemp(root) != NULL);
    snprintf(path, sizeof path, "%s/checkpoint.safetensors", root);
    PmfTrainConfig tc;
    small_config(&tc, root, "muon", 1, 4, 4);   // a small model: many saves fit between kills
    PmfConfig mc = tc.model;
    PmfModel m;
    pmf_model_init(&m, &mc, 1);
    uint8_t *part = pmf_muon_partition(&m);
    Muon mu;
    muon_init(&mu, &m.ps, part, 1e-3f, 0.95f, 0.9f, 0.95f, 1e-8f);
    float hl[1] = {500};
    PmfEma ema;
    pmf_ema_init(&ema, &m.ps, hl, 1);
    PmfTrainState s = {&m, &mu, NULL, &ema, 0, 3, "model:\n  model_str: S/4\n", 0, 0};
    ck_assert(pmf_checkpoint_save(path, &s) == 0);   // a first good checkpoint
    srand(12345);
    int kills = 0;
    for (int round = 0; round < 8; round++) {
        pid_t pid = fork();
        ck_assert(pid >= 0);
        if (pid == 0) {
            for (int64_t k = 1;; k++) {
                s.step = k;
                for (int64_t i = 0; i < m.ps.total; i++) m.ps.data[i] = (float)k;
                if (pmf_checkpoint_save(path, &s)) _exit(3);
            }
        }
        struct timespec ts = {0, (long)(5 + rand() % 400) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int status;
        waitpid(pid, &status, 0);
        kills += WIFSIGNALED(status);
        PmfModel m2;
        pmf_model_init(&m2, &mc, 2);
        Muon mu2;
        muon_init(&mu2, &m2.ps, part, 1e-3f, 0.95f, 0.9f, 0.95f, 1e-8f);
        PmfEma ema2;
        pmf_ema_init(&ema2, &m2.ps, hl, 1);
        PmfTrainState s2 = {&m2, &mu2, NULL, &ema2, 0, 3, NULL, 0, 0};
        ck_assert_msg(pmf_checkpoint_load(path, &s2) == 0, "round %d: %s", round, core_last_error());
        float want = s2.step ? (float)s2.step : m.ps.data[0];
        int whole = 1;
        if (s2.step)
            for (int t = 0; t < m2.ps.n; t++)
                for (int64_t i = 0; i < m2.ps.tensors[t].numel; i++) whole &= m2.ps.tensors[t].data[i] == want;
        printf("  kill %d: the checkpoint on disk is step %lld's, %s\n", round, (long long)s2.step, whole ? "whole" : "MIXED");
        ck_assert_msg(whole, "round %d: checkpoint of step %lld mixes parameters of different saves", round, (long long)s2.step);
        pmf_ema_free(&ema2);
        muon_free(&mu2);
        pmf_model_free(&m2);
    }
    ck_assert_int_eq(kills, 8);
    free(part);
    pmf_ema_free(&ema);
    muon_free(&mu);
    pmf_model_free(&m);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    ck_assert(system(cmd) == 0);
}
END_TEST

int main(void) {
    Suite *s = suite_create("pmf_train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 600);
    tcase_add_test(tc, resume_is_bit_exact_muon);
    tcase_add_test(tc, resume_is_bit_exact_adamw);
    tcase_add_test(tc, resume_is_bit_exact_from_shards);
    tcase_add_test(tc, micro_batches_give_the_batch_update);
    tcase_add_test(tc, builtin_data_is_put_on_the_canvas_per_batch);
    tcase_add_test(tc, sigkill_while_saving_leaves_a_loadable_checkpoint);
    tcase_add_test(tc, missing_perceptual_weights_stop_the_run);
    tcase_add_test(tc, perceptual_terms_share_one_crop);
    tcase_add_test(tc, perceptual_featnet_one_pass_matches_two);
    tcase_add_test(tc, grid_of_a_1000_class_model_stays_small);
    tcase_add_test(tc, failure_at_each_stage_frees_everything);
    tcase_add_test(tc, memory_plan_picks_a_micro_batch_or_refuses);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
