"""Goldens for dataset/crop.c: PIL's decode + guided-diffusion's center_crop_arr (spec 7.3).

Writes (if missing) a few small source images under tests/data/ (kept in the repository, so the C
test crops exactly these bytes), then for each one tests/goldens/crop_<stem>.safetensors holding
  out  uint8 (64, 64, 3)   center_crop_arr(Image.open(path).convert("RGB"), 64)
  src  uint8 (2, 3)        the decoded pixels (0,0) and (h-1,w-1), to tell decode from resize bugs
Run: /usr/bin/python3 tools/goldens/gen_goldens.py cases_crop   (numpy + PIL; no torch needed)
"""
import json
import os
import struct

import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
DATA = os.path.join(ROOT, "tests", "data")
GOLD = os.path.join(ROOT, "tests", "goldens")
SIZE = 64


def center_crop_arr(pil_image, image_size):
    """guided-diffusion/guided_diffusion/image_datasets.py, verbatim."""
    while min(*pil_image.size) >= 2 * image_size:
        pil_image = pil_image.resize(tuple(x // 2 for x in pil_image.size), resample=Image.BOX)
    scale = image_size / min(*pil_image.size)
    pil_image = pil_image.resize(tuple(round(x * scale) for x in pil_image.size), resample=Image.BICUBIC)
    arr = np.array(pil_image)
    crop_y = (arr.shape[0] - image_size) // 2
    crop_x = (arr.shape[1] - image_size) // 2
    return arr[crop_y: crop_y + image_size, crop_x: crop_x + image_size]


def save_u8(path, tensors):
    header, blobs, off = {}, [], 0
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype=np.uint8).tobytes()
        header[name] = {"dtype": "U8", "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path + ".tmp", "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(path + ".tmp", path)


def scene(w, h, seed):
    """Smooth gradients, edges and some noise: exercises every filter tap."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float64)
    r = 127 + 120 * np.sin(x / 17.0) * np.cos(y / 23.0)
    g = 255 * (x + y) / (w + h)
    b = np.where(((x // 16) + (y // 16)) % 2 == 0, 40, 215).astype(np.float64)
    img = np.stack([r, g, b], -1) + rng.normal(0, 12, (h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


# stem, writer
SOURCES = {
    "rgb_300x200.jpg": lambda p: Image.fromarray(scene(300, 200, 1)).save(p, quality=90),
    "gray_90x100.jpg": lambda p: Image.fromarray(scene(90, 100, 2)[:, :, 0]).save(p, quality=90),
    "rgb_513x517.jpg": lambda p: Image.fromarray(scene(513, 517, 3)).save(p, quality=85),
    "cmyk_150x97.jpg": lambda p: Image.fromarray(scene(150, 97, 4)).convert("CMYK").save(p, quality=90),
    "rgba_40x50.png": lambda p: Image.fromarray(
        np.concatenate([scene(40, 50, 5), np.full((50, 40, 1), 128, np.uint8)], -1), "RGBA").save(p),
}


def generate():
    os.makedirs(DATA, exist_ok=True)
    for name, write in SOURCES.items():
        path = os.path.join(DATA, name)
        if not os.path.exists(path):
            write(path)
        im = Image.open(path)
        im.load()
        rgb = im.convert("RGB")
        src = np.array(rgb)
        out = center_crop_arr(rgb, SIZE)
        assert out.shape == (SIZE, SIZE, 3), out.shape
        stem = os.path.splitext(name)[0]
        save_u8(os.path.join(GOLD, "crop_%s.safetensors" % stem),
                {"out": out, "src": np.stack([src[0, 0], src[-1, -1]])})
        print("  crop_%s: %s %dx%d -> %d" % (stem, im.mode, im.size[0], im.size[1], SIZE))


if __name__ == "__main__":
    generate()
