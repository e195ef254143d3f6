"""Goldens for perceptual/alexnet.c and LPIPS-AlexNet (tests/test_alexnet.c): distances and input
gradients of lpips.LPIPS(net='alex', version='0.1') on hashed trunk weights and the real lin weights.

AlexNet is built here in plain torch with torchvision's layout (`alexnet().features`, indices
0..12), so torchvision is not needed:
    0 Conv2d(3, 64, 11, stride 4, padding 2)   1 ReLU   2 MaxPool2d(3, 2)
    3 Conv2d(64, 192, 5, padding 2)            4 ReLU   5 MaxPool2d(3, 2)
    6 Conv2d(192, 384, 3, padding 1)           7 ReLU
    8 Conv2d(384, 256, 3, padding 1)           9 ReLU
   10 Conv2d(256, 256, 3, padding 1)          11 ReLU  12 MaxPool2d(3, 2)   (not used by lpips)
lpips' pn.alexnet taps the ends of the slices features[0:2], [2:5], [5:8], [8:10], [10:12]
(relu1..relu5). The trunk weights come from the hash formula of cases_lpips.py (splitmix64, see
perceptual.h) with ids ALEXNET_HASH_ID0 = 100: conv j weight id 100 + 2j, scale
float32(sqrt(6 / (Cin K K))); bias id 101 + 2j, scale 0.1. Inputs: pred id 1000, target id 1001,
scale 1 (as cases_lpips.py). The hashed weights go through tools/convert_weights.py's
alexnet_features (the code real files take); the lin weights are the real ones
(perceptual/weights/lpips/alex.pth through lpips_lin).

LPIPS v0.1 is re-implemented from lpips/lpips.py and evaluated in float64 from the float32 weights
and inputs (the reference) and in float32 (PyTorch's own run).

Files (all float32 on disk):
  lpips_alex_64   N 2, 64 px RGB: dist (N), dist_f32, g (N), grad = d sum(dist * g) / d pred
                  (float64 reference, all elements), wsum (float64 sums of the 10 trunk tensors);
                  flip_idx / flip_f32: the elements where PyTorch float32 differs from float64 by
                  more than 1e-3 of max |grad| (a branch flip at a ReLU or max-pool kink), with the
                  float32 value, so the C test can hold each element to the nearer reference.
  lpips_alex_224  N 1, 224 px RGB: dist, dist_f32, g, wsum, and the gradient at a subset only (the
                  whole one is 600 KB): idx (flat indices: the 256 largest |grad| and 1792 random
                  others), grad_sub (float64 reference), grad_sub_f32 (PyTorch float32), grad_norm
                  (the float64 gradient's l2 norm over all elements) and grad_sum.
"""
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F

from goldens_lib import OUT_DIR, save_safetensors

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
import convert_weights  # noqa: E402
import cases_lpips  # noqa: E402  (the LPIPS formula)
from cases_lpips import hash_fill  # noqa: E402  (the numpy splitmix64 hash)

HASH_ID0 = 100


def hashed_alex_state():
    """torchvision's alexnet().features keys with hash values, through the converter."""
    sd = {}
    for j, (idx, cin, cout, k) in enumerate(convert_weights.ALEXNET_CONVS):
        sd["features.%d.weight" % idx] = torch.from_numpy(
            hash_fill((cout, cin, k, k), HASH_ID0 + 2 * j, np.float32(np.sqrt(6.0 / (cin * k * k)))))
        sd["features.%d.bias" % idx] = torch.from_numpy(hash_fill((cout,), HASH_ID0 + 2 * j + 1, 0.1))
    return convert_weights.alexnet_features(sd)


def real_lin():
    sd = torch.load(os.path.join(ROOT, "perceptual", "weights", "lpips", "alex.pth"), map_location="cpu")
    lin = convert_weights.lpips_lin(sd)
    assert [lin["lin%d.weight" % k].shape[1] for k in range(5)] == convert_weights.LPIPS_LIN_CHANNELS["alex"]
    return lin


def alex_taps(x, W):
    """x (N, 3, H, W) -> relu1..relu5 (lpips' pn.alexnet slices of torchvision's features)."""
    def conv(h, idx, stride, pad):
        w = torch.from_numpy(W["features.%d.weight" % idx]).to(x.dtype)
        b = torch.from_numpy(W["features.%d.bias" % idx]).to(x.dtype)
        return F.relu(F.conv2d(h, w, b, stride=stride, padding=pad))
    r1 = conv(x, 0, 4, 2)                                     # features[0:2]
    r2 = conv(F.max_pool2d(r1, 3, 2), 3, 1, 2)                # features[2:5]
    r3 = conv(F.max_pool2d(r2, 3, 2), 6, 1, 1)                # features[5:8]
    r4 = conv(r3, 8, 1, 1)                                    # features[8:10]
    r5 = conv(r4, 10, 1, 1)                                   # features[10:12]
    return [r1, r2, r3, r4, r5]


def lpips_grad(N, C, S, W, lin, g, dtype):
    """lpips.LPIPS(net='alex', version='0.1'): cases_lpips.py's formula on the AlexNet taps."""
    _, _, dist, gt, grad = cases_lpips.lpips_grad(N, C, S, W, lin, g, dtype, taps=alex_taps)
    return dist.detach().numpy(), gt.numpy(), grad.numpy()


def lpips_case(name, N, C, S, W, lin, g, subset):
    dist, gt, grad = lpips_grad(N, C, S, W, lin, g, torch.float64)
    dist32, _, grad32 = lpips_grad(N, C, S, W, lin, g, torch.float32)
    wsum = np.array([W[k].astype(np.float64).sum() for k in W], np.float64)
    store = {"dist": dist, "dist_f32": dist32, "g": gt, "wsum": wsum}
    flat, flat32 = grad.reshape(-1), grad32.reshape(-1)
    gnorm = np.linalg.norm(flat)
    e32 = np.linalg.norm(flat - flat32) / gnorm
    if subset:
        rng = np.random.default_rng(5)
        top = np.argsort(-np.abs(flat))[:256]
        rest = np.setdiff1d(np.arange(flat.size), top)
        idx = np.sort(np.concatenate([top, rng.choice(rest, subset - 256, replace=False)]))
        store.update({"idx": idx.astype(np.float32), "grad_sub": flat[idx], "grad_sub_f32": flat32[idx],
                      "grad_norm": np.array([gnorm]), "grad_sum": np.array([flat.sum()]),
                      "shape": np.array([N, C, S, S], np.float32)})
    else:
        flips = np.nonzero(np.abs(flat - flat32) > 1e-3 * np.abs(flat).max())[0]
        store.update({"grad": grad, "flip_idx": flips.astype(np.float32).reshape(-1),
                      "flip_f32": flat32[flips].reshape(-1)})
        if flips.size == 0:   # safetensors needs a non-empty tensor here: store a harmless entry
            store["flip_idx"], store["flip_f32"] = np.array([0], np.float32), flat[:1]
    save_safetensors(os.path.join(OUT_DIR, name + ".safetensors"), store,
                     {"N": N, "C": C, "S": S, "what": "LPIPS v0.1 AlexNet, hashed trunk, real lin"})
    print("  %s: dist %s, torch f32 vs f64: dist rel %.2e, grad rel %.2e, flips %s" % (
        name, dist, np.abs(dist32 - dist).max() / np.abs(dist).max(), e32,
        "-" if subset else np.count_nonzero(np.abs(flat - flat32) > 1e-3 * np.abs(flat).max())))


def generate():
    torch.set_num_threads(2)
    W = hashed_alex_state()
    lin = real_lin()
    lpips_case("lpips_alex_64", 2, 3, 64, W, lin, [0.7, -1.3], 0)
    lpips_case("lpips_alex_224", 1, 3, 224, W, lin, [1.0], 2048)
