"""Files in and out of batch translation: input discovery, safe output paths, decode, encode.

Decoding goes through :func:`imtrans.data.imageio.open_rgb` so the policy
(EXIF orientation, mode conversion, 16-bit scaling, one clear reason per bad
file) is the same as for training.  Only the alpha channel is extra here:
``open_rgb`` composites transparency on white, which is what the network
should see, and the original alpha is re-attached to the translated image.
"""

from __future__ import annotations

import collections
import glob
import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from imtrans.data.imageio import IMAGE_EXTENSIONS, ImageDecodeError, list_images, open_rgb
from imtrans.errors import ImtransError

FORMATS = {"png": "PNG", "jpg": "JPEG", "webp": "WEBP"}


def gather_inputs(inputs: list[str | os.PathLike]) -> list[tuple[Path, Path]]:
    """Expand files, folders (recursive) and globs into ``(file, relative name)`` pairs.

    A folder keeps its inner structure (``in/a/b.jpg`` -> ``a/b.jpg``); a file
    or a glob match keeps only its name.  Files named explicitly are kept even
    with an unknown extension, so a bad file is reported rather than ignored.
    Duplicates (same resolved file) are dropped.
    """
    pairs: list[tuple[Path, Path]] = []
    seen: set[Path] = set()

    def add(p: Path, rel: Path) -> None:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            pairs.append((p, rel))

    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in list_images(p, keep_broken_links=True):
                add(f, f.relative_to(p))
        elif p.is_file() or p.is_symlink():
            add(p, Path(p.name))
        elif glob.has_magic(str(item)):
            matches = sorted(glob.glob(str(item), recursive=True))
            base = Path(str(item).split("*")[0].split("?")[0].split("[")[0])
            base = base if str(item).endswith(os.sep) or base.is_dir() else base.parent
            files = 0
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    for f in list_images(mp, keep_broken_links=True):
                        add(f, _rel(f, base))
                        files += 1
                elif mp.suffix.lower() in IMAGE_EXTENSIONS:
                    add(mp, _rel(mp, base))
                    files += 1
            if not files:
                raise ImtransError(f"input pattern '{item}' matches no image files")
        else:
            raise ImtransError(f"input '{item}' does not exist; give image files, folders or glob patterns")
    return pairs


def _rel(p: Path, base: Path) -> Path:
    try:
        return p.relative_to(base)
    except ValueError:
        return Path(p.name)


def check_suffix(suffix: str) -> None:
    """Refuse a ``--suffix`` that is not part of a file name (a folder separator, ``..``-escapes)."""
    bad = [c for c in ("/", "\\", os.sep, os.altsep or "/", "\0") if c in suffix]
    if bad:
        raise ImtransError(
            f"--suffix '{suffix}' contains '{bad[0]}', so it is not part of a file name; "
            "use letters, digits, '-', '_' or '.', e.g. --suffix _zebra"
        )


def output_path(out_root: Path, rel: Path, suffix: str, fmt: str, keep_ext: bool = False) -> Path:
    """``out_root / rel`` with the stem + ``suffix`` and the format's extension; refuses escapes.

    ``keep_ext`` keeps the input's own extension in the name (``x.jpg`` ->
    ``x.jpg.png``), which :func:`assign_outputs` uses when two inputs share a stem.
    ``rel`` comes from file names and the ``suffix`` from the user; either could
    contain ``..`` or an absolute part, so the final path is resolved and must lie
    inside ``out_root``.
    """
    check_suffix(suffix)
    name = f"{rel.name if keep_ext else rel.stem}{suffix}.{fmt}"
    candidate = out_root / rel.parent / name
    root = out_root.resolve()
    final = candidate.resolve()
    if root not in final.parents:
        raise ImtransError(
            f"output '{candidate}' would be written outside the output folder '{out_root}'; "
            f"remove '..' or '/' from --suffix and input names"
        )
    return final


def assign_outputs(
    pairs: list[tuple[Path, Path]], out_root: Path, suffix: str, fmt: str
) -> tuple[list[tuple[Path, Path]], list[tuple[Path, Path]]]:
    """``(input, relative name)`` pairs -> ``(jobs, renamed)``, each a list of ``(input, output)``.

    Inputs whose stems meet (``x.jpg`` and ``x.png`` both -> ``x.png``) are all
    kept: the one whose extension is already the output format's (else the
    first) gets the plain name, the others keep their extension in the name
    (``x.jpg.png``) and are listed in ``renamed``.  Outputs that still meet
    (two explicit files of the same name from different folders) are refused
    with a message naming them.
    """
    dsts = [output_path(out_root, rel, suffix, fmt) for _src, rel in pairs]
    groups: dict[Path, list[int]] = collections.defaultdict(list)
    for i, d in enumerate(dsts):
        groups[d].append(i)
    renamed: list[tuple[Path, Path]] = []
    own_ext = {".jpg", ".jpeg"} if fmt == "jpg" else {f".{fmt}"}
    for members in groups.values():
        if len(members) < 2:
            continue
        keep = next((i for i in members if pairs[i][0].suffix.lower() in own_ext), members[0])
        for i in members:
            # Same name, other folder (explicit files): an extension cannot tell them apart; refused below.
            if i != keep and pairs[i][1].name != pairs[keep][1].name:
                dsts[i] = output_path(out_root, pairs[i][1], suffix, fmt, keep_ext=True)
                renamed.append((pairs[i][0], dsts[i]))
    counts = collections.Counter(dsts)
    clash = next((d for d, n in counts.items() if n > 1), None)
    if clash is not None:
        names = [str(src) for (src, _rel), d in zip(pairs, dsts) if d == clash]
        raise ImtransError(
            f"inputs {', '.join(names)} would all be written to '{clash}'; give their folder instead, "
            "or translate them separately"
        )
    return [(src, d) for (src, _rel), d in zip(pairs, dsts)], renamed


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (im.mode in ("P", "L") and "transparency" in im.info)


def load_image(path: Path, max_pixels: int | None) -> tuple[Image.Image, Image.Image | None]:
    """``(rgb, alpha or None)``; raises :class:`ImageDecodeError` with the file and reason."""
    if path.is_symlink() and not path.exists():
        raise ImageDecodeError(
            f"cannot read image '{path}': it is a symbolic link to '{os.readlink(path)}', which does not exist"
        )
    rgb = open_rgb(path, max_pixels=max_pixels)
    alpha = None
    try:
        with Image.open(path) as im:  # header only unless it has alpha
            if _has_alpha(im):
                im.load()
                im = ImageOps.exif_transpose(im) or im
                alpha = im.convert("RGBA").getchannel("A")
                if alpha.getextrema() == (255, 255):
                    alpha = None  # fully opaque: no need to carry it
    except (OSError, ValueError, SyntaxError, EOFError) as e:
        raise ImageDecodeError(f"cannot read image '{path}': its alpha channel is corrupt ({e})") from None
    return rgb, alpha


def encode_image(arr: np.ndarray, alpha: Image.Image | None, fmt: str, quality: int) -> bytes:
    """HWC uint8 array (+ optional alpha, resized to fit) -> encoded bytes."""
    img = Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr, mode="L" if arr.shape[2] == 1 else "RGB")
    if alpha is not None and fmt != "jpg":  # JPEG has no alpha channel
        if alpha.size != img.size:
            alpha = alpha.resize(img.size, Image.Resampling.BICUBIC)
        img = img.convert("RGBA") if img.mode == "RGB" else img.convert("LA")
        img.putalpha(alpha)
    buf = io.BytesIO()
    kw: dict = {}
    if fmt == "jpg":
        kw = {"quality": quality, "subsampling": 0 if quality >= 90 else 2}
    elif fmt == "webp":
        kw = {"quality": quality, "method": 4}
    elif fmt == "png":
        kw = {"compress_level": 1}  # fast; PNG is lossless at any level
    img.save(buf, format=FORMATS[fmt], **kw)
    return buf.getvalue()
