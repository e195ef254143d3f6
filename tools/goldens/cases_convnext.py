"""Goldens for perceptual/convnext.c (tests/test_convnext.c): ConvNeXt-V2 features, pMF's ConvNeXt
distance and its input gradient, and a round trip through tools/convert_weights.py convnextv2.

The network is re-built here in plain torch (nn.Conv2d, nn.Linear, ...) following HF transformers'
modeling_convnextv2.py, with module names that give HF's state-dict keys. No transformers needed.

Base (depths 3,3,27,3, dims 128,256,512,1024; 88M floats): its weights are NOT stored. They come
from the hash formula of perceptual.h (perceptual_hash_fill, convnext_fill_hash) that C reproduces
bit for bit: tensor i of the loader's order gets id 5000 + i and the per-kind scale below. They are
put into an HF-named state dict ("convnextv2." prefix, plus a dummy classifier) and pushed through
convert_weights.convnextv2, the code real checkpoints take. Stored: features of both images, the
distance and d sum(dist * g) / d a, in float64 from the float32 weights and inputs, plus checksums
of the weights (wsum) so a hash mismatch is diagnosed as such.
  convnext_base_64   N 2, 64 px: the whole gradient
  convnext_base_224  N 1, 224 px: the gradient at 8192 fixed positions (every 18th element
                     from 5) and its dot products with 4 hash directions (ids 1200..1203, scale 1),
                     so the file stays small
Images: a = hash (id 1100, scale 1), b = hash (id 1101, scale 1), uniform in [-1, 1).

Tiny (depths 1,1,2,1, dims 4,8,12,16): random weights (numpy, seed 5), converted by the same script
into tests/goldens/convnext_tiny_weights.safetensors (the file C loads), and convnext_tiny with the
features, distance and gradient of 2 images of 32 px (ids 1300, 1301).
"""
import os
import sys

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from goldens_lib import OUT_DIR, save_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert_weights  # noqa: E402
from cases_lpips import hash_fill  # noqa: E402  (perceptual_hash_fill's formula)

BASE_DEPTHS, BASE_DIMS = [3, 3, 27, 3], [128, 256, 512, 1024]
TINY_DEPTHS, TINY_DIMS = [1, 1, 2, 1], [4, 8, 12, 16]
HASH_ID0 = 5000
EPS = 1e-6


# ---------------------------------------------------------------------------------------------
# The network, after transformers/models/convnextv2/modeling_convnextv2.py


class LayerNormCF(nn.Module):
    """ConvNextV2LayerNorm(data_format="channels_first"): over dim 1 of (N, C, H, W)."""

    def __init__(self, c):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + EPS)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.bias = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x):   # (N, H, W, C)
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + 1e-6)
        return self.weight * (x * nx) + self.bias + x


class Layer(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.layernorm = nn.LayerNorm(dim, eps=EPS)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.grn = GRN(4 * dim)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x):
        h = self.dwconv(x).permute(0, 2, 3, 1)
        h = self.pwconv2(self.grn(F.gelu(self.pwconv1(self.layernorm(h)))))   # F.gelu: erf form
        return x + h.permute(0, 3, 1, 2)


class Stage(nn.Module):
    def __init__(self, cin, cout, depth, stride):
        super().__init__()
        if cin != cout or stride > 1:
            self.downsampling_layer = nn.Sequential(LayerNormCF(cin), nn.Conv2d(cin, cout, 2, stride=2))
        else:
            self.downsampling_layer = nn.Identity()
        self.layers = nn.Sequential(*[Layer(cout) for _ in range(depth)])

    def forward(self, x):
        return self.layers(self.downsampling_layer(x))


class Embeddings(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.patch_embeddings = nn.Conv2d(3, dim, kernel_size=4, stride=4)
        self.layernorm = LayerNormCF(dim)

    def forward(self, x):
        return self.layernorm(self.patch_embeddings(x))


class Encoder(nn.Module):
    def __init__(self, depths, dims):
        super().__init__()
        self.stages = nn.ModuleList([Stage(dims[max(s - 1, 0)], dims[s], depths[s], 2 if s > 0 else 1)
                                     for s in range(4)])

    def forward(self, x):
        for st in self.stages:
            x = st(x)
        return x


class ConvNextV2Model(nn.Module):
    """state_dict() keys are HF's ConvNextV2Model keys."""

    def __init__(self, depths, dims):
        super().__init__()
        self.embeddings = Embeddings(dims[0])
        self.encoder = Encoder(depths, dims)
        self.layernorm = nn.LayerNorm(dims[3], eps=EPS)

    def forward(self, x):   # pooler_output
        return self.layernorm(self.encoder(self.embeddings(x)).mean([-2, -1]))


def distance(model, a, b):
    return ((model(a) - model(b)) ** 2).sum(dim=1)


# ---------------------------------------------------------------------------------------------
# Weights


def hash_scale(name, shape):
    """(scale, offset) of one tensor, as convnext_fill_hash (perceptual.h)."""
    is_w = name.endswith(".weight")
    if "layernorm" in name or "downsampling_layer.0." in name:
        return 0.1, (1.0 if is_w else 0.0)
    if "grn." in name:
        return (0.5 if is_w else 0.1), 0.0
    if "pwconv2." in name:
        return (np.float32(np.sqrt(3.0 / shape[1]) * 0.3) if is_w else 0.02), 0.0
    if is_w:
        fan = int(np.prod(shape)) // shape[0]
        return np.float32(np.sqrt(3.0 / fan)), 0.0
    return 0.1, 0.0


def hashed_hf_state(depths, dims):
    sd = {}
    for i, (name, shape) in enumerate(convert_weights._convnextv2_names(depths, dims)):
        scale, offset = hash_scale(name, shape)
        a = hash_fill(shape, HASH_ID0 + i, scale)
        if offset:
            a = (np.float32(offset) + a).astype(np.float32)
        sd["convnextv2." + name] = torch.from_numpy(a)
    sd["classifier.weight"] = torch.zeros(3, dims[3])   # dropped by the converter
    sd["classifier.bias"] = torch.zeros(3)
    return sd


def model_from(W, depths, dims, dtype):
    m = ConvNextV2Model(depths, dims)
    m.load_state_dict({k: torch.from_numpy(v) for k, v in W.items()}, strict=True)
    m = m.to(dtype)
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def run(W, depths, dims, a_np, b_np, g, dtype):
    m = model_from(W, depths, dims, dtype)
    a = torch.from_numpy(a_np).to(dtype).requires_grad_(True)
    b = torch.from_numpy(b_np).to(dtype)
    fa, fb = m(a), m(b)
    dist = ((fa - fb) ** 2).sum(dim=1)
    (grad,) = torch.autograd.grad((dist * torch.tensor(g, dtype=dtype)).sum(), a)
    return fa.detach(), fb.detach(), dist.detach(), grad


def report(name, ref, f32):
    def rel(x, y):
        return float(torch.linalg.norm((x.double() - y.double()).flatten()) / torch.linalg.norm(y.double().flatten()))
    print("  %s: float32 vs float64: feat %.2e dist %.2e grad %.2e" % (name, rel(f32[0], ref[0]), rel(f32[2], ref[2]),
                                                                       rel(f32[3], ref[3])))


def base_case(W, wsum, N, S, g, full_grad):
    a = hash_fill((N, 3, S, S), 1100, 1.0)
    b = hash_fill((N, 3, S, S), 1101, 1.0)
    ref = run(W, BASE_DEPTHS, BASE_DIMS, a, b, g, torch.float64)
    f32 = run(W, BASE_DEPTHS, BASE_DIMS, a, b, g, torch.float32)
    name = "convnext_base_%d" % S
    report(name, ref, f32)
    fa, fb, dist, grad = ref
    store = {"feat_a": fa.numpy(), "feat_b": fb.numpy(), "dist": dist.numpy(), "g": np.asarray(g, np.float32),
             "wsum": wsum, "dist_f32": f32[2].numpy()}
    gflat = grad.numpy().reshape(-1)
    if full_grad:
        store["grad"] = grad.numpy()
    else:
        idx = 5 + 18 * np.arange(8192)
        store["grad_at"] = gflat[idx]
        dirs = [hash_fill((gflat.size,), 1200 + k, 1.0).astype(np.float64) for k in range(4)]
        store["grad_dot"] = np.array([np.dot(gflat, d) for d in dirs], np.float64)
        store["grad_norm"] = np.array([np.linalg.norm(gflat)])
    save_safetensors(os.path.join(OUT_DIR, name + ".safetensors"), store,
                     {"N": N, "S": S, "what": "ConvNeXt-V2-Base, hashed weights (perceptual.h)"})
    print("  %s: dist %s" % (name, dist.numpy()))


def tiny_case():
    rng = np.random.default_rng(5)
    sd = {}
    for name, shape in convert_weights._convnextv2_names(TINY_DEPTHS, TINY_DIMS):
        if "layernorm" in name or "downsampling_layer.0." in name:
            a = (1.0 if name.endswith("weight") else 0.0) + 0.2 * rng.standard_normal(shape)
        elif "grn." in name:
            a = 0.5 * rng.standard_normal(shape)
        else:
            fan = int(np.prod(shape)) // shape[0] if name.endswith("weight") else 10
            a = rng.standard_normal(shape) / np.sqrt(fan)
        sd["convnextv2." + name] = torch.from_numpy(a.astype(np.float32))
    sd["classifier.weight"] = torch.zeros(5, TINY_DIMS[3])
    sd["classifier.bias"] = torch.zeros(5)
    # the converter's command line on an HF-style pytorch_model.bin, as a user would run it
    import subprocess
    import tempfile
    wpath = os.path.join(OUT_DIR, "convnext_tiny_weights.safetensors")
    with tempfile.TemporaryDirectory() as d:
        src = os.path.join(d, "pytorch_model.bin")
        torch.save(sd, src)
        subprocess.run([sys.executable, os.path.join(ROOT, "tools", "convert_weights.py"), "convnextv2", src, wpath],
                       check=True)
    W = convert_weights._load_safetensors(wpath)
    a = hash_fill((2, 3, 32, 32), 1300, 1.0)
    b = hash_fill((2, 3, 32, 32), 1301, 1.0)
    g = [0.8, -1.1]
    ref = run(W, TINY_DEPTHS, TINY_DIMS, a, b, g, torch.float64)
    fa, fb, dist, grad = ref
    save_safetensors(os.path.join(OUT_DIR, "convnext_tiny.safetensors"),
                     {"feat_a": fa.numpy(), "feat_b": fb.numpy(), "dist": dist.numpy(), "g": np.asarray(g, np.float32),
                      "grad": grad.numpy()},
                     {"depths": "1,1,2,1", "dims": "4,8,12,16", "what": "tiny ConvNeXt-V2 through the converter"})
    print("  convnext_tiny: dist %s" % dist.numpy())


def generate():
    torch.set_num_threads(2)
    tiny_case()
    W, depths, dims = convert_weights.convnextv2(hashed_hf_state(BASE_DEPTHS, BASE_DIMS))
    assert depths == BASE_DEPTHS and dims == BASE_DIMS, (depths, dims)
    wsum = np.array([W[k].astype(np.float64).sum() for k in W], np.float64)
    base_case(W, wsum, 2, 64, [0.7, -1.3], True)
    base_case(W, wsum, 1, 224, [1.0], False)
