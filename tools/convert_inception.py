#!/usr/bin/python3
"""Convert pytorch-fid's FID InceptionV3 weights into the safetensors file eval/inception.c reads.

Run with Debian's interpreter (/usr/bin/python3, python3-torch):

  /usr/bin/python3 tools/convert_inception.py pt_inception-2015-12-05-6726825d.pth pt_inception-2015-12-05.safetensors
  /usr/bin/python3 tools/convert_inception.py --hash OUT.safetensors     (the test weights, see below)

Input: pytorch-fid's FID_WEIGHTS_URL file pt_inception-2015-12-05-6726825d.pth (the TF FID graph's
weights as a torchvision Inception3 state dict: 566 entries, legacy torch serialization; porting
notes A2), or any state dict with the same keys (a "module." prefix is stripped).

Tensor names written (all float32, PyTorch layouts, BatchNorm NOT folded; the C loader folds it with
eps 0.001 in double, w' = w gamma / sqrt(var + eps), b' = beta - mean gamma / sqrt(var + eps)):

  <layer>.conv.weight                 (Cout, Cin, KH, KW)   94 BasicConv2d layers, e.g.
  <layer>.bn.weight / .bn.bias        (Cout)                Conv2d_1a_3x3, Mixed_5b.branch1x1,
  <layer>.bn.running_mean / _var      (Cout)                Mixed_7c.branch_pool
  fc.weight                           (1008, 2048)
  fc.bias                             (1008)

num_batches_tracked (int64 counters) are dropped; every other key must be one of the above, and all
94 layers must be present with the shapes of pytorch-fid's fid_inception_v3() (checked against the
layer table of tools/goldens/cases_inception.py, the same table as eval/inception.c).
--hash writes the deterministic test weights of tools/goldens/cases_inception.py instead (pmf_eval
--weights with that file must print the same number as pmf_eval --hash-weights).
Writes are atomic (temporary file, fsync, rename).
"""
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "goldens"))
from goldens_lib import save_safetensors  # noqa: E402  (the one safetensors writer of tools/)


def _conv_table():
    import cases_inception  # noqa: E402  (the one layer table the goldens use too)
    return cases_inception.conv_table()


def _np(t):
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.ascontiguousarray(np.asarray(t, dtype=np.float32))


def inception_fid(state_dict):
    """pytorch-fid state dict -> {name: float32 array} as eval/inception.c reads it."""
    sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state_dict.items()}
    out = {}
    for name, cin, cout, k, _, _ in _conv_table():
        keys = {name + ".conv.weight": (cout, cin) + tuple(k)}
        for b in ("weight", "bias", "running_mean", "running_var"):
            keys["%s.bn.%s" % (name, b)] = (cout,)
        for key, shape in keys.items():
            if key not in sd:
                raise SystemExit("convert_inception: the input has no tensor '%s' (is it pytorch-fid's "
                                 "pt_inception-2015-12-05 file?)" % key)
            a = _np(sd[key])
            if a.shape != shape:
                raise SystemExit("convert_inception: '%s' has shape %s, expected %s" % (key, a.shape, shape))
            out[key] = a
    for key, shape in (("fc.weight", (1008, 2048)), ("fc.bias", (1008,))):
        if key not in sd or _np(sd[key]).shape != shape:
            raise SystemExit("convert_inception: '%s' missing or not %s (pytorch-fid's net has 1008 logits)" % (key, shape))
        out[key] = _np(sd[key])
    extra = [k for k in sd if k not in out and not k.endswith("num_batches_tracked")]
    if extra:
        raise SystemExit("convert_inception: unexpected tensors %s ... (%d)" % (extra[:4], len(extra)))
    return out


def main(argv):
    if len(argv) == 3 and argv[1] == "--hash":
        import cases_inception
        tensors = inception_fid(cases_inception.hashed_state_dict())
        save_safetensors(argv[2], tensors, {"source": "hash weights of tools/goldens/cases_inception.py"})
    elif len(argv) == 3:
        import torch
        sd = torch.load(argv[1], map_location="cpu")
        if isinstance(sd, dict) and "state_dict" in sd:
            sd = sd["state_dict"]
        tensors = inception_fid(sd)
        save_safetensors(argv[2], tensors, {"source": os.path.basename(argv[1]), "bn_eps": "0.001",
                                           "network": "pytorch-fid fid_inception_v3"})
    else:
        print(__doc__)
        return 2
    n = sum(a.size for a in tensors.values())
    print("convert_inception: %d tensors, %d floats -> %s" % (len(tensors), n, argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
