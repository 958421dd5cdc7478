"""Decoding images from disk into 8-bit RGB, with one clear error per bad file.

Everything that reads a photo from disk goes through :func:`open_rgb`, so all
decoding policy lives here:

* EXIF orientation is applied (phone photos are often stored sideways).
* Every mode becomes 8-bit RGB.  Transparent images (``RGBA``, ``LA``, ``PA``,
  palette images with a transparency entry) are **composited on white**:
  dropping alpha would expose whatever colour the encoder left under fully
  transparent pixels (often black or noise), which is not what a person sees.
* 16-bit and 32-bit integer images are scaled down (65535 -> 255), never
  clipped; floating-point images in [0, 1] are scaled by 255, others are
  min-max normalised.
* The image is fully decoded here (``img.load()``), so a truncated file fails
  at this point with a sentence, not later inside a DataLoader worker.
* Pictures above ``max_pixels`` are refused before their pixels are decoded.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from imtrans.errors import ImtransError

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

#: Default decompression-bomb guard: 16k x 16k pixels.
DEFAULT_MAX_PIXELS: int = 16384 * 16384


class ImageDecodeError(ImtransError):
    """A file that could not be decoded as an image; the message names the file and the reason."""


def list_images(root: str | os.PathLike, recursive: bool = True, keep_broken_links: bool = False) -> list[Path]:
    """Image files under ``root`` (extensions from :data:`IMAGE_EXTENSIONS`, any case), sorted.

    Sorting by the path relative to ``root`` makes indices stable across file
    systems (``os.scandir`` order is not).  Hidden files and folders (names
    starting with ``.``) and ``__MACOSX`` folders are skipped: zip archives made
    on macOS carry ``._name.jpg`` resource forks that look like images but are not.
    ``keep_broken_links`` also lists symbolic links whose target is missing, so
    that a caller can report them (``imtrans translate`` does) instead of
    dropping them without a word.
    """
    root = Path(root)
    found: list[Path] = []
    walker = os.walk(root) if recursive else [(str(root), [], os.listdir(root))]
    for dirpath, dirnames, filenames in walker:
        # Prune in place so os.walk does not descend into skipped folders.
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__MACOSX"]
        for fn in filenames:
            if fn.startswith("."):
                continue
            if os.path.splitext(fn)[1].lower() in IMAGE_EXTENSIONS:
                p = Path(dirpath) / fn
                if p.is_file() or (keep_broken_links and p.is_symlink() and not p.exists()):
                    found.append(p)
    found.sort(key=lambda p: p.relative_to(root).as_posix())
    return found


def _fail(path: Path, reason: str) -> ImageDecodeError:
    return ImageDecodeError(f"cannot read image '{path}': {reason}")


def _high_bit_depth_to_l(img: Image.Image) -> Image.Image:
    """Scale a 16/32-bit integer or float single-channel image to 8-bit ``L``."""
    arr = np.asarray(img)
    if img.mode == "F":
        arr = arr.astype(np.float64)
        finite = np.isfinite(arr)
        arr = np.where(finite, arr, 0.0)
        lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)
        if lo >= 0.0 and hi <= 1.0:
            out = arr * 255.0
        else:
            out = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
    else:
        arr = arr.astype(np.int64)
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo >= 0 and hi <= 65535:
            # The usual case: 16-bit data (PNG/TIFF) that PIL exposes as I;16 or I.
            # Divide by 257 so 65535 maps exactly to 255 (a shift by 8 would not round).
            out = arr / 257.0
        else:
            out = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros(arr.shape)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), mode="L")


def to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to 8-bit RGB (alpha composited on white; high bit depth scaled)."""
    mode = img.mode
    if mode == "RGB":
        return img
    if mode == "P":
        # Palette images may declare one palette entry (or a table) as transparent.
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode in ("PA", "LA", "La", "RGBa"):
        img = img.convert("RGBA")
        mode = "RGBA"
    if mode == "RGBA":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img).convert("RGB")
    if mode.startswith("I") or mode == "F":
        return _high_bit_depth_to_l(img).convert("RGB")
    if mode == "L" and "transparency" in img.info:
        return to_rgb(img.convert("LA"))
    if mode in ("1", "L", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"):
        return img.convert("RGB")
    raise ValueError(f"unsupported image mode {mode}")


def open_rgb(path: str | os.PathLike, max_pixels: int | None = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open ``path`` as a fully decoded 8-bit RGB :class:`PIL.Image.Image`.

    ``max_pixels`` (``None`` = no own limit) refuses larger pictures from their
    header alone.  Pillow's own guard still applies on top: its
    ``DecompressionBombError`` (above ``2 * Image.MAX_IMAGE_PIXELS``, about 179M
    pixels by default) is reported as a failure too; its *warning* is silenced
    because ``max_pixels`` is the limit this function enforces.

    Raises :class:`ImageDecodeError` naming the file and the reason (missing,
    zero bytes, not an image, truncated/corrupt, too large, unsupported mode).
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except FileNotFoundError:
        raise _fail(p, "the file does not exist") from None
    except OSError as e:
        raise _fail(p, f"the file cannot be accessed ({e.strerror or e})") from None
    if p.is_dir():
        raise _fail(p, "it is a folder, not a file")
    if size == 0:
        raise _fail(p, "the file is empty (zero bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if max_pixels is not None and w * h > max_pixels:
                    raise _fail(p, f"it is too large ({w}x{h} = {w * h} pixels, limit {max_pixels})")
                # Force the full decode now: lazy decoding would let a truncated
                # file pass here and explode later inside a worker.
                im.load()
                img = ImageOps.exif_transpose(im)
                if img is None:  # older Pillow returns None when in_place
                    img = im
                out = to_rgb(img)
                # Detach from the file handle the ``with`` block is about to close.
                return out.copy() if out is im else out
    except ImageDecodeError:
        raise
    except Image.DecompressionBombError as e:
        raise _fail(p, f"it is too large (decompression-bomb guard: {e})") from None
    except UnidentifiedImageError:
        raise _fail(p, "it is not an image Pillow can identify (wrong extension or unsupported format)") from None
    except (OSError, SyntaxError, EOFError) as e:
        # Pillow reports truncation as OSError('image file is truncated ...') and
        # broken headers as SyntaxError/EOFError.
        raise _fail(p, f"it is truncated or corrupt ({e})") from None
    except ValueError as e:
        raise _fail(p, str(e)) from None


def pil_to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB (or L) PIL image as a ``torch.uint8`` tensor ``[C, H, W]``."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    # np.asarray of a PIL image may be read-only; copy so torch owns writable memory.
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)).copy())


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """A float image in [-1, 1] (``[C,H,W]`` or ``[1,C,H,W]``, C in {1, 3}) as a PIL image."""
    if x.dim() == 4:
        if x.shape[0] != 1:
            raise ValueError(f"tensor_to_pil takes one image, got a batch of {x.shape[0]}")
        x = x[0]
    if x.dim() != 3 or x.shape[0] not in (1, 3):
        raise ValueError(f"tensor_to_pil expects [C,H,W] with C in (1, 3), got {tuple(x.shape)}")
    u8 = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    arr = u8.permute(1, 2, 0).numpy()
    if arr.shape[2] == 1:
        return Image.fromarray(arr[:, :, 0], mode="L")
    return Image.fromarray(arr, mode="RGB")
