"""What the demo page serves, without any web code: translators, upload guards, model facts, examples.

:class:`DemoModel` loads one :class:`~imtrans.translate.translator.Translator`
per direction the checkpoint offers (CycleGAN: ``a2b`` = G, ``b2a`` = F) and
translates an uploaded file exactly as :func:`~imtrans.translate.load_translator`
would translate ``Image.open(file)``, after two guards that turn hostile or
oversized uploads into one readable sentence: a file-size limit and the pixel
limit of :mod:`imtrans.data.imageio` (the decompression-bomb guard).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from PIL import Image, ImageOps

from imtrans.errors import ImtransError

#: default upload limits of the page: 20 MB per file and 40 megapixels (a 50 MP phone photo is refused,
#: a 4K frame or a 24 MP camera photo is fine); tiling keeps memory bounded below that.
DEFAULT_MAX_UPLOAD_MB = 20.0
DEFAULT_MAX_PIXELS = 40_000_000

@dataclass
class Example:
    """One clickable example: an image file and the direction it belongs to."""

    path: Path
    direction: str


@dataclass
class ModelInfo:
    """Facts shown on the page, read from the checkpoint's metadata."""

    source: str
    scheme: str = "?"
    step: Optional[int] = None
    epoch: Optional[int] = None
    generator: str = "?"
    parameters: int = 0
    data: dict[str, str] = field(default_factory=dict)  # side ("a"/"b") -> description
    dataset: str = ""
    description: str = ""

    def markdown(self, device: str, precision: str, tile: Optional[int]) -> str:
        """A short Markdown summary for the page."""
        rows = [
            f"**Model** `{self.source}`" + (f": {self.description}" if self.description else ""),
            f"**Scheme** {self.scheme} · **step** {self.step if self.step is not None else '?'}"
            + (f" · **epoch** {self.epoch}" if self.epoch is not None else ""),
            f"**Generator** {self.generator} · {self.parameters / 1e6:.2f} M parameters",
        ]
        if self.dataset or self.data:
            sides = " · ".join(f"{s.upper()}: {d}" for s, d in sorted(self.data.items()))
            rows.append("**Data** " + " · ".join(x for x in (self.dataset, sides) if x))
        rows.append(f"**Runs on** {device}, {precision}" + (f", tiles of {tile} px for larger images" if tile else ""))
        return "  \n".join(rows)


def _spec_text(spec: dict[str, Any]) -> str:
    name = spec.get("name", "?")
    hidden = ("name", "init", "init_gain", "in_channels", "out_channels")
    # an empty `pretrained` / `pretrained_file` says nothing ("pretrained=)" on the page)
    shown = [f"{k}={v}" for k, v in spec.items() if k not in hidden and not (k.startswith("pretrained") and not v)]
    return f"{name} ({', '.join(shown)})" if shown else str(name)


def _domain_text(spec: dict[str, Any]) -> str:
    name = spec.get("name", "?")
    if name == "synthetic":
        return f"synthetic {spec.get('task', 'stripes')} task, side {spec.get('side', '?')}"
    for key in ("path", "root"):
        if key in spec:  # a folder's name says what it holds; the full path is this machine's business
            return f"{name} '{Path(str(spec[key])).name}'"
    return str(name)


def _recipe(meta: dict[str, Any]) -> dict[str, Any]:
    from imtrans.engine.checkpoint import stored_recipe

    return stored_recipe(meta)  # {} when unreadable: the weights still translate; the page shows fewer facts


def model_info(source: str, meta: dict[str, Any], generator: Any) -> ModelInfo:
    """:class:`ModelInfo` from checkpoint metadata (``read_meta``) and the loaded generator."""
    recipe = _recipe(meta)
    data = recipe.get("data") or {}
    nets = meta.get("nets") or {}
    gname = (meta.get("translators") or {}).get("a2b") or next(iter(nets), None)
    spec = (nets.get(gname) or {}).get("spec") or {}
    info = ModelInfo(
        source=source, scheme=str(meta.get("scheme", "?")), step=meta.get("step"), epoch=meta.get("epoch"),
        generator=_spec_text(spec) if spec else type(generator).__name__,
        parameters=sum(p.numel() for p in generator.parameters()),
        dataset=str(data.get("dataset") or ""), description=str(recipe.get("description") or ""),
    )
    for side in ("a", "b"):
        if isinstance(data.get(side), dict):
            info.data[side] = _domain_text(data[side])
        elif data.get("root"):
            info.data[side] = f"layout '{Path(str(data['root'])).name}' side {side}"
    return info


def heldout_examples(meta: dict[str, Any], directions: list[str], out_dir: Path, n: int = 4) -> list[Example]:
    """Up to ``n`` held-out images per direction, rendered to PNG files in ``out_dir``.

    The source side of each direction (``a`` for ``a2b``) is rebuilt from the
    recipe stored in the checkpoint, with ``split="test"`` (the run's held-out
    images; for the synthetic task, its held-out scenes).  A data set that is not
    on this machine simply gives no examples.
    """
    from imtrans import registry

    data = _recipe(meta).get("data") or {}
    found: list[Example] = []
    for direction in directions:
        side = direction[0]
        spec = data.get(f"test_{side}") or data.get(side)
        if not isinstance(spec, dict) and data.get("root"):
            spec = {"name": "layout", "root": data["root"], "side": side, "dataset": data.get("dataset", "")}
        if not isinstance(spec, dict) or "name" not in spec:
            continue
        try:
            domain = registry.build_spec("domain", spec, "test")
            for i in range(min(n, len(domain))):
                path = out_dir / f"{direction}_{i}.png"
                domain.load(i).save(path)
                found.append(Example(path, direction))
        except (ImtransError, OSError, ValueError):
            continue  # data not on this machine, or a plugin domain missing: no examples for this side
    return found


def folder_examples(folder: Path, direction: str, n: int = 8) -> list[Example]:
    """The first ``n`` images of a folder given with ``--examples``."""
    from imtrans.data.imageio import list_images

    if not folder.is_dir():
        raise ImtransError(f"--examples '{folder}' is not a folder; give a folder of example images")
    return [Example(p, direction) for p in list_images(folder)[:n]]


class DemoModel:
    """One checkpoint behind the demo page: a translator per direction, guards, facts and examples."""

    def __init__(
        self,
        model: str | os.PathLike,
        *,
        device: str = "auto",
        precision: str = "auto",
        tile: Optional[int] = 512,
        max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        backend: str = "auto",
    ):
        from imtrans.engine.checkpoint import read_meta
        from imtrans.translate import load_translator
        from imtrans.zoo import resolve_model

        if max_upload_mb <= 0 or max_pixels <= 0:
            raise ImtransError("--max-upload-mb and --max-pixels must be positive")
        if precision == "int8":
            # int8 is calibrated on several inputs before the first is translated; a page gets one at a time
            raise ImtransError("the demo cannot use --precision int8 (it needs calibration images before the first "
                               "upload); use --precision fp32, or translate a folder with int8")
        self.source = str(model)
        model = resolve_model(model)  # a pretrained name becomes its (downloaded) weights file
        self.meta = read_meta(model)
        self.directions = sorted(self.meta.get("translators") or {}) or ["a2b"]
        self.translators = {
            d: load_translator(model, direction=d, device=device, precision=precision, tile=tile,
                               max_pixels=max_pixels, backend=backend)
            for d in self.directions
        }
        first = self.translators[self.directions[0]]
        self.device, self.precision, self.tile = str(first.device), first.precision, tile
        self.max_upload_bytes = int(max_upload_mb * 1024 * 1024)
        self.max_pixels = max_pixels
        self.info = model_info(self.source, self.meta, first.net)

    def labels(self) -> dict[str, str]:
        """Direction -> human label, e.g. ``{'a2b': 'A → B (horse → zebra)'}``."""
        ds = self.info.dataset
        names = ds.split("2", 1) if "2" in ds else None
        out = {}
        for d in self.directions:
            src, dst = d[0].upper(), d[-1].upper()
            label = f"{src} → {dst}"
            if names and len(names) == 2 and all(names):
                a, b = names if d == "a2b" else names[::-1]
                label += f" ({a} → {b})"
            out[d] = label
        return out

    def open_upload(self, path: str | os.PathLike) -> Image.Image:
        """Open an uploaded file after the size and pixel guards; raises :class:`ImtransError` with the reason."""
        from imtrans.data.imageio import ImageDecodeError, open_rgb

        p = Path(path)
        size = p.stat().st_size if p.is_file() else 0
        if size > self.max_upload_bytes:
            raise ImtransError(
                f"the upload is too large ({size / 2**20:.2f} MB, limit {self.max_upload_bytes / 2**20:g} MB); "
                "send a smaller file or start the demo with a larger --max-upload-mb"
            )
        try:  # header check first, then a full decode: one sentence per bad file
            open_rgb(p, max_pixels=self.max_pixels)
        except ImageDecodeError as e:
            # "cannot read image '<server temp path>': <reason>": the temp path means nothing to the visitor
            reason = str(e).split("': ", 1)[-1]
            fix = "; send a smaller image, or start the demo with a larger --max-pixels" if "too large" in reason else ""
            raise ImtransError(f"the uploaded image cannot be used: {reason}{fix}") from None
        with Image.open(p) as im:
            im.load()
            return (ImageOps.exif_transpose(im) or im).copy()

    def translate_file(self, path: str | os.PathLike, direction: str) -> Image.Image:
        """Translate an uploaded file in ``direction`` (same pixels as ``load_translator(...)(image)``)."""
        if direction not in self.translators:
            raise ImtransError(f"direction '{direction}' is not offered by this model; use one of {', '.join(self.directions)}")
        img = self.open_upload(path)
        try:
            return self.translators[direction](img)
        except RuntimeError as e:  # e.g. out of memory on a huge upload without tiles
            raise ImtransError(f"the translation failed ({e}); try a smaller image") from None
