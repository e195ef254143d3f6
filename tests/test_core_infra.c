// tests/test_core_infra.c: the engine's plumbing: arena, parameter store, views, tape modes,
// stop-gradient / drop-tangent, and the Philox RNG. Expected values come from closed forms
// (gradients of linear maps), the Random123 known-answer vectors, and distribution moments.
// Uses only tensor.c views and core/ops_matmul.c, so it links before the other op files land.
#include "harness.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int aligned64(const void *p) { return ((uintptr_t)p & 63u) == 0; }

// ---------------------------------------------------------------------------------------------
// Arena

START_TEST(arena_alignment) {
    Arena a;
    arena_init(&a, 4096);
    const size_t sizes[] = {1, 3, 64, 65, 100, 7, 0, 129, 4000};
    unsigned char *prev = NULL;
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        unsigned char *p = arena_alloc(&a, sizes[i]);
        ck_assert_msg(aligned64(p), "block %zu (%zu bytes) at %p is not 64-byte aligned", i, sizes[i], (void *)p);
        ck_assert_ptr_ne(p, prev);   // even a 0-byte request gets its own block
        if (sizes[i]) memset(p, 0xab, sizes[i]);
        prev = p;
    }
    arena_free(&a);
}
END_TEST

START_TEST(arena_blocks_do_not_overlap) {
    Arena a;
    arena_init(&a, 1024);
    enum { N = 40 };
    unsigned char *p[N];
    size_t n[N];
    for (int i = 0; i < N; i++) {
        n[i] = (size_t)(37 * i % 300 + 1);
        p[i] = arena_alloc(&a, n[i]);
        memset(p[i], i, n[i]);
    }
    for (int i = 0; i < N; i++)
        for (size_t j = 0; j < n[i]; j++) ck_assert_int_eq(p[i][j], i);
    arena_free(&a);
}
END_TEST

// The allocation pattern of one training step: small blocks, one larger than a chunk, small again.
static void arena_step(Arena *a, void **out) {
    const size_t sizes[] = {1000, 3000, 5000, 200, 3900, 10, 20000, 64};
    for (int i = 0; i < 8; i++) {
        out[i] = arena_alloc(a, sizes[i]);
        memset(out[i], 0x5a, sizes[i]);
    }
}

START_TEST(arena_reset_keeps_chunks) {
    Arena a;
    arena_init(&a, 4096);
    void *first[8], *second[8];
    arena_step(&a, first);
    size_t reserved = a.reserved, used = a.used;
    ck_assert_uint_gt(reserved, 0);
    ck_assert_uint_ge(reserved, used);
    arena_reset(&a);
    ck_assert_uint_eq(a.used, 0);
    arena_step(&a, second);
    ck_assert_msg(a.reserved == reserved, "reserved grew from %zu to %zu on an identical second step", reserved,
                  a.reserved);
    ck_assert_uint_eq(a.used, used);
    for (int i = 0; i < 8; i++) ck_assert_ptr_eq(first[i], second[i]);   // same blocks handed out again
    // A third round, ten times over: still no growth.
    for (int r = 0; r < 10; r++) {
        arena_reset(&a);
        arena_step(&a, second);
    }
    ck_assert_uint_eq(a.reserved, reserved);
    arena_free(&a);
    ck_assert_uint_eq(a.reserved, 0);
    ck_assert_ptr_null(a.chunks);
}
END_TEST

START_TEST(arena_peak) {
    Arena a;
    arena_init(&a, 1 << 16);
    arena_alloc(&a, 1000);   // 1024 after rounding
    arena_alloc(&a, 64);
    ck_assert_uint_eq(a.used, 1024 + 64);
    ck_assert_uint_eq(a.peak, 1024 + 64);
    arena_reset(&a);
    ck_assert_uint_eq(a.used, 0);
    ck_assert_uint_eq(a.peak, 1024 + 64);   // peak survives a reset
    arena_alloc(&a, 100);
    ck_assert_uint_eq(a.peak, 1024 + 64);
    arena_alloc(&a, 5000);   // 5056
    ck_assert_uint_eq(a.used, 128 + 5056);
    ck_assert_uint_eq(a.peak, 128 + 5056);
    arena_free(&a);
}
END_TEST

START_TEST(arena_big_allocation) {
    Arena a;
    arena_init(&a, 4096);
    size_t big = 10 * 4096 + 17;
    unsigned char *small = arena_alloc(&a, 100);
    unsigned char *p = arena_alloc(&a, big);
    ck_assert(aligned64(p));
    memset(p, 0x11, big);   // ASan catches a short block
    ck_assert_uint_ge(a.reserved, 4096 + big);
    unsigned char *after = arena_alloc(&a, 100);   // allocation goes on after the big block
    memset(small, 1, 100);
    memset(after, 2, 100);
    ck_assert_int_eq(p[0], 0x11);
    ck_assert_int_eq(p[big - 1], 0x11);
    arena_free(&a);
}
END_TEST

START_TEST(arena_calloc_zeroes_reused_memory) {
    Arena a;
    arena_init(&a, 4096);
    unsigned char *p = arena_alloc(&a, 3000);
    memset(p, 0xff, 3000);
    arena_reset(&a);
    unsigned char *q = arena_calloc(&a, 3000);
    ck_assert_ptr_eq(p, q);
    for (int i = 0; i < 3000; i++) ck_assert_int_eq(q[i], 0);
    arena_free(&a);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Parameter store

START_TEST(params_layout) {
    ParamStore ps;
    params_init(&ps, 8);
    const int sa[2] = {3, 5}, sb[1] = {7}, sc[4] = {2, 2, 2, 2}, sd[1] = {1}, se[2] = {17, 1};
    Tensor *a = params_declare(&ps, "a", 2, sa);
    Tensor *b = params_declare(&ps, "blk.b", 1, sb);
    Tensor *c = params_declare(&ps, "c", 4, sc);
    Tensor *d = params_declare(&ps, "d", 1, sd);
    Tensor *e = params_declare(&ps, "e", 2, se);
    params_finalize(&ps);
    ck_assert_int_eq(ps.n, 5);
    ck_assert(ps.finalized);
    ck_assert_ptr_eq(params_find(&ps, "a"), a);
    ck_assert_ptr_eq(params_find(&ps, "blk.b"), b);
    ck_assert_ptr_eq(params_find(&ps, "c"), c);
    ck_assert_ptr_eq(params_find(&ps, "e"), e);
    ck_assert_ptr_null(params_find(&ps, "blk"));
    ck_assert_ptr_null(params_find(&ps, "nope"));
    ck_assert_int_eq(a->numel, 15);
    ck_assert_int_eq(c->numel, 16);
    ck_assert_int_eq(e->numel, 17);
    ck_assert_int_eq(a->stride[0], 5);
    ck_assert_int_eq(a->stride[1], 1);
    ck_assert_str_eq(b->name, "blk.b");
    Tensor *ts[5] = {a, b, c, d, e};
    int64_t sum = 0;
    for (int i = 0; i < 5; i++) {
        Tensor *t = ts[i];
        sum += t->numel;
        ck_assert_msg(aligned64(t->data) && aligned64(t->grad), "'%s' not 64-byte aligned", t->name);
        ck_assert_int_eq((t->data - ps.data) % 16, 0);
        ck_assert_int_eq(t->grad - ps.grad, t->data - ps.data);   // grads mirror the data layout
        ck_assert(t->requires_grad);
        ck_assert_ptr_null(t->base);
        ck_assert(t->data >= ps.data && t->data + t->numel <= ps.data + ps.total);
        for (int64_t k = 0; k < t->numel; k++) ck_assert(t->data[k] == 0.0f && t->grad[k] == 0.0f);
        for (int j = 0; j < i; j++) {   // ranges do not overlap
            Tensor *u = ts[j];
            ck_assert(t->data >= u->data + u->numel || u->data >= t->data + t->numel);
        }
    }
    ck_assert_int_ge(ps.total, sum);
    params_free(&ps);
}
END_TEST

START_TEST(params_grads_and_zero_grad) {
    // Gradients of a linear layer over parameters land in the store's flat grad array.
    ParamStore ps;
    params_init(&ps, 4);
    const int sw[2] = {2, 3}, sb[1] = {2};
    Tensor *w = params_declare(&ps, "w", 2, sw);
    Tensor *b = params_declare(&ps, "b", 1, sb);
    params_finalize(&ps);
    for (int i = 0; i < 6; i++) w->data[i] = 0.5f * (float)i - 1.0f;
    b->data[0] = 0.25f, b->data[1] = -0.5f;
    Arena arena;
    arena_init(&arena, 1 << 16);
    Tape tp;
    tape_init(&tp, &arena);
    const float xv[12] = {1, 2, 3, -1, 0, 4, 0.5f, 0.5f, 0.5f, 2, -3, 1};
    const int sx[2] = {4, 3};
    Tensor *x = tensor_from(&tp, 2, sx, xv, "x");
    Tensor *y = op_linear(&tp, x, w, b);
    ck_assert(y->requires_grad);
    tape_backward(&tp, y, NULL);
    // d sum(y) / dw[n][k] = sum_i x[i][k]; / db[n] = rows of x.
    const float colsum[3] = {2.5f, -0.5f, 8.5f};
    for (int n = 0; n < 2; n++)
        for (int k = 0; k < 3; k++) ck_assert_float_eq_tol(ps.grad[w->data - ps.data + 3 * n + k], colsum[k], 1e-6f);
    ck_assert_ptr_eq(tensor_grad(&tp, w), w->grad);
    ck_assert_float_eq_tol(b->grad[0], 4.0f, 1e-6f);
    ck_assert_float_eq_tol(b->grad[1], 4.0f, 1e-6f);
    ck_assert_ptr_null(tensor_grad(&tp, x));   // a plain input does not require grad
    params_zero_grad(&ps);
    for (int64_t i = 0; i < ps.total; i++) ck_assert(ps.grad[i] == 0.0f);
    ck_assert(w->data[1] == -0.5f);   // zero_grad leaves the data alone
    tape_free(&tp);
    arena_free(&arena);
    params_free(&ps);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Views

static Tensor *iota(Tape *tp, int ndim, const int *shape, const char *name) {
    Tensor *t = tensor_new(tp, ndim, shape, name);
    for (int64_t i = 0; i < t->numel; i++) t->data[i] = (float)i;
    return t;
}

START_TEST(views_share_data) {
    TestWork c;
    test_work_init(&c, 1 << 16);
    Tape *tp = &c.tp;
    const int s43[2] = {4, 3}, s26[2] = {2, 6}, perm[2] = {1, 0};
    Tensor *x = iota(tp, 2, s43, "x");
    Tensor *r = op_reshape(tp, x, 2, s26);
    ck_assert_ptr_eq(r->data, x->data);
    ck_assert_ptr_eq(r->base, x);
    ck_assert_int_eq(r->shape[0], 2);
    ck_assert_int_eq(r->shape[1], 6);
    ck_assert(tensor_is_contiguous(r));
    ck_assert(r->data[1 * 6 + 0] == 6.0f);
    const int inferred[2] = {-1, 2};
    Tensor *r2 = op_reshape(tp, x, 2, inferred);
    ck_assert_int_eq(r2->shape[0], 6);

    Tensor *p = op_permute(tp, x, perm);
    ck_assert_ptr_eq(p->data, x->data);
    ck_assert_int_eq(p->shape[0], 3);
    ck_assert_int_eq(p->shape[1], 4);
    ck_assert_int_eq(p->stride[0], 1);
    ck_assert_int_eq(p->stride[1], 3);
    ck_assert(!tensor_is_contiguous(p));
    // p[i][j] == x[j][i]
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 4; j++) ck_assert(p->data[i * p->stride[0] + j * p->stride[1]] == (float)(3 * j + i));

    Tensor *s = op_slice(tp, x, 0, 1, 3);
    ck_assert_ptr_eq(s->data, x->data + 3);
    ck_assert_int_eq(s->offset, 3);
    ck_assert_int_eq(s->shape[0], 2);
    ck_assert(tensor_is_contiguous(s));
    Tensor *s1 = op_slice(tp, x, -1, 1, 2);   // a column: strided
    ck_assert_ptr_eq(s1->data, x->data + 1);
    ck_assert_int_eq(s1->shape[0], 4);
    ck_assert_int_eq(s1->shape[1], 1);
    ck_assert(!tensor_is_contiguous(s1));
    // A view of a view points at the original base, offsets add up.
    Tensor *ss = op_slice(tp, op_slice(tp, x, 0, 1, 4), 0, 1, 3);
    ck_assert_ptr_eq(ss->base, x);
    ck_assert_ptr_eq(ss->data, x->data + 6);
    ck_assert_int_eq(ss->offset, 6);
    // Writes through a view show in the base.
    s->data[0] = 100.0f;
    ck_assert(x->data[3] == 100.0f);
    // Tangents alias too.
    float *tx = tensor_attach_tangent(tp, x);
    tx[7] = 2.5f;
    Tensor *st = op_slice(tp, x, 0, 2, 4);
    ck_assert_ptr_eq(st->tangent, tx + 6);
    ck_assert(st->tangent[1] == 2.5f);
    test_work_free(&c);
}
END_TEST

START_TEST(view_grads_land_in_base) {
    TestWork c;
    test_work_init(&c, 1 << 16);
    Tape *tp = &c.tp;
    const int s43[2] = {4, 3}, s23[2] = {2, 3};
    Tensor *x = iota(tp, 2, s43, "x");
    x->requires_grad = 1;   // a leaf
    const float wv[6] = {1, 2, 3, -1, 0.5f, 4};
    Tensor *w = tensor_from(tp, 2, s23, wv, "w");   // constant
    Tensor *s = op_slice(tp, x, 0, 1, 3);            // rows 1, 2
    ck_assert(s->requires_grad);
    Tensor *y = op_linear(tp, s, w, NULL);           // (2, 2)
    tape_backward(tp, y, NULL);
    // d sum(s w^T) / ds[i][k] = sum_n w[n][k] = (0, 2.5, 7) for rows 1, 2; rows 0, 3 untouched.
    const float want[12] = {0, 0, 0, 0, 2.5f, 7, 0, 2.5f, 7, 0, 0, 0};
    float *g = tensor_grad(tp, x);
    ck_assert_ptr_nonnull(g);
    ck_assert_ptr_eq(tensor_grad(tp, s), g + 3);
    for (int i = 0; i < 12; i++) ck_assert_msg(fabsf(g[i] - want[i]) < 1e-6f, "grad x[%d] = %g, want %g", i, g[i], want[i]);

    // A new graph: a reshape of a slice; the gradient lands in the base's rows 2 and 3.
    tape_reset(tp);   // x and its grad buffer are gone with the arena
    const int s16[2] = {1, 6};
    const float w2v[6] = {1, 1, 1, 1, 1, 10};
    x = iota(tp, 2, s43, "x");
    x->requires_grad = 1;
    Tensor *w2 = tensor_from(tp, 2, s16, w2v, "w2");
    Tensor *r = op_reshape(tp, op_slice(tp, x, 0, 2, 4), 2, s16);
    ck_assert_ptr_eq(r->base, x);
    Tensor *y2 = op_linear(tp, r, w2, NULL);   // (1, 1)
    const float seed = 2.0f;
    tape_backward(tp, y2, &seed);
    g = tensor_grad(tp, x);
    for (int i = 0; i < 6; i++) ck_assert(g[i] == 0.0f);
    for (int i = 0; i < 6; i++) ck_assert_float_eq_tol(g[6 + i], 2.0f * w2v[i], 1e-6f);
    test_work_free(&c);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Tape modes, stop-gradient, drop-tangent

START_TEST(tape_no_record) {
    TestWork c;
    test_work_init(&c, 1 << 16);
    Tape *tp = &c.tp;
    const int s23[2] = {2, 3}, s33[2] = {3, 3};
    Tensor *x = iota(tp, 2, s23, "x");
    Tensor *w = iota(tp, 2, s33, "w");
    w->requires_grad = 1;
    ck_assert(tp->recording);
    tape_set_recording(tp, 0);
    Tensor *y = op_linear(tp, x, w, NULL);
    Tensor *z = op_matmul(tp, y, w, 0, 1);
    ck_assert(!y->requires_grad);
    ck_assert(!z->requires_grad);
    ck_assert_int_eq(tp->n_nodes, 0);
    ck_assert(y->data[0] == 0 * 0 + 1 * 1 + 2 * 2);   // forward still runs
    tape_set_recording(tp, 1);
    Tensor *y2 = op_linear(tp, x, w, NULL);
    ck_assert(y2->requires_grad);
    ck_assert_int_eq(tp->n_nodes, 1);
    ck_assert_str_eq(tp->nodes[0].op, "linear");
    // Ops over constants only record nothing even while recording.
    op_matmul(tp, x, x, 0, 1);
    ck_assert_int_eq(tp->n_nodes, 1);
    tape_reset(tp);
    ck_assert_int_eq(tp->n_nodes, 0);
    ck_assert_uint_eq(c.arena.used, 0);
    test_work_free(&c);
}
END_TEST

START_TEST(stop_gradient_blocks) {
    TestWork c;
    test_work_init(&c, 1 << 16);
    Tape *tp = &c.tp;
    const int s23[2] = {2, 3};
    const float xv[6] = {1, 2, 3, 4, -5, 6};
    Tensor *x = tensor_from(tp, 2, s23, xv, "x");
    x->requires_grad = 1;
    tensor_attach_tangent(tp, x)[0] = 1.0f;
    Tensor *sg = op_stop_gradient(tp, x);
    ck_assert(!sg->requires_grad);
    ck_assert_ptr_null(sg->tangent);
    for (int i = 0; i < 6; i++) ck_assert(sg->data[i] == xv[i]);
    // y = x sg(x)^T: only the first factor carries gradient.
    Tensor *y = op_matmul(tp, x, sg, 0, 1);
    tape_backward(tp, y, NULL);
    // d sum(A B^T)/dA[i][k] = sum_n B[n][k] = column sums of x (the full gradient would be twice that).
    const float colsum[3] = {5, -3, 9};
    float *g = tensor_grad(tp, x);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++) ck_assert_float_eq_tol(g[3 * i + k], colsum[k], 1e-6f);
    // Tangent: only the first factor's: ty = tx sg^T, tx = e_00 -> ty[0][n] = x[n][0], row 1 zero.
    ck_assert_ptr_nonnull(y->tangent);
    ck_assert_float_eq_tol(y->tangent[0], 1.0f, 1e-6f);
    ck_assert_float_eq_tol(y->tangent[1], 4.0f, 1e-6f);
    ck_assert_float_eq_tol(y->tangent[2], 0.0f, 1e-6f);
    ck_assert_float_eq_tol(y->tangent[3], 0.0f, 1e-6f);
    // An op whose only input is stopped records nothing.
    int before = tp->n_nodes;
    Tensor *z = op_matmul(tp, sg, sg, 1, 0);
    ck_assert(!z->requires_grad);
    ck_assert_int_eq(tp->n_nodes, before);
    test_work_free(&c);
}
END_TEST

START_TEST(drop_tangent_keeps_grad) {
    TestWork c;
    test_work_init(&c, 1 << 16);
    Tape *tp = &c.tp;
    const int s23[2] = {2, 3}, s23w[2] = {2, 3};
    const float xv[6] = {1, 2, 3, 4, 5, 6}, wv[6] = {1, 0, -1, 2, 1, 0};
    Tensor *x = tensor_from(tp, 2, s23, xv, "x");
    x->requires_grad = 1;
    float *tx = tensor_attach_tangent(tp, x);
    for (int i = 0; i < 6; i++) tx[i] = 1.0f;
    Tensor *w = tensor_from(tp, 2, s23w, wv, "w");
    // With the tangent: ty = tx w^T = (0, 3) per row.
    Tensor *y1 = op_linear(tp, x, w, NULL);
    ck_assert_ptr_nonnull(y1->tangent);
    ck_assert_float_eq_tol(y1->tangent[0], 0.0f, 1e-6f);
    ck_assert_float_eq_tol(y1->tangent[1], 3.0f, 1e-6f);
    Tensor *d = op_drop_tangent(tp, x);
    ck_assert_ptr_null(d->tangent);
    ck_assert_ptr_eq(d->data, x->data);
    ck_assert(d->requires_grad);
    ck_assert_ptr_nonnull(x->tangent);   // the base keeps its tangent
    // views of the tangent-free view stay tangent-free (they once took the base's tangent)
    Tensor *ds = op_slice(tp, op_permute(tp, d, (const int[]){1, 0}), 0, 1, 2);
    ck_assert_ptr_null(ds->tangent);
    ck_assert_ptr_nonnull(op_slice(tp, x, 1, 1, 3)->tangent);
    ck_assert_ptr_eq(op_slice(tp, x, 1, 1, 3)->tangent, tx + 1);
    Tensor *y = op_linear(tp, d, w, NULL);
    ck_assert_ptr_null(y->tangent);
    ck_assert(y->requires_grad);
    tape_reset(tp);   // drop y1's node: backward only through y
    x = tensor_from(tp, 2, s23, xv, "x");
    x->requires_grad = 1;
    tensor_attach_tangent(tp, x);
    w = tensor_from(tp, 2, s23w, wv, "w");
    y = op_linear(tp, op_drop_tangent(tp, x), w, NULL);
    tape_backward(tp, y, NULL);
    const float colsum[3] = {3, 1, -1};
    float *g = tensor_grad(tp, x);
    for (int i = 0; i < 2; i++)
        for (int k = 0; k < 3; k++) ck_assert_float_eq_tol(g[3 * i + k], colsum[k], 1e-6f);
    test_work_free(&c);
}
END_TEST

// ---------------------------------------------------------------------------------------------
// Philox and the RNG

// Known-answer vectors of Philox4x32-10 from Random123 (kat_vectors).
START_TEST(philox_known_answers) {
    static const struct {
        uint32_t ctr[4], key[2], out[4];
    } kat[] = {
        {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
        {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
         {0xffffffff, 0xffffffff},
         {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
        {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
         {0xa4093822, 0x299f31d0},
         {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
    };
    for (size_t i = 0; i < sizeof kat / sizeof kat[0]; i++) {
        uint32_t out[4];
        philox4x32_10(kat[i].ctr, kat[i].key, out);
        for (int j = 0; j < 4; j++)
            ck_assert_msg(out[j] == kat[i].out[j], "vector %zu word %d: 0x%08x, want 0x%08x", i, j, out[j], kat[i].out[j]);
    }
    // The 64-bit convenience form puts (counter, key) in the low words.
    uint32_t a[4], b[4];
    const uint32_t c[4] = {0x89abcdefu, 0x01234567u, 0, 0}, k[2] = {0xdeadbeefu, 0x00c0ffeeu};
    philox4x32(0x0123456789abcdefull, 0x00c0ffeedeadbeefull, a);
    philox4x32_10(c, k, b);
    ck_assert_mem_eq(a, b, sizeof a);
}
END_TEST

START_TEST(rng_thread_invariance) {
    enum { N = 100003 };
    float *a = malloc(N * sizeof(float)), *b = malloc(N * sizeof(float));
    int saved = core_threads();
    Rng r;
    core_set_threads(1);
    rng_init(&r, 1234);
    rng_fill_normal(&r, a, N, 0.5f, 2.0f);
    core_set_threads(2);
    rng_init(&r, 1234);
    rng_fill_normal(&r, b, N, 0.5f, 2.0f);
    ck_assert_mem_eq(a, b, N * sizeof(float));
    core_set_threads(1);
    rng_init(&r, 99);
    rng_fill_uniform(&r, a, N, -1.0f, 1.0f);
    core_set_threads(2);
    rng_init(&r, 99);
    rng_fill_uniform(&r, b, N, -1.0f, 1.0f);
    ck_assert_mem_eq(a, b, N * sizeof(float));
    core_set_threads(saved);
    free(a);
    free(b);
}
END_TEST

START_TEST(rng_counter_continuity) {
    enum { N1 = 37, N2 = 1000 };
    float one[N1 + N2], two[N1 + N2];
    Rng r1, r2;
    rng_init(&r1, 42);
    rng_fill_normal(&r1, two, N1, 0.0f, 1.0f);
    rng_fill_normal(&r1, two + N1, N2, 0.0f, 1.0f);
    rng_init(&r2, 42);
    rng_fill_normal(&r2, one, N1 + N2, 0.0f, 1.0f);
    ck_assert_mem_eq(one, two, sizeof one);
    ck_assert_uint_eq(r1.offset, N1 + N2);
    ck_assert_uint_eq(r2.offset, N1 + N2);
    // Uniform fills continue the same way, and the one-value draws match the fills.
    rng_init(&r1, 7);
    rng_fill_uniform(&r1, two, 5, 0.0f, 1.0f);
    rng_fill_uniform(&r1, two + 5, 20, 0.0f, 1.0f);
    rng_init(&r2, 7);
    for (int i = 0; i < 25; i++) ck_assert((float)rng_uniform(&r2) == two[i]);
    rng_init(&r2, 42);
    for (int i = 0; i < 50; i++) ck_assert_float_eq_tol((float)rng_normal(&r2), one[i], 1e-6f);
    // Another seed gives another stream.
    rng_init(&r2, 43);
    rng_fill_normal(&r2, two, N1 + N2, 0.0f, 1.0f);
    int same = 0;
    for (int i = 0; i < N1 + N2; i++) same += one[i] == two[i];
    ck_assert_int_lt(same, 5);
}
END_TEST

static void moments(const float *x, int n, double *mean, double *std) {
    double s = 0, s2 = 0;
    for (int i = 0; i < n; i++) s += x[i];
    *mean = s / n;
    for (int i = 0; i < n; i++) s2 += (x[i] - *mean) * (x[i] - *mean);
    *std = sqrt(s2 / (n - 1));
}

START_TEST(rng_moments) {
    enum { N = 100000 };
    float *x = malloc(N * sizeof(float));
    Rng r;
    rng_init(&r, 2024);
    double m, s;
    // Normal(2, 3): bounds are 5 standard errors (3/sqrt(N) for the mean, 3/sqrt(2N) for the std).
    rng_fill_normal(&r, x, N, 2.0f, 3.0f);
    moments(x, N, &m, &s);
    ck_assert_msg(fabs(m - 2.0) < 5 * 3.0 / sqrt(N), "normal mean %g", m);
    ck_assert_msg(fabs(s - 3.0) < 5 * 3.0 / sqrt(2.0 * N), "normal std %g", s);
    int inside = 0;
    for (int i = 0; i < N; i++) inside += fabsf(x[i] - 2.0f) < 3.0f;
    double frac = (double)inside / N;   // P(|z| < 1) = 0.682689
    ck_assert_msg(fabs(frac - 0.682689) < 5 * sqrt(0.6827 * 0.3173 / N), "P(|z|<1) = %g", frac);
    for (int i = 0; i < N; i++) ck_assert(isfinite(x[i]));
    // Uniform[-1, 3): mean 1, std 4/sqrt(12).
    rng_fill_uniform(&r, x, N, -1.0f, 3.0f);
    moments(x, N, &m, &s);
    double su = 4.0 / sqrt(12.0);
    ck_assert_msg(fabs(m - 1.0) < 5 * su / sqrt(N), "uniform mean %g", m);
    ck_assert_msg(fabs(s - su) < 5 * 0.13 * 4.0 / sqrt(N), "uniform std %g", s);   // se(std) = 0.129 range/sqrt(N)
    int below_half = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_msg(x[i] >= -1.0f && x[i] < 3.0f, "uniform value %g outside [-1, 3)", x[i]);
        below_half += x[i] < 1.0f;
    }
    ck_assert(fabs((double)below_half / N - 0.5) < 5 * 0.5 / sqrt(N));
    free(x);
}
END_TEST

int main(void) {
    Suite *s = suite_create("core_infra");
    TCase *tc = tcase_create("arena");
    tcase_add_test(tc, arena_alignment);
    tcase_add_test(tc, arena_blocks_do_not_overlap);
    tcase_add_test(tc, arena_reset_keeps_chunks);
    tcase_add_test(tc, arena_peak);
    tcase_add_test(tc, arena_big_allocation);
    tcase_add_test(tc, arena_calloc_zeroes_reused_memory);
    suite_add_tcase(s, tc);
    tc = tcase_create("params");
    tcase_add_test(tc, params_layout);
    tcase_add_test(tc, params_grads_and_zero_grad);
    suite_add_tcase(s, tc);
    tc = tcase_create("views_and_tape");
    tcase_add_test(tc, views_share_data);
    tcase_add_test(tc, view_grads_land_in_base);
    tcase_add_test(tc, tape_no_record);
    tcase_add_test(tc, stop_gradient_blocks);
    tcase_add_test(tc, drop_tangent_keeps_grad);
    suite_add_tcase(s, tc);
    tc = tcase_create("rng");
    tcase_add_test(tc, philox_known_answers);
    tcase_add_test(tc, rng_thread_invariance);
    tcase_add_test(tc, rng_counter_continuity);
    tcase_add_test(tc, rng_moments);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
