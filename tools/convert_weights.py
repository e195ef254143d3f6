#!/usr/bin/python3
"""Convert PyTorch weight files into the safetensors files pmf's C loaders read.

Run with Debian's interpreter (/usr/bin/python3, python3-torch):

  /usr/bin/python3 tools/convert_weights.py vgg16 vgg16-397923af.pth vgg16_features.safetensors
  /usr/bin/python3 tools/convert_weights.py lpips-lin vgg.pth lpips_v0.1_vgg_lin.safetensors
  /usr/bin/python3 tools/convert_weights.py lpips-lin alex.pth lpips_v0.1_alex_lin.safetensors
  /usr/bin/python3 tools/convert_weights.py convnextv2 ...     (not yet)
  /usr/bin/python3 tools/convert_weights.py inception IN.pth OUT (runs tools/convert_inception.py)

Tensor names written (all float32, row-major, PyTorch layouts), read by perceptual/*.c:

  vgg16      features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.weight  (Cout, Cin, 3, 3)
             features.{...}.bias                                   (Cout)
             torchvision's own keys of `vgg16().features` (the 13 convs up to relu5_3); the
             classifier is dropped. Input: torchvision's vgg16-397923af.pth (IMAGENET1K_V1, what
             lpips loads) or any state dict with those keys (a "features." prefix is optional).
             C loader: vgg16_load / lpips_vgg16_load (perceptual/vgg16.c).
  lpips-lin  lin{k}.weight, k = 0..4, shape (1, C, 1, 1), no bias (NetLinLayer's 1x1 conv).
             Input: richzhang/PerceptualSimilarity's lpips/weights/v0.1/{vgg,alex}.pth (legacy torch
             serialization; keys lin{k}.model.1.weight). C loader: lpips_vgg16_load (lpips.c).

The conversion functions (vgg16_features, lpips_lin) take and return plain dicts, so the golden
writers (tools/goldens/cases_lpips.py) push their weights through the same code as real files.
Writes are atomic (temporary file, fsync, rename).
"""
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "goldens"))
from goldens_lib import save_safetensors  # noqa: E402  (the one safetensors writer of tools/)

VGG16_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG16_CHANNELS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                  (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
LPIPS_LIN_CHANNELS = {"vgg": [64, 128, 256, 512, 512], "alex": [64, 192, 384, 256, 256]}


def _np(t):
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(t, dtype=np.float32))


def vgg16_features(state_dict):
    """torchvision vgg16 state dict (or its `features` part) -> {name: float32 array}."""
    out = collections.OrderedDict()
    for idx, (cin, cout) in zip(VGG16_CONV_INDICES, VGG16_CHANNELS):
        for kind, shape in (("weight", (cout, cin, 3, 3)), ("bias", (cout,))):
            name = "features.%d.%s" % (idx, kind)
            src = name if name in state_dict else "%d.%s" % (idx, kind)
            if src not in state_dict:
                raise KeyError("vgg16: the state dict has no '%s' (is this torchvision's vgg16?)" % name)
            a = _np(state_dict[src])
            if a.shape != shape:
                raise ValueError("vgg16: '%s' has shape %s, expected %s" % (name, a.shape, shape))
            out[name] = a
    return out


def lpips_lin(state_dict):
    """lpips v0.1 vgg.pth / alex.pth state dict -> {"lin{k}.weight": (1, C, 1, 1) float32}."""
    out = collections.OrderedDict()
    chans = []
    for k in range(5):
        src = "lin%d.model.1.weight" % k
        if src not in state_dict:
            src = "lin%d.weight" % k
        if src not in state_dict:
            raise KeyError("lpips: the state dict has no 'lin%d.model.1.weight'" % k)
        a = _np(state_dict[src])
        if a.ndim != 4 or a.shape[0] != 1 or a.shape[2:] != (1, 1):
            raise ValueError("lpips: '%s' has shape %s, expected (1, C, 1, 1)" % (src, a.shape))
        if (a < 0).any():
            raise ValueError("lpips: '%s' has negative weights (lpips clamps them at 0)" % src)
        chans.append(a.shape[1])
        out["lin%d.weight" % k] = a
    if chans not in LPIPS_LIN_CHANNELS.values():
        raise ValueError("lpips: channels %s are neither VGG's nor AlexNet's" % chans)
    return out


def _load_pth(path):
    import torch
    sd = torch.load(path, map_location="cpu")
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    return sd


def _not_yet(what):
    sys.exit("convert_weights.py: %s is not yet supported (no C network reads it yet)" % what)


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    cmd = argv[1]
    if cmd in ("convnextv2", "convnext"):
        _not_yet("ConvNeXt-V2 (facebook/convnextv2-base-22k-224)")
    if cmd in ("inception", "pytorch-fid"):
        # eval/ reads pytorch-fid's InceptionV3 through its own converter
        os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "convert_inception.py")] + argv[2:])
    if cmd not in ("vgg16", "lpips-lin") or len(argv) != 4:
        sys.exit("usage: convert_weights.py {vgg16|lpips-lin} IN.pth OUT.safetensors (see --help)")
    src, dst = argv[2], argv[3]
    sd = _load_pth(src)
    tensors = vgg16_features(sd) if cmd == "vgg16" else lpips_lin(sd)
    save_safetensors(dst, tensors, {"source": os.path.basename(src), "converter": "tools/convert_weights.py " + cmd})
    n = sum(int(np.prod(a.shape)) for a in tensors.values())
    print("%s: %d tensors, %d floats -> %s" % (cmd, len(tensors), n, dst))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
