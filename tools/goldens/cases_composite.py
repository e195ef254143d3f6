"""Golden for tests/test_composite_block.c: two pre-norm pMF transformer blocks (spec 6.2).

Written from the spec with plain torch ops (no pmf code, no op_* semantics read from C):
  x (B=2, T=10, D=16): 4 prefix tokens, then 6 patch tokens on a 2x3 grid; 2 heads of size 8.
  per block:
    h = rmsnorm(x) * norm1                       (eps 1e-6, as every norm here)
    q, k, v = h Wq^T, h Wk^T, h Wv^T             (no bias)
    q, k: per head, rmsnorm over the head size with one HS-sized weight each (qnorm, knorm)
    q, k: 2-D RoPE (theta 1e4) on the patch tokens only: m = HS/2 pairs (x[2j], x[2j+1]);
          pair j < m/2 turns by row * theta^(-2j/m), pair j >= m/2 by col * theta^(-2(j-m/2)/m)
    a = softmax(q k^T / sqrt(HS)) v per head
    x = x + (a Wo^T) * attn_scale
    h = rmsnorm(x) * norm2
    x = x + ((silu(h W1^T) * (h W3^T)) W2^T) * mlp_scale          (hidden 40)
Gates and norm weights are random and nonzero (not the zero/one init) so every path is exercised.

Stored (float32, exact answers for the float32-rounded inputs, computed in float64):
  x, p.<name>           input and parameters          t.x, t.<name>   tangents (random)
  out, tout             output and its JVP along all tangents at once
  g                     upstream gradient             gr.x, gr.<name> d sum(out * g) / d input
"""
import math
import os

import numpy as np
import torch

from goldens_lib import OUT_DIR, f32, jvp, save_safetensors

B, T, D, NH, HS, HID = 2, 10, 16, 2, 8, 40
PREFIX, GH, GW, THETA, EPS = 4, 2, 3, 10000.0, 1e-6

# name, shape, kind: (mean, std) of the random value; tangents use the same std.
PARAM_SPECS = [
    ("norm1", (D,), (1.0, 0.3)),
    ("wq", (D, D), (0.0, 0.7 / math.sqrt(D))),
    ("wk", (D, D), (0.0, 0.7 / math.sqrt(D))),
    ("wv", (D, D), (0.0, 0.7 / math.sqrt(D))),
    ("qnorm", (HS,), (1.0, 0.3)),
    ("knorm", (HS,), (1.0, 0.3)),
    ("wo", (D, D), (0.0, 0.7 / math.sqrt(D))),
    ("attn_scale", (D,), (0.0, 0.5)),
    ("norm2", (D,), (1.0, 0.3)),
    ("w1", (HID, D), (0.0, 1.0 / math.sqrt(D))),
    ("w3", (HID, D), (0.0, 1.0 / math.sqrt(D))),
    ("w2", (D, HID), (0.0, 1.0 / math.sqrt(HID))),
    ("mlp_scale", (D,), (0.0, 0.5)),
]
NAMES = [f"b{b}.{n}" for b in range(2) for n, _, _ in PARAM_SPECS]


def rmsnorm(x, w):
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + EPS) * w


def rope_tables():
    """cos, sin of shape (GH*GW, HS/2): the angle of every (patch token, pair)."""
    m = HS // 2
    ang = np.zeros((GH * GW, m))
    for i in range(GH * GW):
        row, col = i // GW, i % GW
        for j in range(m):
            if j < m // 2:
                ang[i, j] = row * THETA ** (-2.0 * j / m)
            else:
                ang[i, j] = col * THETA ** (-2.0 * (j - m // 2) / m)
    return torch.tensor(np.cos(ang)), torch.tensor(np.sin(ang))


COS, SIN = rope_tables()


def rope(x):
    """x (B, T, NH, HS): rotate the pairs of the patch tokens, leave the prefix as is."""
    pre, pat = x[:, :PREFIX], x[:, PREFIX:PREFIX + GH * GW]
    p = pat.reshape(B, GH * GW, NH, HS // 2, 2)
    a, b = p[..., 0], p[..., 1]
    c, s = COS[None, :, None, :], SIN[None, :, None, :]
    rot = torch.stack([a * c - b * s, a * s + b * c], dim=-1).reshape(B, GH * GW, NH, HS)
    return torch.cat([pre, rot, x[:, PREFIX + GH * GW:]], dim=1)


def attention(q, k, v):
    """q, k, v (B, T, NH, HS) -> (B, T, NH*HS)."""
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))         # (B, NH, T, HS)
    s = q @ k.transpose(-1, -2) / math.sqrt(HS)
    a = torch.softmax(s, dim=-1) @ v
    return a.transpose(1, 2).reshape(B, T, NH * HS)


def block(x, p):
    h = rmsnorm(x, p["norm1"])
    q = rmsnorm((h @ p["wq"].T).reshape(B, T, NH, HS), p["qnorm"])
    k = rmsnorm((h @ p["wk"].T).reshape(B, T, NH, HS), p["knorm"])
    v = (h @ p["wv"].T).reshape(B, T, NH, HS)
    a = attention(rope(q), rope(k), v)
    x = x + (a @ p["wo"].T) * p["attn_scale"]
    h = rmsnorm(x, p["norm2"])
    u = torch.nn.functional.silu(h @ p["w1"].T) * (h @ p["w3"].T)
    return x + (u @ p["w2"].T) * p["mlp_scale"]


def model(x, *params):
    named = dict(zip(NAMES, params))
    for b in range(2):
        x = block(x, {n: named[f"b{b}.{n}"] for n, _, _ in PARAM_SPECS})
    return x


def generate():
    rng = np.random.default_rng(600)
    values, stds = [rng.standard_normal((B, T, D))], [1.0]
    for _ in range(2):
        for _, shape, (mean, std) in PARAM_SPECS:
            values.append(mean + std * rng.standard_normal(shape))
            stds.append(std)
    xs = [f32(v) for v in values]
    ts = [f32(s * rng.standard_normal(v.shape)) for v, s in zip(values, stds)]
    g = f32(rng.standard_normal((B, T, D)))

    leaves = [x.clone().requires_grad_(True) for x in xs]
    out = model(*leaves)
    grads = torch.autograd.grad((out * g).sum(), leaves)
    tout = jvp(model, xs, ts)

    names = ["x"] + [f"p.{n}" for n in NAMES]
    store = {"out": out.detach().numpy(), "tout": tout.detach().numpy(), "g": g.numpy()}
    for i, name in enumerate(names):
        key = name[2:] if name.startswith("p.") else name
        store[name] = xs[i].numpy()
        store[f"t.{key}"] = ts[i].numpy()
        store[f"gr.{key}"] = grads[i].numpy()
    meta = {"B": B, "T": T, "D": D, "n_heads": NH, "hidden": HID, "prefix": PREFIX, "gh": GH, "gw": GW,
            "theta": THETA, "eps": EPS}
    save_safetensors(os.path.join(OUT_DIR, "composite_block.safetensors"), store, meta)
    print(f"  composite_block: out {tuple(out.shape)}, {sum(v.size for v in values)} inputs")
