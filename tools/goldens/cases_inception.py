"""Goldens for eval/inception.c (tests/test_eval.c): pytorch-fid's FID InceptionV3 in plain torch.

The network is pytorch-fid's fid_inception_v3() (src/pytorch_fid/inception.py, porting notes A2)
written out functionally with its state-dict names, so neither torchvision nor pytorch-fid is needed:
BasicConv2d = conv (no bias) + BatchNorm (eval, eps 0.001) + ReLU; FIDInceptionA/C/E_1 pool
branches avg_pool2d(3, 1, 1, count_include_pad=False); FIDInceptionE_2 max_pool2d(3, 1, 1);
torchvision's InceptionB/D; adaptive average pool -> pool3 (2048); fc -> 1008 logits. Input: images
in [0, 1], F.interpolate(299, bilinear, align_corners=False), then 2x - 1 (pytorch-fid's
resize_input and normalize_input).

The 95 MB of weights are NOT stored. They come from a hash that eval/inception.c reproduces bit for
bit (inception_fill_hash): for element i (flat, row-major) of tensor id t,
    splitmix64(z): z += 0x9E3779B97F4A7C15; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
                   z = (z ^ z>>27) * 0x94D049BB133111EB; return z ^ z>>31        (mod 2^64)
    k = splitmix64((t << 40) + i) >> 40;  value = float32(scale) * float32((k - 2^23) / 2^23)
conv j (0..93 in state-dict order): weight t = 8j, scale float32(sqrt(6 / (cin kh kw)));
bn.weight = 1 + hash(8j+1, 0.1); bn.bias = hash(8j+2, 0.1); bn.running_mean = hash(8j+3, 0.1);
bn.running_var = 1 + hash(8j+4, 0.5) (the sums in float32); fc.weight t = 752, scale
float32(sqrt(3 / 2048)); fc.bias t = 753, scale 0.1. BN stays unfolded here, so the C fold is tested.
The hashed state dict goes through tools/convert_inception.py's inception_fid (the code real files
take) before use.

Inputs: "x299" (2, 3, 299, 299) = 0.5 + 0.5 hash(5000, 1) (float32, in [0, 1)); "u8" (1, 64, 80, 3)
NHWC uint8 pixels = splitmix64((5001 << 40) + i) >> 56, read as ToTensor() does (x / 255, NCHW).

Files: tests/goldens/inception_299.safetensors: pool3 (2, 2048), logits (2, 1008) from the float64
evaluation of the float32 weights and inputs, pool3_f32 / logits_f32 (the same network in float32),
wsum (94) float64 sums of each raw conv weight. tests/goldens/inception_small.safetensors: the u8
image under pytorch-fid's convention (pool3, logits, pool3_f32, logits_f32) and under pMF's JAX
convention (pool3_pmf: 0..255 resized half-pixel, then (x - 128) / 128).
"""
import os

import numpy as np
import torch
import torch.nn.functional as F

from goldens_lib import OUT_DIR, save_safetensors


def splitmix64(z):
    z = (z + np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_raw(n, tid):
    with np.errstate(over="ignore"):
        z = np.uint64(tid << 40) + np.arange(n, dtype=np.uint64)
        return splitmix64(z)


def hash_fill(shape, tid, scale):
    n = int(np.prod(shape))
    k = (hash_raw(n, tid) >> np.uint64(40)).astype(np.int64)
    unit = ((k - (1 << 23)).astype(np.float32) / np.float32(8388608.0)).astype(np.float32)
    return (np.float32(scale) * unit).astype(np.float32).reshape(shape)


def hash_u8(shape, tid):
    return (hash_raw(int(np.prod(shape)), tid) >> np.uint64(56)).astype(np.uint8).reshape(shape)


# (name, cin, cout, (kh, kw), stride, (ph, pw)) in pytorch-fid's state-dict order
def conv_table():
    t = []

    def c(name, cin, cout, k, s=1, p=(0, 0)):
        t.append((name, cin, cout, k, s, p))

    c("Conv2d_1a_3x3", 3, 32, (3, 3), 2)
    c("Conv2d_2a_3x3", 32, 32, (3, 3))
    c("Conv2d_2b_3x3", 32, 64, (3, 3), 1, (1, 1))
    c("Conv2d_3b_1x1", 64, 80, (1, 1))
    c("Conv2d_4a_3x3", 80, 192, (3, 3))
    for n, cin, pool in (("Mixed_5b", 192, 32), ("Mixed_5c", 256, 64), ("Mixed_5d", 288, 64)):
        c(n + ".branch1x1", cin, 64, (1, 1))
        c(n + ".branch5x5_1", cin, 48, (1, 1))
        c(n + ".branch5x5_2", 48, 64, (5, 5), 1, (2, 2))
        c(n + ".branch3x3dbl_1", cin, 64, (1, 1))
        c(n + ".branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1))
        c(n + ".branch3x3dbl_3", 96, 96, (3, 3), 1, (1, 1))
        c(n + ".branch_pool", cin, pool, (1, 1))
    c("Mixed_6a.branch3x3", 288, 384, (3, 3), 2)
    c("Mixed_6a.branch3x3dbl_1", 288, 64, (1, 1))
    c("Mixed_6a.branch3x3dbl_2", 64, 96, (3, 3), 1, (1, 1))
    c("Mixed_6a.branch3x3dbl_3", 96, 96, (3, 3), 2)
    for n, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
        c(n + ".branch1x1", 768, 192, (1, 1))
        c(n + ".branch7x7_1", 768, c7, (1, 1))
        c(n + ".branch7x7_2", c7, c7, (1, 7), 1, (0, 3))
        c(n + ".branch7x7_3", c7, 192, (7, 1), 1, (3, 0))
        c(n + ".branch7x7dbl_1", 768, c7, (1, 1))
        c(n + ".branch7x7dbl_2", c7, c7, (7, 1), 1, (3, 0))
        c(n + ".branch7x7dbl_3", c7, c7, (1, 7), 1, (0, 3))
        c(n + ".branch7x7dbl_4", c7, c7, (7, 1), 1, (3, 0))
        c(n + ".branch7x7dbl_5", c7, 192, (1, 7), 1, (0, 3))
        c(n + ".branch_pool", 768, 192, (1, 1))
    c("Mixed_7a.branch3x3_1", 768, 192, (1, 1))
    c("Mixed_7a.branch3x3_2", 192, 320, (3, 3), 2)
    c("Mixed_7a.branch7x7x3_1", 768, 192, (1, 1))
    c("Mixed_7a.branch7x7x3_2", 192, 192, (1, 7), 1, (0, 3))
    c("Mixed_7a.branch7x7x3_3", 192, 192, (7, 1), 1, (3, 0))
    c("Mixed_7a.branch7x7x3_4", 192, 192, (3, 3), 2)
    for n, cin in (("Mixed_7b", 1280), ("Mixed_7c", 2048)):
        c(n + ".branch1x1", cin, 320, (1, 1))
        c(n + ".branch3x3_1", cin, 384, (1, 1))
        c(n + ".branch3x3_2a", 384, 384, (1, 3), 1, (0, 1))
        c(n + ".branch3x3_2b", 384, 384, (3, 1), 1, (1, 0))
        c(n + ".branch3x3dbl_1", cin, 448, (1, 1))
        c(n + ".branch3x3dbl_2", 448, 384, (3, 3), 1, (1, 1))
        c(n + ".branch3x3dbl_3a", 384, 384, (1, 3), 1, (0, 1))
        c(n + ".branch3x3dbl_3b", 384, 384, (3, 1), 1, (1, 0))
        c(n + ".branch_pool", cin, 192, (1, 1))
    assert len(t) == 94
    return t


def hashed_state_dict():
    """pytorch-fid's state dict (without num_batches_tracked) filled by the hash formula."""
    sd = {}
    for j, (name, cin, cout, k, _, _) in enumerate(conv_table()):
        sd[name + ".conv.weight"] = hash_fill((cout, cin) + k, 8 * j, np.float32(np.sqrt(6.0 / (cin * k[0] * k[1]))))
        sd[name + ".bn.weight"] = np.float32(1.0) + hash_fill((cout,), 8 * j + 1, 0.1)
        sd[name + ".bn.bias"] = hash_fill((cout,), 8 * j + 2, 0.1)
        sd[name + ".bn.running_mean"] = hash_fill((cout,), 8 * j + 3, 0.1)
        sd[name + ".bn.running_var"] = np.float32(1.0) + hash_fill((cout,), 8 * j + 4, 0.5)
    sd["fc.weight"] = hash_fill((1008, 2048), 8 * 94, np.float32(np.sqrt(3.0 / 2048.0)))
    sd["fc.bias"] = hash_fill((1008,), 8 * 94 + 1, 0.1)
    return sd


class FIDInception:
    """pytorch-fid's FID InceptionV3 forward from a state dict (torch tensors), eval mode."""

    def __init__(self, sd, dtype):
        self.W = {k: torch.as_tensor(np.asarray(v)).to(dtype) for k, v in sd.items()}
        self.spec = {name: (s, p) for name, _, _, _, s, p in conv_table()}

    def conv(self, name, x):
        s, p = self.spec[name]
        W = self.W
        y = F.conv2d(x, W[name + ".conv.weight"], None, s, p)
        y = F.batch_norm(y, W[name + ".bn.running_mean"], W[name + ".bn.running_var"], W[name + ".bn.weight"],
                         W[name + ".bn.bias"], False, 0.0, 0.001)
        return F.relu(y)

    def seq(self, x, *names):
        for n in names:
            x = self.conv(n, x)
        return x

    @staticmethod
    def avg(x):
        return F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)

    def mixed_a(self, n, x):
        return torch.cat([self.conv(n + ".branch1x1", x),
                          self.seq(x, n + ".branch5x5_1", n + ".branch5x5_2"),
                          self.seq(x, n + ".branch3x3dbl_1", n + ".branch3x3dbl_2", n + ".branch3x3dbl_3"),
                          self.conv(n + ".branch_pool", self.avg(x))], 1)

    def mixed_b(self, n, x):
        return torch.cat([self.conv(n + ".branch3x3", x),
                          self.seq(x, n + ".branch3x3dbl_1", n + ".branch3x3dbl_2", n + ".branch3x3dbl_3"),
                          F.max_pool2d(x, 3, 2)], 1)

    def mixed_c(self, n, x):
        return torch.cat([self.conv(n + ".branch1x1", x),
                          self.seq(x, *[n + ".branch7x7_%d" % i for i in (1, 2, 3)]),
                          self.seq(x, *[n + ".branch7x7dbl_%d" % i for i in (1, 2, 3, 4, 5)]),
                          self.conv(n + ".branch_pool", self.avg(x))], 1)

    def mixed_d(self, n, x):
        return torch.cat([self.seq(x, n + ".branch3x3_1", n + ".branch3x3_2"),
                          self.seq(x, *[n + ".branch7x7x3_%d" % i for i in (1, 2, 3, 4)]),
                          F.max_pool2d(x, 3, 2)], 1)

    def mixed_e(self, n, x, max_pool):
        t = self.conv(n + ".branch3x3_1", x)
        u = self.seq(x, n + ".branch3x3dbl_1", n + ".branch3x3dbl_2")
        pooled = F.max_pool2d(x, 3, 1, 1) if max_pool else self.avg(x)
        return torch.cat([self.conv(n + ".branch1x1", x),
                          torch.cat([self.conv(n + ".branch3x3_2a", t), self.conv(n + ".branch3x3_2b", t)], 1),
                          torch.cat([self.conv(n + ".branch3x3dbl_3a", u), self.conv(n + ".branch3x3dbl_3b", u)], 1),
                          self.conv(n + ".branch_pool", pooled)], 1)

    def forward(self, x):
        """x (N, 3, 299, 299) normalised -> pool3 (N, 2048), logits (N, 1008)."""
        x = self.seq(x, "Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3")
        x = F.max_pool2d(x, 3, 2)
        x = self.seq(x, "Conv2d_3b_1x1", "Conv2d_4a_3x3")
        x = F.max_pool2d(x, 3, 2)
        for n in ("Mixed_5b", "Mixed_5c", "Mixed_5d"):
            x = self.mixed_a(n, x)
        x = self.mixed_b("Mixed_6a", x)
        for n in ("Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"):
            x = self.mixed_c(n, x)
        x = self.mixed_d("Mixed_7a", x)
        x = self.mixed_e("Mixed_7b", x, False)
        x = self.mixed_e("Mixed_7c", x, True)
        pool3 = F.adaptive_avg_pool2d(x, (1, 1)).flatten(1)
        return pool3, F.linear(pool3, self.W["fc.weight"], self.W["fc.bias"])


def pytorch_fid_input(x01):
    """pytorch-fid InceptionV3(resize_input=True, normalize_input=True) preprocessing."""
    x = F.interpolate(x01, size=(299, 299), mode="bilinear", align_corners=False)
    return 2 * x - 1


def pmf_jax_input(x255):
    x = F.interpolate(x255, size=(299, 299), mode="bilinear", align_corners=False)
    return (x - 128) / 128


def run(sd, x01, conv="pytorch-fid"):
    out = {}
    for dtype, suffix in ((torch.float64, ""), (torch.float32, "_f32")):
        net = FIDInception(sd, dtype)
        with torch.no_grad():
            if conv == "pytorch-fid":
                p, l = net.forward(pytorch_fid_input(x01.to(dtype)))
            else:
                p, l = net.forward(pmf_jax_input(x01.to(dtype) * 255))
        out["pool3" + suffix], out["logits" + suffix] = p.float().numpy(), l.float().numpy()
    return out


def generate():
    import sys
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import convert_inception  # the hashed weights go through the converter real files take
    raw = hashed_state_dict()
    raw.update({n + ".bn.num_batches_tracked": np.zeros((), np.float32) for n, *_ in conv_table()})
    sd = convert_inception.inception_fid(raw)
    wsum = np.array([sd[n + ".conv.weight"].astype(np.float64).sum() for n, *_ in conv_table()])
    x299 = np.float32(0.5) + hash_fill((2, 3, 299, 299), 5000, 0.5)
    o = run(sd, torch.from_numpy(x299))
    print("  299: pool3 mean %.6g max %.6g, logits std %.6g" % (o["pool3"].mean(), o["pool3"].max(), o["logits"].std()))
    save_safetensors(os.path.join(OUT_DIR, "inception_299.safetensors"), dict(o, wsum=wsum))

    u8 = hash_u8((1, 64, 80, 3), 5001)
    x01 = torch.from_numpy(u8).permute(0, 3, 1, 2).float().div(255)   # torchvision ToTensor()
    o = run(sd, x01)
    o["pool3_pmf"] = run(sd, torch.from_numpy(u8).permute(0, 3, 1, 2).double() / 255, "pmf-jax")["pool3"]
    print("  small: pool3 mean %.6g, pmf-jax pool3 mean %.6g" % (o["pool3"].mean(), o["pool3_pmf"].mean()))
    save_safetensors(os.path.join(OUT_DIR, "inception_small.safetensors"), o)
