"""Goldens for perceptual/ (tests/test_perceptual.c): LPIPS-VGG16 distances and input gradients,
and the crop + bicubic-antialias resample of spec 5.5.

VGG16 is built here in plain torch with torchvision's layout (`features` indices 0..29, cfg "D"),
so torchvision is not needed. Its weights are NOT stored: they come from a hash formula that
perceptual/vgg16.c reproduces bit for bit (vgg16_fill_hash, perceptual_hash_fill):

    splitmix64(z): z += 0x9E3779B97F4A7C15; z = (z ^ z>>30) * 0xBF58476D1CE4E5B9;
                   z = (z ^ z>>27) * 0x94D049BB133111EB; return z ^ z>>31        (mod 2^64)
    k(id, i)     = splitmix64((id << 40) + i) >> 40                      (integer in [0, 2^24))
    value        = float32(scale) * float32((k - 2^23) / 2^23)          (float32 product)

i is the flat row-major element index. Conv j (0..12): weight id 2j, scale float32(sqrt(6/(Cin*9)));
bias id 2j+1, scale 0.1. Input images use the same formula: pred id 1000, target id 1001, scale 1.
The hashed weights go through tools/convert_weights.py's vgg16_features (the code real files take),
and the LPIPS lin weights are the real ones (perceptual/weights/lpips/vgg.pth through lpips_lin).

LPIPS v0.1 is re-implemented from lpips/lpips.py (porting notes A1) and evaluated in float64 from
the float32 weights and inputs: ScalingLayer, normalize_tensor (eps 1e-10 after the sqrt), squared
difference, 1x1 lin conv without bias, spatial mean, sum over relu1_2..relu5_3.

Each lpips_* file stores dist (N), g (N) and grad = d sum(dist * g) / d pred (float64 reference),
dist_f32 and grad_f32 (the same in PyTorch float32), plus checksums of the
hashed weights (wsum, float64 sums of each tensor) so a hash mismatch is diagnosed as such.
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

M64 = (1 << 64) - 1
CFG_D = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


def splitmix64(z):
    z = (z + np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def hash_fill(shape, tid, scale):
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):
        z = np.uint64(tid << 40) + np.arange(n, dtype=np.uint64)
        k = (splitmix64(z) >> np.uint64(40)).astype(np.int64)
    unit = ((k - (1 << 23)).astype(np.float32) / np.float32(8388608.0)).astype(np.float32)
    return (np.float32(scale) * unit).astype(np.float32).reshape(shape)


def torchvision_vgg16_features():
    """torchvision.models.vgg16().features, without torchvision (same module indices)."""
    layers, cin = [], 3
    for v in CFG_D:
        if v == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(cin, v, kernel_size=3, padding=1), nn.ReLU(inplace=False)]
            cin = v
    return nn.Sequential(*layers)


def hashed_vgg_state():
    feats = torchvision_vgg16_features()
    sd = feats.state_dict()
    for j, idx in enumerate(convert_weights.VGG16_CONV_INDICES):
        w, b = sd["%d.weight" % idx], sd["%d.bias" % idx]
        cin = w.shape[1]
        sd["%d.weight" % idx] = torch.from_numpy(hash_fill(tuple(w.shape), 2 * j, np.float32(np.sqrt(6.0 / (cin * 9.0)))))
        sd["%d.bias" % idx] = torch.from_numpy(hash_fill(tuple(b.shape), 2 * j + 1, 0.1))
    # the torchvision key layout ("features.N.*"), then the converter real files go through
    full = {"features." + k: v for k, v in sd.items()}
    return convert_weights.vgg16_features(full)


def real_lin():
    sd = torch.load(os.path.join(ROOT, "perceptual", "weights", "lpips", "vgg.pth"), map_location="cpu")
    return convert_weights.lpips_lin(sd)


def vgg_taps(x, W):
    """x (N, 3, H, W) -> relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 (slices of lpips' vgg16)."""
    taps, h = [], x
    tap_after = {3, 8, 15, 22, 29}
    idx = 0
    for v in CFG_D:
        if v == "M":
            h = F.max_pool2d(h, 2, 2)
            idx += 1
        else:
            w = torch.from_numpy(W["features.%d.weight" % idx]).to(x.dtype)
            b = torch.from_numpy(W["features.%d.bias" % idx]).to(x.dtype)
            h = F.relu(F.conv2d(h, w, b, padding=1))
            idx += 2
            if idx - 1 in tap_after:
                taps.append(h)
        if len(taps) == 5:
            break
    return taps


def lpips_ref(p, t, W, lin, taps=None):
    """lpips.LPIPS(net='vgg', version='0.1') forward on [-1, 1] images, in p's dtype; another
    trunk's five taps with taps=fn(x, W) (cases_alexnet.py: net='alex')."""
    taps = taps or vgg_taps
    if p.shape[1] == 1:
        p, t = p.repeat(1, 3, 1, 1), t.repeat(1, 3, 1, 1)
    shift = torch.tensor(np.array([-.030, -.088, -.188], np.float32)).to(p.dtype).view(1, 3, 1, 1)
    scale = torch.tensor(np.array([.458, .448, .450], np.float32)).to(p.dtype).view(1, 3, 1, 1)
    fa, fb = taps((p - shift) / scale, W), taps((t - shift) / scale, W)

    def normalize_tensor(x, eps=1e-10):
        return x / (torch.sqrt(torch.sum(x ** 2, dim=1, keepdim=True)) + eps)

    total = 0
    for k in range(5):
        d = (normalize_tensor(fa[k]) - normalize_tensor(fb[k])) ** 2
        lw = torch.from_numpy(lin["lin%d.weight" % k]).to(p.dtype)
        total = total + F.conv2d(d, lw).mean(dim=[2, 3], keepdim=True)
    return total.view(-1)


def lpips_grad(N, C, S, W, lin, g, dtype, taps=None):
    pred = torch.from_numpy(hash_fill((N, C, S, S), 1000, 1.0)).to(dtype).requires_grad_(True)
    targ = torch.from_numpy(hash_fill((N, C, S, S), 1001, 1.0)).to(dtype)
    dist = lpips_ref(pred, targ, W, lin, taps)
    gt = torch.tensor(np.asarray(g, np.float32)).to(dtype)
    (grad,) = torch.autograd.grad((dist * gt).sum(), pred)
    return pred, targ, dist, gt, grad


def lpips_case(name, N, C, S, W, lin, g):
    pred, targ, dist, gt, grad = lpips_grad(N, C, S, W, lin, g, torch.float64)
    # PyTorch's own float32 run: where a ReLU input or a max-pool pair sits within float32 rounding
    # of its kink, float32 and float64 legitimately take different branches (PyTorch float32 vs
    # float64: 2.6e-3 normalized gradient error at 64 px, 3e-4 at 224 px, each from one pixel), so
    # the C test holds each gradient element to the nearer of the two.
    _, _, dist32, _, grad32 = lpips_grad(N, C, S, W, lin, g, torch.float32)
    wsum = np.array([W[k].astype(np.float64).sum() for k in W], np.float64)
    store = {"dist": dist.detach().numpy(), "g": gt.numpy(), "grad": grad.numpy(), "wsum": wsum,
             "dist_f32": dist32.detach().numpy(), "grad_f32": grad32.numpy(),
             "pred_sum": np.array([pred.detach().sum().item()]), "target_sum": np.array([targ.sum().item()])}
    save_safetensors(os.path.join(OUT_DIR, name + ".safetensors"), store,
                     {"N": N, "C": C, "S": S, "what": "LPIPS v0.1 VGG16, hashed trunk, real lin"})
    print("  %s: dist %s" % (name, dist.detach().numpy()))


def crop_case():
    rng = np.random.default_rng(77)
    x = rng.standard_normal((2, 2, 12, 10)).astype(np.float32)
    boxes = np.array([[1, 2, 7, 6], [0, 0, 12, 10]], np.float32)   # top, left, h, w
    store = {"x": x, "boxes": boxes}
    xt = torch.from_numpy(x).double()
    for size in (16, 5):
        outs = []
        for b in range(2):
            t, l, h, w = (int(v) for v in boxes[b])
            outs.append(F.interpolate(xt[b:b + 1, :, t:t + h, l:l + w], size=(size, size), mode="bicubic",
                                      align_corners=False, antialias=True))
        store["out%d" % size] = torch.cat(outs).numpy()
    save_safetensors(os.path.join(OUT_DIR, "lpips_crop_resize.safetensors"), store)
    print("  lpips_crop_resize")


def generate():
    torch.set_num_threads(2)
    W = hashed_vgg_state()
    lin = real_lin()
    lpips_case("lpips_vgg_64", 2, 3, 64, W, lin, [0.7, -1.3])
    lpips_case("lpips_vgg_gray32", 2, 1, 32, W, lin, [1.1, 0.4])
    lpips_case("lpips_vgg_224", 1, 3, 224, W, lin, [1.0])
    crop_case()
