#!/usr/bin/python3
"""Convert PyTorch weight files into the safetensors files pmf's C loaders read.

Run with Debian's interpreter (/usr/bin/python3, python3-torch):

  /usr/bin/python3 tools/convert_weights.py vgg16 vgg16-397923af.pth vgg16_features.safetensors
  /usr/bin/python3 tools/convert_weights.py alexnet alexnet-owt-7be5be79.pth alexnet_features.safetensors
  /usr/bin/python3 tools/convert_weights.py lpips-lin vgg.pth lpips_v0.1_vgg_lin.safetensors
  /usr/bin/python3 tools/convert_weights.py lpips-lin alex.pth lpips_v0.1_alex_lin.safetensors
  /usr/bin/python3 tools/convert_weights.py convnextv2 pytorch_model.bin convnextv2_base_22k_224.safetensors
  /usr/bin/python3 tools/convert_weights.py convnextv2 model.safetensors convnextv2_base_22k_224.safetensors
  /usr/bin/python3 tools/convert_weights.py inception IN.pth OUT (runs tools/convert_inception.py)
  /usr/bin/python3 tools/convert_weights.py pmf pMF-B-16.pt pMF-B-16.safetensors [--noise-scale S] [--drop-v-head]

Tensor names written (all float32, row-major, PyTorch layouts), read by perceptual/*.c:

  vgg16      features.{0,2,5,7,10,12,14,17,19,21,24,26,28}.weight  (Cout, Cin, 3, 3)
             features.{...}.bias                                   (Cout)
             torchvision's own keys of `vgg16().features` (the 13 convs up to relu5_3); the
             classifier is dropped. Input: torchvision's vgg16-397923af.pth (IMAGENET1K_V1, what
             lpips loads) or any state dict with those keys (a "features." prefix is optional).
             C loader: vgg16_load / lpips_vgg16_load (perceptual/vgg16.c).
  alexnet    features.{0,3,6,8,10}.weight  (Cout, Cin, K, K): (64, 3, 11, 11), (192, 64, 5, 5),
                                           (384, 192, 3, 3), (256, 384, 3, 3), (256, 256, 3, 3)
             features.{...}.bias           (Cout)
             torchvision's own keys of `alexnet().features` (the 5 convs up to relu5); the
             classifier is dropped. Input: torchvision's alexnet-owt-7be5be79.pth (IMAGENET1K_V1, what
             lpips.LPIPS(net='alex') loads) or any state dict with those keys ("features." optional).
             C loader: alexnet_load / lpips_alex_load (perceptual/alexnet.c, lpips.c).
  lpips-lin  lin{k}.weight, k = 0..4, shape (1, C, 1, 1), no bias (NetLinLayer's 1x1 conv).
             Input: richzhang/PerceptualSimilarity's lpips/weights/v0.1/{vgg,alex}.pth (legacy torch
             serialization; keys lin{k}.model.1.weight). C loader: lpips_vgg16_load, lpips_alex_load (lpips.c).
  convnextv2 HF transformers' ConvNextV2Model keys (the "convnextv2." prefix of
             ConvNextV2ForImageClassification dropped; the classifier is dropped), d_s = dims[s]:
             embeddings.patch_embeddings.weight                     (d0, 3, 4, 4)
             embeddings.patch_embeddings.bias                       (d0)
             embeddings.layernorm.{weight,bias}                     (d0)
             encoder.stages.{s}.downsampling_layer.0.{weight,bias}  (d_{s-1})     s >= 1, LayerNorm
             encoder.stages.{s}.downsampling_layer.1.weight         (d_s, d_{s-1}, 2, 2)   conv
             encoder.stages.{s}.downsampling_layer.1.bias           (d_s)
             encoder.stages.{s}.layers.{i}.dwconv.weight            (C, 1, 7, 7)
             encoder.stages.{s}.layers.{i}.dwconv.bias              (C)
             encoder.stages.{s}.layers.{i}.layernorm.{weight,bias}  (C)
             encoder.stages.{s}.layers.{i}.pwconv1.weight           (4C, C)
             encoder.stages.{s}.layers.{i}.pwconv1.bias             (4C)
             encoder.stages.{s}.layers.{i}.grn.{weight,bias}        (1, 1, 1, 4C)
             encoder.stages.{s}.layers.{i}.pwconv2.weight           (C, 4C)
             encoder.stages.{s}.layers.{i}.pwconv2.bias             (C)
             layernorm.{weight,bias}                                (d3)
             Metadata "depths" and "dims" ("3,3,27,3", "128,256,512,1024" for Base), inferred from
             the keys. Input: facebook/convnextv2-base-22k-224's pytorch_model.bin or
             model.safetensors (or any size of ConvNeXt-V2 with these keys). Every shape is checked.
             C loader: convnext_load (perceptual/convnext.c).

  pmf        the authors' released pMF models (github.com/Lyy-iiis/pMF, torch branch: the state dict
             evaluate.py loads, keys "net.*") onto pmf's own model (pmf/model.c), in the layout of a
             pmf_train checkpoint's raw weights: "model/<pmf name>" (see tools/convert_pmf.py for the
             name map and every difference found), metadata "format" = "pmf-inference-1" and "config"
             (the architecture inferred from the shapes and the official evaluation settings as YAML
             with pmf_train's keys). pmf_sample and pmf_eval read it like a checkpoint. Noise scale:
             pmf.py's table for the six released sizes, else --noise-scale.

The conversion functions (vgg16_features, alexnet_features, lpips_lin, convnextv2) take and return plain dicts,
so the golden writers (tools/goldens/cases_lpips.py, cases_alexnet.py, cases_convnext.py) push their weights through the same code as real files.
Writes are atomic (temporary file, fsync, rename).
"""
import collections
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "goldens"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from goldens_lib import save_safetensors  # noqa: E402  (the one safetensors writer of tools/)

VGG16_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
VGG16_CHANNELS = [(3, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256), (256, 256),
                  (256, 512), (512, 512), (512, 512), (512, 512), (512, 512), (512, 512)]
ALEXNET_CONVS = [(0, 3, 64, 11), (3, 64, 192, 5), (6, 192, 384, 3), (8, 384, 256, 3), (10, 256, 256, 3)]  # idx, Cin, Cout, K
LPIPS_LIN_CHANNELS = {"vgg": [64, 128, 256, 512, 512], "alex": [64, 192, 384, 256, 256]}


def _np(t):
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(t, dtype=np.float32))


def _torchvision_features(state_dict, convs, net):
    """The conv weights and biases of a torchvision `features` stack: convs = [(index, Cin, Cout, K)]."""
    out = collections.OrderedDict()
    for idx, cin, cout, k in convs:
        for kind, shape in (("weight", (cout, cin, k, k)), ("bias", (cout,))):
            name = "features.%d.%s" % (idx, kind)
            src = name if name in state_dict else "%d.%s" % (idx, kind)
            if src not in state_dict:
                raise KeyError("%s: the state dict has no '%s' (is this torchvision's %s?)" % (net, name, net))
            a = _np(state_dict[src])
            if a.shape != shape:
                raise ValueError("%s: '%s' has shape %s, expected %s" % (net, name, a.shape, shape))
            out[name] = a
    return out


def vgg16_features(state_dict):
    """torchvision vgg16 state dict (or its `features` part) -> {name: float32 array}."""
    convs = [(idx, cin, cout, 3) for idx, (cin, cout) in zip(VGG16_CONV_INDICES, VGG16_CHANNELS)]
    return _torchvision_features(state_dict, convs, "vgg16")


def alexnet_features(state_dict):
    """torchvision alexnet state dict (or its `features` part) -> {name: float32 array}."""
    return _torchvision_features(state_dict, ALEXNET_CONVS, "alexnet")


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


def _convnextv2_names(depths, dims):
    """[(name, shape)] of a ConvNeXt-V2 of these depths and widths, in the C loader's order."""
    d0 = dims[0]
    out = [("embeddings.patch_embeddings.weight", (d0, 3, 4, 4)), ("embeddings.patch_embeddings.bias", (d0,)),
           ("embeddings.layernorm.weight", (d0,)), ("embeddings.layernorm.bias", (d0,))]
    for s in range(4):
        C = dims[s]
        if s > 0:
            p, cin = "encoder.stages.%d.downsampling_layer." % s, dims[s - 1]
            out += [(p + "0.weight", (cin,)), (p + "0.bias", (cin,)), (p + "1.weight", (C, cin, 2, 2)),
                    (p + "1.bias", (C,))]
        for i in range(depths[s]):
            p = "encoder.stages.%d.layers.%d." % (s, i)
            out += [(p + "dwconv.weight", (C, 1, 7, 7)), (p + "dwconv.bias", (C,)),
                    (p + "layernorm.weight", (C,)), (p + "layernorm.bias", (C,)),
                    (p + "pwconv1.weight", (4 * C, C)), (p + "pwconv1.bias", (4 * C,)),
                    (p + "grn.weight", (1, 1, 1, 4 * C)), (p + "grn.bias", (1, 1, 1, 4 * C)),
                    (p + "pwconv2.weight", (C, 4 * C)), (p + "pwconv2.bias", (C,))]
    out += [("layernorm.weight", (dims[3],)), ("layernorm.bias", (dims[3],))]
    return out


def convnextv2(state_dict):
    """HF ConvNextV2Model / ConvNextV2ForImageClassification state dict -> ({name: float32 array},
    depths, dims). Names lose the "convnextv2." prefix; the classifier and unknown keys are dropped."""
    prefix = "convnextv2." if any(k.startswith("convnextv2.") for k in state_dict) else ""
    sd = {k[len(prefix):]: v for k, v in state_dict.items() if k.startswith(prefix)}
    if "embeddings.patch_embeddings.weight" not in sd:
        raise KeyError("convnextv2: the state dict has no '%sembeddings.patch_embeddings.weight' (is this HF "
                       "transformers' ConvNeXt-V2?)" % prefix)
    dims, depths = [], []
    for s in range(4):
        key = "embeddings.patch_embeddings.weight" if s == 0 else "encoder.stages.%d.downsampling_layer.1.weight" % s
        if key not in sd:
            raise KeyError("convnextv2: the state dict has no '%s%s' (4 stages expected)" % (prefix, key))
        dims.append(int(sd[key].shape[0]))
        n = 0
        while "encoder.stages.%d.layers.%d.dwconv.weight" % (s, n) in sd:
            n += 1
        depths.append(n)
    if "encoder.stages.4.downsampling_layer.1.weight" in sd:
        raise ValueError("convnextv2: more than 4 stages")
    out = collections.OrderedDict()
    for name, shape in _convnextv2_names(depths, dims):
        if name not in sd:
            raise KeyError("convnextv2: the state dict has no '%s%s'" % (prefix, name))
        a = _np(sd[name])
        if a.shape != shape:
            raise ValueError("convnextv2: '%s%s' has shape %s, expected %s" % (prefix, name, a.shape, shape))
        out[name] = a
    return out, depths, dims


def _load_safetensors(path):
    """A safetensors file -> {name: float32 array} (F32, F16, BF16, F64)."""
    import json
    import struct
    with open(path, "rb") as f:
        raw = f.read()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n].decode())
    base, out = 8 + n, {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        b0, b1 = e["data_offsets"]
        buf, dt = raw[base + b0:base + b1], e["dtype"]
        if dt == "BF16":
            a = (np.frombuffer(buf, "<u2").astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(buf, {"F32": "<f4", "F16": "<f2", "F64": "<f8"}[dt])
        out[name] = a.astype(np.float32).reshape(e["shape"])
    return out


def _load_pth(path):
    import torch
    sd = torch.load(path, map_location="cpu")
    if isinstance(sd, dict) and "state_dict" in sd:
        sd = sd["state_dict"]
    return sd


def main(argv):
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    cmd = argv[1]
    if cmd in ("convnextv2", "convnext"):
        if len(argv) != 4:
            sys.exit("usage: convert_weights.py convnextv2 {pytorch_model.bin|model.safetensors} OUT.safetensors")
        src, dst = argv[2], argv[3]
        sd = _load_safetensors(src) if src.endswith(".safetensors") else _load_pth(src)
        tensors, depths, dims = convnextv2(sd)
        save_safetensors(dst, tensors, {"source": os.path.basename(src), "converter": "tools/convert_weights.py convnextv2",
                                        "depths": ",".join(map(str, depths)), "dims": ",".join(map(str, dims))})
        n = sum(int(np.prod(a.shape)) for a in tensors.values())
        print("convnextv2: depths %s dims %s, %d tensors, %d floats -> %s" % (depths, dims, len(tensors), n, dst))
        return 0
    if cmd in ("inception", "pytorch-fid"):
        # eval/ reads pytorch-fid's InceptionV3 through its own converter
        os.execv(sys.executable, [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "convert_inception.py")] + argv[2:])
    if cmd == "pmf":
        from convert_pmf import main as pmf_main
        return pmf_main(argv[2:])
    convert = {"vgg16": vgg16_features, "alexnet": alexnet_features, "lpips-lin": lpips_lin}
    if cmd not in convert or len(argv) != 4:
        sys.exit("usage: convert_weights.py {vgg16|alexnet|lpips-lin|convnextv2|pmf} IN OUT.safetensors (see --help)")
    src, dst = argv[2], argv[3]
    sd = _load_pth(src)
    tensors = convert[cmd](sd)
    save_safetensors(dst, tensors, {"source": os.path.basename(src), "converter": "tools/convert_weights.py " + cmd})
    n = sum(int(np.prod(a.shape)) for a in tensors.values())
    print("%s: %d tensors, %d floats -> %s" % (cmd, len(tensors), n, dst))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
