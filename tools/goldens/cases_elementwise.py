"""Goldens for the elementwise ops, unary ops and reductions (tests/test_ops_elementwise.c).

Inputs are chosen so that central differences are valid: relu inputs are at least 0.1 away from
its kink, clip inputs at least 0.1 away from both bounds, sqrt/pow(2.5) inputs positive and away
from 0, and every divisor is 1.5 + |x|. Op arguments the C build function needs (scalars, axes,
keepdim) travel in the file's metadata so one build function serves several rows.
"""
import numpy as np
import torch
import torch.nn.functional as F

from goldens_lib import randn, write_case

# (name, shape of a, shape of b): the numpy broadcasting patterns every binary op is run on.
BROADCAST = [
    ("same", (2, 3, 4), (2, 3, 4)),
    ("last", (2, 3, 4), (4,)),
    ("outer", (2, 1, 4), (1, 3, 1)),
    ("4d", (2, 3, 4, 5), (3, 1, 1)),
    ("shape1", (2, 3), (1,)),
    ("shape1_left", (1,), (3, 4)),
]


def away_from(x, points, margin):
    """Moves every element of x that lies within `margin` of one of `points` out to that margin."""
    x = x.copy()
    for p in points:
        d = x - p
        close = np.abs(d) < margin
        x[close] = p + np.where(d[close] >= 0, margin, -margin)
    return x


def binary_cases():
    ops = {
        "add": lambda a, b: a + b,
        "sub": lambda a, b: a - b,
        "mul": lambda a, b: a * b,
        "div": lambda a, b: a / b,
    }
    for k, (op, fn) in enumerate(ops.items()):
        for j, (pattern, sa, sb) in enumerate(BROADCAST):
            a = randn(*sa, seed=100 + 10 * k + j)
            b = randn(*sb, seed=200 + 10 * k + j)
            if op == "div":
                b = (1.5 + np.abs(b)).astype(np.float32)
            write_case(f"ew_{op}_{pattern}", fn, [a, b], seed=300 + 10 * k + j)


def unary_cases():
    x = randn(3, 5, seed=400)
    write_case("ew_scale", lambda t: -1.7 * t, [x], seed=401, metadata={"s": "-1.7"})
    write_case("ew_add_scalar", lambda t: t + 0.75, [x], seed=402, metadata={"s": "0.75"})
    write_case("ew_silu", F.silu, [randn(3, 5, seed=403, scale=2.0)], seed=404)
    write_case("ew_gelu_tanh", lambda t: F.gelu(t, approximate="tanh"), [randn(3, 5, seed=405, scale=2.0)],
               seed=406)
    write_case("ew_gelu_erf", F.gelu, [randn(3, 5, seed=407, scale=2.0)], seed=408)
    relu_x = away_from(randn(3, 5, seed=409), [0.0], 0.1)
    write_case("ew_relu", F.relu, [relu_x], seed=410)
    write_case("ew_sigmoid", torch.sigmoid, [randn(3, 5, seed=411, scale=2.0)], seed=412)
    write_case("ew_exp", torch.exp, [randn(3, 5, seed=413)], seed=414)
    write_case("ew_sqrt", torch.sqrt, [(0.2 + np.abs(randn(3, 5, seed=415))).astype(np.float32)], seed=416)
    write_case("ew_pow_2_5", lambda t: t ** 2.5, [(0.3 + np.abs(randn(3, 5, seed=417))).astype(np.float32)],
               seed=418, metadata={"p": "2.5"})
    write_case("ew_pow_3", lambda t: t ** 3, [randn(3, 5, seed=419)], seed=420, metadata={"p": "3"})
    # clip(0.05, 1): a third below lo, a third inside, a third above hi, each 0.1 from the bounds.
    u = np.random.default_rng(421).uniform(0, 1, (3, 6))
    clip_x = np.concatenate([-0.95 + 0.9 * u[:, :2], 0.15 + 0.75 * u[:, 2:4], 1.1 + 0.9 * u[:, 4:]], axis=1)
    clip_x = np.random.default_rng(422).permutation(clip_x.ravel()).reshape(3, 6).astype(np.float32)
    write_case("ew_clip", lambda t: torch.clamp(t, 0.05, 1.0), [clip_x], seed=423,
               metadata={"lo": "0.05", "hi": "1.0"})
    write_case("ew_swiglu", lambda a, b: F.silu(a) * b, [randn(2, 3, 4, seed=424, scale=2.0),
                                                          randn(2, 3, 4, seed=425)], seed=426)
    # op_gated_residual: x + a * g, x and a (2, 3, 4), g (4)
    write_case("ew_gated_residual", lambda x, a, g: x + a * g,
               [randn(2, 3, 4, seed=430), randn(2, 3, 4, seed=431), randn(4, seed=432)], seed=433)
    # op_swiglu_packed: h (2, 3, 2*4) = [a | b] -> silu(a) * b
    write_case("ew_swiglu_packed", lambda h: F.silu(h[..., :4]) * h[..., 4:],
               [np.concatenate([randn(2, 3, 4, seed=427, scale=2.0), randn(2, 3, 4, seed=428)], axis=-1)], seed=429)


def reduction_cases():
    # (label, axes mask, torch dims); AXES_ALL = 0xF also covers the axis a 3-D tensor lacks.
    axes = [("all", 0xF, (0, 1, 2)), ("last", 0x4, (2,)), ("ax02", 0x5, (0, 2))]
    x = randn(2, 3, 4, seed=500)
    for k, (op, red) in enumerate((("sum", torch.sum), ("mean", torch.mean))):
        for j, (label, mask, dims) in enumerate(axes):
            for keep in (0, 1):
                def fn(t, red=red, dims=dims, keep=keep):
                    y = red(t, dim=dims, keepdim=bool(keep))
                    return y.reshape(1) if y.dim() == 0 else y

                write_case(f"red_{op}_{label}_k{keep}", fn, [x], seed=510 + 10 * k + 2 * j + keep,
                           metadata={"mask": str(mask), "keepdim": str(keep)})


def generate():
    binary_cases()
    unary_cases()
    reduction_cases()
