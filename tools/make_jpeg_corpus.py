#!/usr/bin/python3
"""Writes the seed corpus of small good and bad image files under tests/corpus/jpeg/.

Run: /usr/bin/python3 tools/make_jpeg_corpus.py   (PIL + numpy; deterministic)
Naming, as for tests/corpus/safetensors: ok_* must decode, bad_* must be refused with a message
naming the file, anything else (e.g. crash inputs saved by the fuzzer) must only not crash.
tests/test_dataset_prepare.c runs every file through the decoder; fuzz/fuzz_jpeg.c starts from them.
"""
import io
import os
import struct
import zlib

import numpy as np
from PIL import Image

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "corpus", "jpeg")


def jpeg(img, **kw):
    b = io.BytesIO()
    img.save(b, "JPEG", **kw)
    return b.getvalue()


def png(img):
    b = io.BytesIO()
    img.save(b, "PNG")
    return b.getvalue()


def set_sof_size(data, w, h):
    """Patch the frame header (SOF0/SOF2) to declare w x h, leaving the scan data alone."""
    d = bytearray(data)
    i = 2
    while i < len(d):
        marker, length = d[i + 1], struct.unpack(">H", d[i + 2:i + 4])[0]
        if marker in (0xC0, 0xC1, 0xC2):
            d[i + 5:i + 9] = struct.pack(">HH", h, w)
            return bytes(d)
        i += 2 + length
    raise ValueError("no SOF marker")


def set_ihdr_size(data, w, h):
    """Patch the PNG header chunk to declare w x h, with a valid CRC so the size check is reached."""
    d = bytearray(data)
    d[16:24] = struct.pack(">II", w, h)
    d[29:33] = struct.pack(">I", zlib.crc32(bytes(d[12:29])))
    return bytes(d)


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
    small = jpeg(rgb, quality=80)
    files = {
        "ok_rgb_32x24.jpg": small,
        "ok_gray_16x16.jpg": jpeg(rgb.convert("L").resize((16, 16))),
        "ok_cmyk_16x12.jpg": jpeg(rgb.convert("CMYK").resize((16, 12))),
        "ok_1x1.jpg": jpeg(Image.new("RGB", (1, 1), (200, 10, 30))),
        "ok_progressive.jpg": jpeg(rgb, quality=70, progressive=True),
        "ok_subsampling_444.jpg": jpeg(rgb, quality=95, subsampling=0),
        "ok_rgba_8x8.png": png(Image.fromarray(rng.integers(0, 256, (8, 8, 4), dtype=np.uint8), "RGBA")),
        "ok_palette_8x8.png": png(rgb.resize((8, 8)).convert("P")),
        "ok_gray16_4x4.png": png(Image.fromarray(rng.integers(0, 65536, (4, 4), dtype=np.uint16))),
        "bad_truncated.jpg": small[: len(small) // 2],
        "bad_header_only.jpg": small[:20],
        "bad_empty.jpg": b"",
        "bad_30000x30000.jpg": set_sof_size(small, 30000, 30000),
        "bad_zero_width.jpg": set_sof_size(small, 0, 24),
        "bad_not_an_image.jpg": b"<html><body>404 Not Found</body></html>\n",
        "bad_soi_only.jpg": b"\xff\xd8\xff",
        "bad_truncated.png": png(rgb)[:60],
        "bad_png_30000x30000.png": set_ihdr_size(png(rgb), 30000, 30000),
    }
    corrupt = bytearray(small)
    for k in range(len(corrupt) // 2, len(corrupt) - 2, 7):   # flip bytes in the entropy-coded data
        corrupt[k] ^= 0x5A
    files["other_corrupt_scan.jpg"] = bytes(corrupt)
    for name, data in files.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("wrote %d files to %s" % (len(files), os.path.normpath(OUT)))


if __name__ == "__main__":
    main()
