"""Goldens for op_matmul and op_linear (tests/test_ops_matmul.c)."""
import torch.nn.functional as F

from goldens_lib import randn, write_case


def generate():
    for ta in (0, 1):
        for tb in (0, 1):
            a = randn(2, 3, 4, 5, seed=1) if not ta else randn(2, 3, 5, 4, seed=1)
            b = randn(2, 3, 5, 6, seed=2) if not tb else randn(2, 3, 6, 5, seed=2)

            def fn(x, y, ta=ta, tb=tb):
                return (x.transpose(-1, -2) if ta else x) @ (y.transpose(-1, -2) if tb else y)

            write_case(f"matmul_ta{ta}_tb{tb}", fn, [a, b], seed=10 + 2 * ta + tb)
            # b shared by every batch (2-D)
            b2 = randn(5, 6, seed=3) if not tb else randn(6, 5, seed=3)
            write_case(f"matmul_shared_ta{ta}_tb{tb}", fn, [a, b2], seed=20 + 2 * ta + tb)
    write_case("linear_bias", lambda x, w, b: F.linear(x, w, b),
               [randn(2, 3, 7, seed=4), randn(5, 7, seed=5), randn(5, seed=6)], seed=30)
    write_case("linear_nobias", lambda x, w: F.linear(x, w),
               [randn(4, 7, seed=7), randn(5, 7, seed=8)], seed=31)
