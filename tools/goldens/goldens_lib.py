"""Shared pieces of the golden-file writers: a safetensors writer and the per-op case runner.

Run with Debian's interpreter (/usr/bin/python3, python3-torch). Every case stores, as float32:
  in0..inN   inputs                      tin0..tinN  input tangents (differentiable inputs)
  out        op(inputs)                  tout        forward-mode derivative along tin*
  g          a random upstream gradient  gin0..ginN  d sum(out * g) / d in_i
The reference values are computed in float64 from the float32-rounded inputs, so the stored
numbers are the exact answers for exactly the inputs the C test reads.
"""
import json
import os
import struct

import numpy as np
import torch

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "goldens")


def save_safetensors(path, tensors, metadata=None):
    """Minimal safetensors writer (F32 only): 8-byte header length, JSON header, raw bytes."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    for name, value in tensors.items():
        a = np.ascontiguousarray(np.asarray(value, dtype=np.float32))
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        blobs.append(b)
        offset += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
        f.flush()
        os.fsync(f.fileno())   # temp file, fsync, rename: a crash never leaves half a file
    os.replace(tmp, path)


def f32(x):
    """Round to float32 and return float64 torch tensor holding exactly those values."""
    return torch.as_tensor(np.asarray(x, dtype=np.float32)).to(torch.float64)


def jvp(fn, xs, ts):
    """Forward-mode derivative; forward_ad where torch 1.13 has the rule, else double backward."""
    import torch.autograd.forward_ad as fwAD
    try:
        with fwAD.dual_level():
            duals = [fwAD.make_dual(x, t) if t is not None else x for x, t in zip(xs, ts)]
            out = fn(*duals)
            return fwAD.unpack_dual(out).tangent
    except (RuntimeError, NotImplementedError):
        idx = [i for i, t in enumerate(ts) if t is not None]

        def f(*diff):
            full = list(xs)
            for i, d in zip(idx, diff):
                full[i] = d
            return fn(*full)

        _, t = torch.autograd.functional.jvp(f, tuple(xs[i] for i in idx), tuple(ts[i] for i in idx))
        return t


def write_case(name, fn, inputs, nodiff=(), tangents=True, seed=0, extra=None, metadata=None):
    """Evaluate fn on inputs (numpy arrays; rounded to float32) and write tests/goldens/<name>.

    nodiff: indices of constant inputs (ids, fixed tables). extra: more float32 arrays to store
    (e.g. integer ids) that the C build function reads by name.
    """
    rng = np.random.default_rng(seed + 1000)
    xs = [f32(a) for a in inputs]
    diff = [i for i in range(len(xs)) if i not in nodiff]
    for i in diff:
        xs[i].requires_grad_(True)
    out = fn(*xs)
    g = f32(rng.standard_normal(tuple(out.shape)))
    grads = torch.autograd.grad((out * g).sum(), [xs[i] for i in diff], allow_unused=True)
    store = {}
    for i, x in enumerate(xs):
        store[f"in{i}"] = x.detach().numpy()
    store["out"] = out.detach().numpy()
    store["g"] = g.numpy()
    for i, gr in zip(diff, grads):
        store[f"gin{i}"] = (gr if gr is not None else torch.zeros_like(xs[i])).numpy()
    if tangents and diff:
        ts = [None] * len(xs)
        for i in diff:
            ts[i] = f32(rng.standard_normal(tuple(xs[i].shape)))
            store[f"tin{i}"] = ts[i].numpy()
        prim = [x.detach() for x in xs]
        store["tout"] = jvp(fn, prim, ts).detach().numpy()
    if extra:
        store.update(extra)
    os.makedirs(OUT_DIR, exist_ok=True)
    save_safetensors(os.path.join(OUT_DIR, name + ".safetensors"), store, metadata)
    print(f"  {name}: out {tuple(out.shape)}")


def randn(*shape, seed=0, scale=1.0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32) * scale
