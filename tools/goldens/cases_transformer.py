"""Goldens for op_rope2d, op_attention and op_timestep_embedding (tests/test_ops_transformer.c).

The references are written out from the definitions in core/core.h (and spec 6.2), not from a
library's implementation, so a convention mismatch (pair layout, frequency index, row/col order)
shows up as a forward failure. Op arguments travel in each file's metadata.
"""
import math

import numpy as np
import torch

from goldens_lib import randn, write_case


def rope2d(x, n_heads, start, gh, gw, theta):
    """x (B, T, NH*HS): pairs (2j, 2j+1) of token start+i turn by row*f_j (j < m/2) or col*f_{j-m/2}."""
    B, T, C = x.shape
    HS = C // n_heads
    m = HS // 2
    N = gh * gw
    i = torch.arange(N)
    row, col = (i // gw).double(), (i % gw).double()
    j = torch.arange(m)
    freq = theta ** (-2.0 * (j % (m // 2)).double() / m)                        # (m)
    pos = torch.where(j[None, :] < m // 2, row[:, None], col[:, None])          # (N, m)
    ang = (pos * freq[None, :])[None, :, None, :]                               # (1, N, 1, m)
    xs = x[:, start:start + N].reshape(B, N, n_heads, m, 2)
    a, b = xs[..., 0], xs[..., 1]
    rot = torch.stack([a * torch.cos(ang) - b * torch.sin(ang), a * torch.sin(ang) + b * torch.cos(ang)], -1)
    return torch.cat([x[:, :start], rot.reshape(B, N, C), x[:, start + N:]], dim=1)


def attention(q, k, v, n_heads):
    B, T, C = q.shape
    HS = C // n_heads

    def heads(t):
        return t.reshape(B, T, n_heads, HS).transpose(1, 2)

    s = heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(HS)
    return (torch.softmax(s, dim=-1) @ heads(v)).transpose(1, 2).reshape(B, T, C)


def qkv_heads(qkv, qn, kn, n_heads, start, gh, gw, theta, eps=1e-6):
    """op_qkv_heads from its definition: split [q | k | v], RMSNorm q and k per head with the (HS)
    weights, rope2d both, stack (3, B, T, C)."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    HS = C // n_heads

    def norm(x, w):
        xh = x.reshape(B, T, n_heads, HS)
        y = xh * torch.rsqrt((xh * xh).mean(-1, keepdim=True) + eps) * w
        return y.reshape(B, T, C)
    q = rope2d(norm(qkv[..., :C], qn), n_heads, start, gh, gw, theta)
    k = rope2d(norm(qkv[..., C:2 * C], kn), n_heads, start, gh, gw, theta)
    return torch.stack([q, k, qkv[..., 2 * C:]], dim=0)


def timestep_embedding(s, dim, max_period):
    half = dim // 2
    f = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float64) / half)
    a = s[:, None] * f[None, :]
    return torch.cat([torch.cos(a), torch.sin(a)], dim=-1)


def generate():
    for name, T, start, gh, gw, seed in (("rope2d", 11, 5, 2, 3, 700), ("rope2d_tail", 6, 1, 2, 2, 710)):
        write_case(name, lambda x, start=start, gh=gh, gw=gw: rope2d(x, 2, start, gh, gw, 10000.0),
                   [randn(2, T, 16, seed=seed)], seed=seed + 1,
                   metadata={"n_heads": 2, "start": start, "gh": gh, "gw": gw, "theta": 10000})
    # op_qkv_heads: qkv (2, 3+6+1, 3*2*8): 2 heads of 8, tokens [3, 9) on a 2x3 grid, one after it.
    write_case("qkv_heads", lambda qkv, qn, kn: qkv_heads(qkv, qn, kn, 2, 3, 2, 3, 10000.0),
               [randn(2, 10, 48, seed=740), 1.0 + 0.3 * randn(8, seed=741), 1.0 + 0.3 * randn(8, seed=742)],
               seed=743, metadata={"n_heads": 2, "start": 3, "gh": 2, "gw": 3, "theta": 10000})
    write_case("attention", lambda q, k, v: attention(q, k, v, 2),
               [randn(2, 7, 8, seed=720), randn(2, 7, 8, seed=721), randn(2, 7, 8, seed=722)], seed=723,
               metadata={"n_heads": 2})
    s = np.array([0.05, 0.93, 2.6], dtype=np.float32)
    write_case("timestep_embedding", lambda s: timestep_embedding(s, 8, 10000.0), [s], seed=730,
               metadata={"dim": 8, "max_period": 10000})
