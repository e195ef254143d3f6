#!/usr/bin/python3
"""Writes the seed corpora of the file-reading fuzz targets that need no pmf writer:
tests/corpus/{npz,npy,idx,png,config}/ (fuzz/fuzz_npz.c, fuzz_npy.c, fuzz_idx.c, fuzz_png.c,
fuzz_config.c).
The checkpoint and shard seeds come from pmf's own writers (fuzz/make_seeds.c).

Run: /usr/bin/python3 tools/make_fuzz_corpus.py   (numpy + PIL; deterministic)
Naming, as for tests/corpus/safetensors: ok_* must be accepted, bad_* refused with a message
naming the file, anything else (crash inputs saved by a fuzzer run) must only not crash.
tests/test_fuzz_corpus.c replays every file. Each file stays small (a few KB at most).
"""
import gzip
import io
import os
import shutil
import struct
import zipfile
import zlib

import numpy as np
from PIL import Image

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
CORPUS = os.path.join(ROOT, "tests", "corpus")


def out(kind, name, data):
    d = os.path.join(CORPUS, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ---- npz ---------------------------------------------------------------------------------------
def savez(compressed=False, **arrays):
    b = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(b, **arrays)
    return b.getvalue()


def npy_raw(dict_text, data):
    """An npy 1.0 member with a hand-written header dict (for shapes numpy would never write)."""
    h = dict_text.encode()
    total = (10 + len(h) + 1 + 63) // 64 * 64
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", total - 10) + h + b" " * (total - 10 - len(h) - 1) + b"\n" + data


def zip_members(**members):
    b = io.BytesIO()
    with zipfile.ZipFile(b, "w", zipfile.ZIP_STORED) as z:
        for k, v in members.items():
            z.writestr(k + ".npy", v)
    return b.getvalue()


rng = np.random.default_rng(0)
mu = rng.standard_normal(4)
a = rng.standard_normal((4, 4))
sigma = a @ a.T
out("npz", "ok_stats.npz", savez(mu=mu, sigma=sigma))
out("npz", "ok_stats_compressed.npz", savez(True, mu=mu, sigma=sigma))
out("npz", "ok_ref_stats_f4.npz", savez(ref_mu=mu.astype("<f4"), ref_sigma=sigma.astype("<f4")))
out("npz", "ok_fortran.npz", savez(mu=mu, sigma=np.asfortranarray(rng.standard_normal((4, 4)))))
out("npz", "ok_uint8_and_mu.npz", savez(arr_0=np.zeros((2, 2, 2, 3), np.uint8), mu=mu))
ok = savez(mu=mu, sigma=sigma)
out("npz", "bad_truncated.npz", ok[: len(ok) // 2])
out("npz", "bad_empty.npz", b"")
out("npz", "bad_shape_overflow.npz",
    zip_members(mu=npy_raw("{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693953,), }", b"\0" * 8)))
out("npz", "bad_fortran_overflow.npz",
    zip_members(mu=npy_raw("{'descr': '<f8', 'fortran_order': True, 'shape': (4611686018427387905, 4), }",
                           b"\0" * 32)))
big = bytearray(ok)   # every member's central directory sizes claim 3 GiB
cd = big.find(b"PK\x01\x02")
while cd >= 0:
    struct.pack_into("<II", big, cd + 20, 3 << 30, 3 << 30)
    cd = big.find(b"PK\x01\x02", cd + 4)
out("npz", "bad_member_size_claim.npz", bytes(big))

# ---- idx ---------------------------------------------------------------------------------------
labels = bytes([3, 1, 4, 1, 5, 9, 2, 6])
images = bytes(rng.integers(0, 256, (2, 4, 4), dtype=np.uint8).tobytes())
lab = struct.pack(">IIx", 0x801, len(labels))[:8] + labels
img = struct.pack(">IIII", 0x803, 2, 4, 4) + images
out("idx", "ok_labels.idx", lab)
out("idx", "ok_images.idx", img)
out("idx", "ok_images.idx.gz", gzip.compress(img, mtime=0))
out("idx", "ok_labels.idx.gz", gzip.compress(lab, mtime=0))
out("idx", "bad_truncated.idx", img[:-5])
out("idx", "bad_magic.idx", struct.pack(">I", 0x80D) + img[4:])
out("idx", "bad_16gib_claim.idx", struct.pack(">IIII", 0x803, 1 << 26, 16, 16) + images)
out("idx", "bad_zero_dim.idx", struct.pack(">IIII", 0x803, 0, 4, 4))


# ---- png ---------------------------------------------------------------------------------------
def png(im, **kw):
    b = io.BytesIO()
    im.save(b, "PNG", **kw)
    return b.getvalue()


def chunk(t, data, claim=None):
    n = len(data) if claim is None else claim
    return struct.pack(">I", n) + t + data + struct.pack(">I", zlib.crc32(t + data))


px = rng.integers(0, 256, (6, 5, 3), dtype=np.uint8)
out("png", "ok_rgb_5x6.png", png(Image.fromarray(px)))
out("png", "ok_gray_5x6.png", png(Image.fromarray(px[:, :, 0])))
out("png", "ok_gray1_8x8.png", png(Image.fromarray(px[:, :, 0] > 128).resize((8, 8))))
out("png", "ok_la_5x6.png", png(Image.fromarray(px[:, :, :2].copy(), "LA")))
pal = Image.fromarray(px).convert("P", palette=Image.ADAPTIVE, colors=4)
out("png", "ok_palette_trns.png", png(pal, transparency=0))
info = __import__("PIL.PngImagePlugin", fromlist=["PngInfo"]).PngInfo()
info.add_text("Comment", "hello")
info.add_text("zComment", "compressed " * 20, zip=True)
out("png", "ok_text_chunks.png", png(Image.fromarray(px), pnginfo=info))
for f in os.listdir(os.path.join(CORPUS, "jpeg")):
    if f.endswith(".png"):
        shutil.copy(os.path.join(CORPUS, "jpeg", f), os.path.join(CORPUS, "png", f))
good = png(Image.fromarray(px))
ihdr_end = 8 + 25
out("png", "bad_text_chunk_claims_2gb.png", good[:ihdr_end] + chunk(b"tEXt", b"k\0vv", claim=0x7FFFFFFF))
out("png", "bad_chunk_past_end.png", good[:ihdr_end] + chunk(b"IDAT", b"\0" * 4, claim=1000))
out("png", "bad_no_idat.png", good[:ihdr_end] + chunk(b"IEND", b""))

# ---- config ------------------------------------------------------------------------------------
for f in ("fmnist_default.yml", "fmnist_S4.yml", "pMF_B_16.yml"):
    with open(os.path.join(ROOT, "configs", f), "rb") as src:
        out("config", "ok_" + f, src.read())
out("config", "ok_quoted_strings.yml",
    b"model:\n  model_str: tiny\nout: \"bob's run\\ttab\\x01\"\ndataset:\n  root: 'it''s here'\n  image_size: 8\n"
    b"training:\n  ema_val: [0.5, 1000]\n  steps: 1e3\n")
out("config", "ok_flow_style.yml", b"{model: {model_str: S/4, P_mean: -0.4}, training: {optimizer: adamw}}\n")
out("config", "bad_unknown_key.yml", b"model:\n  model_str: tiny\n  no_such_key: 1\n")
out("config", "bad_type.yml", b"training:\n  batch_size: many\n")
out("config", "bad_yaml.yml", b"model: [unclosed\n")
out("config", "bad_too_deep.yml", b"model:\n  a:\n    b: 1\n")
out("config", "bad_impossible.yml", b"sampling:\n  t_min: 0.9\n  t_max: 0.1\n")


# ---- npy (core/npy.c: pmf_sample --noise/--labels, and eval's npz members as float64) ----------
def npy(arr):
    b = io.BytesIO()
    np.save(b, arr)
    return b.getvalue()


npy_rng = np.random.default_rng(1)   # its own stream: the other seeds stay as they were
f4 = npy(npy_rng.standard_normal((2, 3)).astype("<f4"))
out("npy", "ok_f4_2x3.npy", f4)
out("npy", "ok_f8_fortran.npy", npy(np.asfortranarray(npy_rng.standard_normal((3, 2)))))
out("npy", "ok_i8_labels.npy", npy(np.array([3, 1, 4, 1, 5], "<i8")))
out("npy", "ok_u1.npy", npy(np.arange(4, dtype=np.uint8)))
out("npy", "ok_scalar.npy", npy(np.float32(0.5)))
out("npy", "bad_truncated.npy", f4[:-3])
out("npy", "bad_big_endian.npy", npy(np.zeros(2, ">f4")))
out("npy", "bad_size_wraps.npy",   # 4 * (2^62 + 1) wraps to 4 in 64 bits
    npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (4611686018427387905,), }", b"\0" * 4))
out("npy", "bad_header_past_end.npy", f4[:8] + struct.pack("<H", 60000) + f4[10:])
