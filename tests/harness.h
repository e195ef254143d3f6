// tests/harness.h: shared test helpers: golden files, normalized comparisons, and the
// table-driven per-op check (golden forward, backward and tangent; finite differences of both).
#ifndef PMF_TEST_HARNESS_H
#define PMF_TEST_HARNESS_H

#include <check.h>
#include <stdio.h>

#include "core/core.h"

// Open tests/goldens/<stem>.safetensors; fails the test with the loader's message if it cannot.
void golden_open(SafeTensors *st, const char *stem);
int golden_has(const SafeTensors *st, const char *name);
// A whole file, malloc'ed (one spare byte); fails the test if it cannot be read.
unsigned char *test_read_file(const char *path, size_t *n);
// A dense tensor holding the golden tensor `name` (any stored float dtype, up to 4-D).
Tensor *golden_tensor(Tape *tp, const SafeTensors *st, const char *name);

// An arena and a tape on it, as most tests need.
typedef struct TestWork {
    Arena arena;
    Tape tp;
} TestWork;
void test_work_init(TestWork *w, size_t arena_bytes);
void test_work_free(TestWork *w);

// Sum of x[0..n) in double (checksums of hash-filled weights against their Python twins).
double test_sum(const float *x, int64_t n);

// Normalized error sqrt(sum (got-want)^2 / sum want^2) (absolute when want is all zeros).
// Prints a line with the label, the error and the worst element.
double compare_rel(const char *label, const float *got, const float *want, int64_t n);
double compare_rel_d(const char *label, const double *got, const double *want, int64_t n);

// One row of an op table. `build` applies the op under test to the inputs in0..in{n_in-1}
// (it may read extra constants, e.g. ids, from the golden file) and returns a dense tensor.
typedef Tensor *(*OpBuildFn)(Tape *tp, Tensor **in, const SafeTensors *golden);

typedef struct OpCase {
    const char *golden;   // stem of the golden file written by tools/goldens/gen_goldens.py
    OpBuildFn build;
    int n_in;
    unsigned nodiff;      // bit i set: input i is a constant (no gradient, no tangent)
    double tol;           // relative error vs PyTorch (forward, gradients, tangent)
    double fd_tol;        // relative error vs central finite differences
    double fd_eps;        // finite-difference step
} OpCase;

// Runs every check of one row with ck_assert: (a) forward vs golden out, (b) input gradients vs
// golden and vs central differences of sum(out * g), (c) output tangent vs golden and vs central
// differences along the golden input tangents.
void run_op_case(const OpCase *c);

// Adds one Check test per row to tc (each row becomes its own loop index). One table per test
// program: a second call aborts (the rows are found through one static pointer).
void add_op_table(TCase *tc, const OpCase *table, int n);

// Runs the program `name` built beside this test (e.g. "pmf_eval") with `args` (shell words),
// stdout and stderr into out (n bytes, NUL-terminated). Returns its exit status.
int test_run_program(const char *name, const char *args, char *out, size_t n);

// Runs a suite and returns the process exit status.
int run_suite(Suite *s);

#endif
