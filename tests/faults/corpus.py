"""A generated corpus of broken and awkward image files (written into a temp dir by tests).

``BROKEN`` files cannot be decoded and must be skipped with one warning each;
``ODD`` files are unusual but valid and must decode to RGB and train.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _rgb(w: int = 40, h: int = 40, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _png_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", **kw)
    return buf.getvalue()


def _jpeg_bytes(img: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="JPEG", **kw)
    return buf.getvalue()


def _bomb_png(w: int, h: int) -> bytes:
    """A valid-looking PNG header declaring w x h pixels (a few hundred bytes on disk)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)  # 1-bit greyscale
    # one compressed row of zeros is enough for the header to parse; the rest is "missing"
    idat = zlib.compress(b"\x00" * (w // 8 + 2))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def broken_files() -> dict[str, bytes]:
    """name -> bytes of files that cannot be decoded."""
    png = _png_bytes(_rgb(seed=1))
    jpg = _jpeg_bytes(_rgb(seed=2))
    return {
        "truncated_png.png": png[: len(png) // 2],
        "truncated_jpeg.jpg": jpg[: len(jpg) // 3],
        "zero_bytes.png": b"",
        "not_an_image.jpg": b"this is a text file, not a JPEG\n" * 20,
        "garbage_header.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
        "bomb.png": _bomb_png(30000, 30000),  # 900M pixels declared
    }


def odd_files() -> dict[str, bytes]:
    """name -> bytes of valid but unusual images (must decode and train)."""
    cmyk = _rgb(seed=3).convert("CMYK")
    arr16 = (np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).astype(np.uint16)
    i16 = Image.fromarray(arr16)  # mode I;16
    pal = _rgb(seed=4).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    exif_img = _rgb(60, 30, seed=5)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise when shown
    return {
        "cmyk.jpg": _jpeg_bytes(cmyk),
        "sixteen_bit.png": _png_bytes(i16),
        "palette_transparent.png": _png_bytes(pal, transparency=0),
        "exif_rotated.jpg": _jpeg_bytes(exif_img, exif=exif.tobytes()),
        "one_pixel.png": _png_bytes(_rgb(1, 1, seed=6)),
        "grey_alpha.png": _png_bytes(_rgb(seed=7).convert("LA")),
        "png_named.jpg": _png_bytes(_rgb(seed=8)),  # wrong extension, right content
    }


def good_files(n: int, size: int = 40) -> dict[str, bytes]:
    return {f"good_{i:02d}.png": _png_bytes(_rgb(size, size, seed=100 + i)) for i in range(n)}


def write(folder: Path, files: dict[str, bytes]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name, data in files.items():
        p = folder / name
        p.write_bytes(data)
        out.append(p)
    return out
