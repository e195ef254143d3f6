"""Goldens from the authors' own pMF code (tools/reference/official_pmf/, MIT, verbatim).

  /usr/bin/python3 tools/goldens/gen_goldens.py cases_official_pmf   # (re)write the goldens
  /usr/bin/python3 tools/goldens/cases_official_pmf.py --check [--pmf-sample build/pmf_sample]
        # the converter reproduces them, its command line and pmf_sample's match the official
        # generate(), and the six released sizes convert

Builds the official `pixelMeanFlow` (pmf.py + models/pmfDiT.py) at a tiny size (16 px, patch 4,
RGB, width 32, 2 heads, 2 shared blocks + 2 u-head blocks, 10 classes, noise scale 2), gives every
parameter seeded random non-zero values (the zero-initialised gates, final layer and biases
included), saves its state dict in the official layout (keys "net.*", as evaluate.py loads it),
converts it with tools/convert_weights.py pmf and writes, into tests/goldens/:

  official_pmf_tiny.safetensors        the converted model (what pmf_sample reads)
  official_pmf_tiny_golden.safetensors u for given inputs: z (4,3,16,16), t, h, omega, t_min,
                                       t_max, labels (float; 10 = null) -> net (the u-head's
                                       image) and u = (z - net) / clamp(t, 0.05) from the
                                       official forward; sample1 / sample2: the official
                                       generate() (1 step / 2 steps) from noise.npy and labels.npy
                                       at omega 4, interval [0.2, 0.7] (stored as metadata too)
  official_pmf_noise.npy               (3,3,16,16) float32 raw N(0, 1) (generate scales it by 2)
  official_pmf_labels.npy              (3,) int64 class ids
  official_pmf_fid_resize.safetensors  the official FID preprocessing (utils/fid_util.py +
                                       jax_fid/resize.py, in numpy) of a formula image at 256 and
                                       512 px: rows FID_ROWS of the (3, 299, 299) network input
  official_pmf_ref_stats.npz           reference statistics in the official layout (ref_mu float32,
                                       ref_sigma float64, np.savez), 16-d

--check rebuilds the official checkpoint from the same seed, converts it again and requires the
result to equal the committed official_pmf_tiny.safetensors bit for bit and the official outputs
to equal the committed goldens; then, for each released size (B/16, B/32, L/16, L/32, H/16, H/32),
the official class's own state dict (built on the meta device, so no memory is spent; the B models
then get seeded random values and are converted for real) must give the right architecture and
noise scale, and damaged copies (a key missing, an extra key, a wrong shape, a v-head, a wrong
rope buffer, a contradicting --noise-scale) must fail naming the key.
"""
import os
import sys
import tempfile

try:
    import numpy as np
    import torch
except ImportError:   # ctest runs --check only where /usr/bin/python3 has torch: 77 = skipped
    if __name__ == "__main__":
        print("skipped: %s has no numpy/torch (Debian: python3-torch)" % sys.executable)
        sys.exit(77)
    raise

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tools"))
sys.path.insert(0, os.path.join(ROOT, "tools", "reference", "official_pmf"))
sys.path.insert(0, HERE)

from goldens_lib import OUT_DIR, save_safetensors  # noqa: E402
import convert_pmf  # noqa: E402

TINY = dict(depth=4, aux_head_depth=2, hidden_size=32, patch_size=4, num_heads=2)
IMG, CH, CLASSES, NOISE_SCALE = 16, 3, 10, 2.0
OMEGA, T_MIN, T_MAX = 4.0, 0.2, 0.7


def official_tiny():
    """The official pixelMeanFlow at the tiny size. pmf.py only builds the six released names, so
    the B/32 name (noise scale 2) is pointed at a tiny partial of the same class."""
    from functools import partial
    from models import pmfDiT
    import pmf as official
    saved = pmfDiT.pmfDiT_B_32
    pmfDiT.pmfDiT_B_32 = partial(pmfDiT.pmfDiT, **TINY)
    try:
        torch.manual_seed(0)
        model = official.pixelMeanFlow("pmfDiT_B_32", img_size=IMG, img_channels=CH, num_classes=CLASSES)
    finally:
        pmfDiT.pmfDiT_B_32 = saved
    assert model.noise_scale == NOISE_SCALE
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            # every parameter random and non-zero: norms around 1, gates, final layer and biases
            # (zero at init) of the order of a trained model's, the rest perturbed by 30%
            r = torch.randn(p.shape, generator=g)
            if name.endswith("norm1.weight") or name.endswith("norm2.weight") or "norm.weight" in name:
                p.copy_(1.0 + 0.2 * r)
            elif name.endswith("_scale"):
                p.copy_(0.5 * r)
            elif "final_layer" in name:
                p.copy_(0.1 * r)
            elif name.endswith("bias"):
                p.copy_(0.05 * r)
            else:
                p.add_(0.3 * p.std() * r)
    return model.eval()


class GivenNoise:
    """What generate() asks of its rng: randn(shape), here the stored noise."""

    def __init__(self, noise):
        self.noise = torch.from_numpy(noise)

    def randn(self, shape):
        assert tuple(shape) == tuple(self.noise.shape), (shape, self.noise.shape)
        return self.noise.clone()


def outputs(model):
    """Inputs and the official outputs, as a dict of float32 arrays."""
    rng = np.random.default_rng(7)
    z = (rng.standard_normal((4, CH, IMG, IMG)) * NOISE_SCALE).astype(np.float32)
    t = np.array([1.0, 0.7, 0.3, 0.02], np.float32)       # 0.02 < 0.05: the clamp
    h = np.array([1.0, 0.4, 0.3, 0.01], np.float32)
    omega = np.array([1.0, 3.0, 7.5, 2.0], np.float32)
    t_min = np.array([0.0, 0.1, 0.2, 0.3], np.float32)
    t_max = np.array([1.0, 0.8, 0.6, 0.5], np.float32)
    labels = np.array([0, 3, 9, CLASSES], np.int64)          # the last is the null class
    tt = [torch.from_numpy(a) for a in (z, t, h, omega, t_min, t_max)]
    y = torch.from_numpy(labels)
    with torch.no_grad():
        u = model.u_fn(*tt, y)[0].numpy()   # the official u_fn
        # the u-head's image itself (u is dominated by z / t, so it is compared on its own): the
        # official forward's own steps up to its x -> u conversion
        net_ = model.net
        seq = net_._build_sequence(tt[0], tt[2], tt[3], tt[4], tt[5], y)
        for block in list(net_.shared_blocks) + list(net_.u_heads):
            seq = block(seq, net_.rope_freqs)
        net = net_.unpatchify(net_.u_final_layer(seq[:, net_.prefix_tokens:])).numpy()
        u_again = ((tt[0] - torch.from_numpy(net)) / torch.clamp(tt[1].reshape(-1, 1, 1, 1), min=0.05)).numpy()
        assert np.array_equal(u_again, u), "the forward's steps were not the official forward's"
    noise = np.random.default_rng(8).standard_normal((3, CH, IMG, IMG)).astype(np.float32)
    sample_labels = np.array([1, 5, 7], np.int64)
    s = {}
    for steps in (1, 2):
        with torch.no_grad():
            s[steps] = model.generate(3, GivenNoise(noise), steps, OMEGA, T_MIN, T_MAX,
                                      labels=torch.from_numpy(sample_labels)).numpy()
    gold = dict(z=z, t=t, h=h, omega=omega, t_min=t_min, t_max=t_max, labels=labels.astype(np.float32),
                u=u, net=net, sample1=s[1], sample2=s[2])
    return gold, noise, sample_labels


def write(out_dir):
    model = official_tiny()
    sd = model.state_dict()   # keys "net.*" and the buffer net.rope_freqs, as evaluate.py loads
    with tempfile.TemporaryDirectory() as tmp:
        pt = os.path.join(tmp, "official_tiny.pt")
        torch.save(sd, pt)
        loaded = torch.load(pt, map_location="cpu")   # through the file, as a user's .pt
    tensors, meta, arch = convert_pmf.convert(loaded, noise_scale=NOISE_SCALE)
    meta["source"] = "tools/goldens/cases_official_pmf.py (official pixelMeanFlow, tiny, seeded)"
    save_safetensors(os.path.join(out_dir, "official_pmf_tiny.safetensors"), tensors, meta)
    gold, noise, labels = outputs(model)
    save_safetensors(os.path.join(out_dir, "official_pmf_tiny_golden.safetensors"), gold,
                     {"omega": OMEGA, "t_min": T_MIN, "t_max": T_MAX, "noise_scale": NOISE_SCALE})
    np.save(os.path.join(out_dir, "official_pmf_noise.npy"), noise)
    np.save(os.path.join(out_dir, "official_pmf_labels.npy"), labels)
    print("  official_pmf: %d tensors, u %s, samples %s" % (len(tensors), gold["u"].shape, gold["sample1"].shape))


# ---------------------------------------------------------------------------------------------
# The official FID preprocessing (main branch, JAX): utils/fid_util.py's _preprocess_per_device:
# uint8 NHWC -> float32 -> utils/jax_fid/resize.py's resize_torch_grid_sample to 299 x 299 ->
# (x - 128) / 128. Below, that resize line by line in numpy (jnp -> np, take mode "clip").

def resize_torch_grid_sample(x, out_h=299, out_w=299):
    B, H, W, C = x.shape
    x = x.astype(np.float32)
    ys = (np.arange(out_h, dtype=np.float32) + 0.5) * (H / out_h) - 0.5
    y0 = np.floor(ys).astype(np.int32)
    y1 = y0 + 1
    wy = (ys - y0.astype(np.float32)).reshape(1, out_h, 1, 1)
    row0 = np.take(x, y0, axis=1, mode="clip")
    row1 = np.take(x, y1, axis=1, mode="clip")
    tmp = row0 * (1.0 - wy) + row1 * wy
    xs = (np.arange(out_w, dtype=np.float32) + 0.5) * (W / out_w) - 0.5
    x0 = np.floor(xs).astype(np.int32)
    x1 = x0 + 1
    wx = (xs - x0.astype(np.float32)).reshape(1, 1, out_w, 1)
    col0 = np.take(tmp, x0, axis=2, mode="clip")
    col1 = np.take(tmp, x1, axis=2, mode="clip")
    return col0 * (1.0 - wx) + col1 * wx


def fid_test_image(size):
    """A deterministic uint8 (1, size, size, 3) image the C test rebuilds from the same formula."""
    i, j, c = np.meshgrid(np.arange(size), np.arange(size), np.arange(3), indexing="ij")
    return ((i * 7 + j * 13 + c * 101 + (i * j) % 17) % 256).astype(np.uint8)[None]


FID_ROWS = [0, 1, 2, 150, 297, 298]


def write_fid_resize(out_dir):
    out = {"rows": np.array(FID_ROWS, np.float32)}
    for size in (256, 512):
        x = resize_torch_grid_sample(fid_test_image(size).astype(np.float32), 299, 299)
        x = (x - 128.0) / 128.0                      # (1, 299, 299, 3)
        out["pmf_jax_%d" % size] = np.ascontiguousarray(x[0][FID_ROWS].transpose(2, 0, 1))   # (3, rows, 299)
    save_safetensors(os.path.join(out_dir, "official_pmf_fid_resize.safetensors"), out)


def write_fid_ref_stats(out_dir):
    """An .npz written the way utils/fid_util.py's compute_fid_stats writes the official reference
    statistics (np.savez(path, ref_mu=mu, ref_sigma=sigma); mu the float32 mean of float32
    features, sigma np.cov's float64), at 16-d instead of 2048-d; and its values for the C test."""
    feats = np.random.default_rng(9).standard_normal((40, 16)).astype(np.float32)
    mu, sigma = np.mean(feats, axis=0), np.cov(feats, rowvar=False)
    np.savez(os.path.join(out_dir, "official_pmf_ref_stats.npz"), ref_mu=mu, ref_sigma=sigma)
    return mu, sigma


def generate():
    torch.set_num_threads(1)
    write(OUT_DIR)
    write_fid_resize(OUT_DIR)
    mu, sigma = write_fid_ref_stats(OUT_DIR)
    print("  official_pmf_ref_stats.npz: ref_mu %s %s, ref_sigma %s %s, sum %.9g %.9g"
          % (mu.dtype, mu.shape, sigma.dtype, sigma.shape, mu.astype(np.float64).sum(), sigma.sum()))


# ---------------------------------------------------------------------------------------------
# --check

def _same_files(a, b):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        return fa.read() == fb.read()


def check_goldens():
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        write(tmp)
        write_fid_resize(tmp)
        write_fid_ref_stats(tmp)
        for f in ("official_pmf_tiny.safetensors", "official_pmf_noise.npy", "official_pmf_labels.npy",
                  "official_pmf_fid_resize.safetensors", "official_pmf_ref_stats.npz"):
            if not _same_files(os.path.join(tmp, f), os.path.join(OUT_DIR, f)):
                raise SystemExit("FAIL: %s differs from the committed tests/goldens/%s" % (f, f))
        # the official outputs: same inputs bit for bit, outputs within float32 noise (threads)
        fresh = convert_pmf_load(os.path.join(tmp, "official_pmf_tiny_golden.safetensors"))
        old = convert_pmf_load(os.path.join(OUT_DIR, "official_pmf_tiny_golden.safetensors"))
        for k in old:
            err = np.abs(fresh[k] - old[k]).max() / max(np.abs(old[k]).max(), 1e-30)
            if err > 1e-5:
                raise SystemExit("FAIL: golden '%s' differs by %g relative" % (k, err))
    print("ok: the converter reproduces tests/goldens/official_pmf_tiny.safetensors bit for bit")


def convert_pmf_load(path):
    import json
    import struct
    raw = open(path, "rb").read()
    (n,) = struct.unpack("<Q", raw[:8])
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for k, e in hdr.items():
        if k != "__metadata__":
            b0, b1 = e["data_offsets"]
            out[k] = np.frombuffer(raw[8 + n + b0:8 + n + b1], "<f4").reshape(e["shape"])
    return out


SIZES = [("pmfDiT_B_16", "B/16", 1.0, 256, 768, 16), ("pmfDiT_B_32", "B/32", 2.0, 512, 768, 16),
         ("pmfDiT_L_16", "L/16", 1.0, 256, 1024, 32), ("pmfDiT_L_32", "L/32", 4.0, 512, 1024, 32),
         ("pmfDiT_H_16", "H/16", 2.0, 256, 1280, 48), ("pmfDiT_H_32", "H/32", 4.0, 512, 1280, 48)]


def official_state_dict(cls_name, img):
    """The official inference state dict of a released size with its parameters on the meta device
    (shapes, no memory; torch 1.13 has no default-device switch, so the constructors' torch.empty /
    zeros / ones are pointed at "meta" while the official class builds). The rope_freqs buffer is
    computed for real, as the official code does."""
    import pmf as official
    orig = {n: getattr(torch, n) for n in ("empty", "zeros", "ones")}

    def on_meta(f):
        def g(*a, **k):
            if k.get("device") is None:   # nn.Linear & co. pass device=None explicitly
                k["device"] = "meta"
            return f(*a, **k)
        return g
    for n, f in orig.items():
        setattr(torch, n, on_meta(f))
    try:
        m = official.pixelMeanFlow(cls_name, img_size=img)
    finally:
        for n, f in orig.items():
            setattr(torch, n, f)
    return m.state_dict()


def random_values(sd, seed=0):
    """The same keys with seeded random float32 values (the buffer kept)."""
    g = torch.Generator().manual_seed(seed)
    return {k: v if k == "net.rope_freqs" else torch.randn(v.shape, generator=g) * 0.02 for k, v in sd.items()}


def expect_error(sd, needle, **kw):
    try:
        convert_pmf.plan(sd, **kw)
    except convert_pmf.ConvertError as e:
        if needle not in str(e):
            raise SystemExit("FAIL: error '%s' does not name '%s'" % (e, needle))
        return str(e)
    raise SystemExit("FAIL: a damaged state dict (%s) converted" % needle)


def check_sizes():
    for cls, name, scale, img, dim, depth in SIZES:
        sd = official_state_dict(cls, img)
        # B models are converted with real random values (0.45 GB); L and H (up to 3.8 GB) are
        # planned from their shapes: every key and shape is checked either way
        full = name.startswith("B/")
        if full:
            sd = random_values(sd)
            tensors, meta, arch = convert_pmf.convert(sd)
            n_params = sum(int(np.prod(a.shape)) for a in tensors.values())
            bad = [k for k, a in tensors.items() if not np.any(a)]
            if bad:
                raise SystemExit("FAIL: %s: %s converted to zeros" % (cls, bad[0]))
            del tensors
        else:
            items, meta, arch = convert_pmf.plan(sd)
            n_params = sum(int(np.prod(shape)) for _, _, shape, _ in items)
        ok = (arch["model_str"] == name and arch["noise_scale"] == scale and arch["img_size"] == img and
              arch["dim"] == dim and arch["depth_shared"] + arch["depth_head"] == depth and arch["depth_head"] == 8 and
              arch["num_classes"] == 1000 and arch["channels"] == 3)
        if not ok:
            raise SystemExit("FAIL: %s inferred as %s" % (cls, arch))
        n_off = sum(v.numel() for k, v in sd.items() if k != "net.rope_freqs")
        if n_params != n_off:
            raise SystemExit("FAIL: %s: %d floats converted of %d" % (cls, n_params, n_off))
        if "model_str: '%s'" % name not in meta["config"] or "noise_scale: %g" % scale not in meta["config"]:
            raise SystemExit("FAIL: %s: config metadata %r" % (cls, meta["config"]))
        # damaged copies
        k_missing = "net.u_heads.3.attn.k_norm.weight"
        d = dict(sd)
        del d[k_missing]
        expect_error(d, k_missing)
        d = dict(sd)
        d["net.extra_thing"] = torch.zeros(3)
        expect_error(d, "net.extra_thing")
        d = dict(sd)
        d["net.shared_blocks.2.mlp.w3._flax_linear.weight"] = torch.zeros(5, 7)
        expect_error(d, "net.shared_blocks.2.mlp.w3._flax_linear.weight")
        d = dict(sd)
        d["net.v_heads.0.norm1.weight"] = torch.ones(dim)
        expect_error(d, "net.v_heads.0.norm1.weight")
        convert_pmf.plan(d, drop_v_head=True)
        d = dict(sd)
        d["net.rope_freqs"] = torch.zeros(3, dtype=torch.complex64)
        expect_error(d, "net.rope_freqs")
        expect_error(sd, "--noise-scale", noise_scale=scale * 3)
        print("ok: %s -> %s, noise scale %g, %d floats (%s); missing / unexpected / mis-shaped / v-head keys named"
              % (cls, name, scale, n_params, "converted" if full else "planned"))
        del sd


def check_command_line(pmf_sample):
    """The user's path end to end: the official .pt through the converter's command line, then the
    pmf_sample program with --noise / --labels / --npy, against the official generate()."""
    import subprocess
    torch.set_num_threads(1)
    model = official_tiny()
    gold, noise, labels = outputs(model)
    with tempfile.TemporaryDirectory() as tmp:
        pt, st = os.path.join(tmp, "tiny.pt"), os.path.join(tmp, "tiny.safetensors")
        torch.save(model.state_dict(), pt)
        conv = [sys.executable, os.path.join(ROOT, "tools", "convert_weights.py"), "pmf", pt, st]
        r = subprocess.run(conv, capture_output=True, text=True)
        if r.returncode == 0 or "--noise-scale" not in r.stderr:
            raise SystemExit("FAIL: a non-released shape converted without --noise-scale: %s" % r.stderr)
        subprocess.run(conv + ["--noise-scale", str(NOISE_SCALE)], check=True, capture_output=True)
        if not pmf_sample:
            print("ok: the converter's command line (pmf_sample not given: --pmf-sample PATH)")
            return
        np.save(os.path.join(tmp, "noise.npy"), noise)
        np.save(os.path.join(tmp, "labels.npy"), labels.astype(np.int32))   # another integer dtype
        for steps in (1, 2):
            out = os.path.join(tmp, "s%d.npy" % steps)
            subprocess.run([pmf_sample, st, "--noise", os.path.join(tmp, "noise.npy"), "--labels",
                            os.path.join(tmp, "labels.npy"), "--npy", out, "--steps", str(steps), "--omega", str(OMEGA),
                            "--t-min", str(T_MIN), "--t-max", str(T_MAX)], check=True, capture_output=True)
            got, want = np.load(out), gold["sample%d" % steps]
            err = np.sqrt(((got - want) ** 2).sum() / (want ** 2).sum())
            print("ok: pmf_sample %d step%s vs official generate(): rel err %.2e" % (steps, "s" if steps > 1 else "", err))
            if got.dtype != np.float32 or got.shape != want.shape or not err < 1e-4:
                raise SystemExit("FAIL: pmf_sample %d-step samples: %s %s, rel err %g" % (steps, got.dtype, got.shape, err))


if __name__ == "__main__":
    if "--check" in sys.argv:
        check_goldens()
        check_command_line(sys.argv[sys.argv.index("--pmf-sample") + 1] if "--pmf-sample" in sys.argv else None)
        check_sizes()
    else:
        generate()
