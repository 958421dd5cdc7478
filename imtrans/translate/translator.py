"""The :class:`Translator`: one generator from a checkpoint, ready for images and folders."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Callable, Iterable, Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from imtrans.data.imageio import DEFAULT_MAX_PIXELS, pil_to_uint8_tensor, to_rgb
from imtrans.errors import ImtransError
from imtrans.nets.norm_mode import NORM_MODES, batch_statistics, forward_per_image, published_norm_mode, seeded
from imtrans.translate import batch
from imtrans.translate import io as tio
from imtrans.translate.batch import TranslateReport
from imtrans.translate.tiling import (
    collect_norm_stats,
    fixed_norm_stats,
    has_batch_norm,
    has_instance_norm,
    pad_to_multiple,
    to_u8,
    to_unit,
    translate_tiled,
)

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Translator:
    """Translate images with one generator.

    Build one with :func:`load_translator` (or :meth:`from_checkpoint`)::

        t = load_translator("runs/h2z", direction="a2b", device="cpu", precision="fp32")
        out = t(Image.open("horse.jpg"))            # PIL image, same size as the input
        report = t.translate_folder("in/", "out/")  # what `imtrans translate` runs

    Images of any size are reflect-padded to the generator's ``size_multiple``
    and cropped back.  With ``tile`` set, images larger than ``tile`` on either
    side go through overlapping tiles (see :mod:`imtrans.translate.tiling`);
    instance-norm statistics then come from one pass over the whole image
    downscaled to ``norm_stats_size`` px on its long side.
    ``size`` resizes the short side to ``size`` px first.

    ``norm_mode``: ``train`` runs the pix2pix test protocol (batch-norm
    statistics of each image alone, dropout on with its stream seeded by
    ``seed`` for every image; see :mod:`imtrans.nets.norm_mode`), ``eval``
    running statistics and no dropout; ``auto`` is ``eval`` for a bare network,
    and what the checkpoint was trained for in :meth:`from_checkpoint`.  The
    ONNX Runtime backend holds an eval-mode graph, so ``train`` runs on PyTorch.
    """

    def __init__(
        self,
        net: nn.Module,
        device: str | torch.device = "auto",
        precision: str = "auto",
        *,
        tile: Optional[int] = None,
        overlap: int = 64,
        norm_stats_size: int = 1024,
        size: Optional[int] = None,
        batch_size: Optional[int] = None,
        max_pixels: Optional[int] = DEFAULT_MAX_PIXELS,
        backend: str = "auto",
        norm_mode: str = "auto",
        seed: int = 0,
    ):
        from imtrans.engine.runtime import resolve_device, resolve_precision

        if precision not in PRECISIONS:
            raise ImtransError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
        if tile is not None and tile < 16:
            raise ImtransError(f"--tile {tile} is too small; use at least 64 (e.g. 512)")
        if overlap < 0 or (tile is not None and overlap >= tile):
            raise ImtransError(f"--overlap {overlap} must be >= 0 and smaller than --tile {tile}")
        if size is not None and size < 1:
            raise ImtransError(f"--size {size} must be a positive number of pixels")
        if batch_size is not None and batch_size < 1:
            raise ImtransError(f"--batch-size {batch_size} must be at least 1")
        if norm_mode not in NORM_MODES:
            raise ImtransError(f"--norm-mode '{norm_mode}' is not one of {', '.join(NORM_MODES)}")
        self.norm_mode, self.seed = ("eval" if norm_mode == "auto" else norm_mode), int(seed)
        if self.norm_mode == "train":
            if backend == "onnxruntime":
                raise ImtransError("--backend onnxruntime runs an eval-mode graph and cannot run the pix2pix test "
                                   "protocol (--norm-mode train); use --backend torch, or --norm-mode eval")
            backend = "torch"  # the exported graph has running statistics and no dropout baked in
        self.device = resolve_device(str(device)) if not isinstance(device, torch.device) else device
        from imtrans.translate.backends import open_backend, resolve_backend

        name, ort_precision = resolve_backend(backend, precision, self.device, tiled=tile is not None)
        # The ONNX Runtime backend runs the exported graph; self.net stays fp32 for metadata only.
        # open_backend returns None (PyTorch) where `auto` chose ONNX Runtime but the model cannot be exported.
        self.backend = open_backend(net, backend, name, ort_precision)
        self.backend_name = "onnxruntime" if self.backend else "torch"
        self.precision = ort_precision if self.backend else resolve_precision(precision, self.device)
        # Channels-last is deliberately not used: measured slower on CPU here.
        self.net = net.to(self.device).eval()
        if self.precision == "bf16" and self.backend is None:
            # Weights stored in bf16 instead of autocast: no per-forward weight casts (measured 7.9 vs
            # 6.9 img/s for the 9-block resnet at 256 px on a 2-core AVX512-BF16 CPU, same outputs).
            self.net = self.net.to(torch.bfloat16)
        if batch_size is None:
            # CPU convolutions run fastest one image at a time (batch 4 measured 0.8x here); GPUs like batches
            batch_size = 4 if self.device.type == "cuda" else 1
        self.tile, self.overlap, self.size = tile, overlap, size
        self.norm_stats_size = max(norm_stats_size, tile or 0)
        self.batch_size = batch_size
        self.max_pixels = max_pixels
        self.multiple = int(getattr(net, "size_multiple", 1) or 1)
        self.min_size = int(getattr(net, "min_size", 1) or 1)
        self.in_channels = int(getattr(net, "in_channels", 3))
        self.out_channels = int(getattr(net, "out_channels", 3))
        # pix2pix protocol: with one image per forward, batch norm normalises like instance norm,
        # so tiles share whole-image statistics the same way
        self._instance_norm = has_instance_norm(net) or (self.norm_mode == "train" and has_batch_norm(net))

    @classmethod
    def from_checkpoint(cls, model: str | os.PathLike, direction: str = "a2b", **kwargs) -> "Translator":
        """Build from a run directory, checkpoint directory, ``.safetensors`` file or model-zoo name (architecture from its metadata)."""
        from imtrans.build import load_generator
        from imtrans.engine.checkpoint import read_meta
        from imtrans.zoo import resolve_model

        path = resolve_model(model, direction=direction)
        if kwargs.get("norm_mode", "auto") == "auto":
            kwargs["norm_mode"] = published_norm_mode(read_meta(path))
        return cls(load_generator(path, direction), **kwargs)

    # ------------------------------------------------------------------ core

    def _autocast(self):
        if self.precision in ("fp32", "bf16"):  # bf16: the weights themselves are bf16
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=_DTYPES[self.precision])

    def _norm_context(self):
        """The pix2pix protocol's network state (batch statistics, dropout) inside the block, else nothing."""
        return batch_statistics(self.net) if self.norm_mode == "train" else contextlib.nullcontext()

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.precision == "bf16":
            return self.net(x.to(torch.bfloat16)).float()
        return self.net(x)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend is not None:
            return self.backend.run(x)
        with torch.inference_mode(), self._autocast():
            if self.norm_mode == "train":
                with self._norm_context():
                    return forward_per_image(self._forward, x, self.seed)
            return self._forward(x)

    @property
    def needs_calibration(self) -> bool:
        """True for an int8 translator before :meth:`calibrate` accepted its quantised graph."""
        return self.backend is not None and not self.backend.calibrated

    def calibrate(self, images: list[torch.Tensor]) -> float:
        """int8 only: calibrate on uint8 ``[C,H,W]`` images and check the quality bound; returns the held-out PSNR."""
        from imtrans.translate.backends import calibration_split

        if self.backend is None or self.precision != "int8":
            return float("inf")
        calib, held = calibration_split(images)
        pad = lambda xs: [pad_to_multiple(x, self.multiple, self.min_size)[0] for x in xs]  # noqa: E731
        return self.backend.calibrate(pad(calib), pad(held))

    def calibrate_on_files(self, inputs: Iterable[str | os.PathLike]) -> None:
        """int8 only, once: calibrate on the first readable of ``inputs`` (the domain being translated)."""
        if not self.needs_calibration:
            return
        images = []
        for src, _rel in tio.gather_inputs(list(inputs)):
            with contextlib.suppress(Exception):  # unreadable files are reported by the folder pipeline
                images.append(self._prepare(tio.load_image(src, self.max_pixels)[0]))
            if len(images) == 6:
                break
        self.calibrate(images)

    def _prepare(self, img: Image.Image) -> torch.Tensor:
        """PIL (any mode) -> uint8 ``[C,H,W]`` with C = the generator's input channels, resized if ``size``."""
        img = to_rgb(img)
        if self.size is not None:
            img = resize_short_side(img, self.size)
        if self.in_channels == 1:
            img = img.convert("L")
        return pil_to_uint8_tensor(img)

    def load_file(self, path: Path) -> tuple[torch.Tensor, Optional[Image.Image]]:
        """Decode one file for the network: ``(uint8 [C,H,W], alpha or None)``; raises :class:`ImtransError`."""
        rgb, alpha = tio.load_image(Path(path), self.max_pixels)
        return self._prepare(rgb), alpha

    def translate_batch(self, images: list[torch.Tensor]) -> list[np.ndarray]:
        """Same-size uint8 ``[C,H,W]`` images -> ``[H,W,C']`` uint8 arrays (one forward pass)."""
        h, w = images[0].shape[-2:]
        x = to_unit(torch.stack(images).to(self.device))
        x, h, w = pad_to_multiple(x, self.multiple, self.min_size)
        y = self._run(x)[..., :h, :w]
        return list(to_u8(y.cpu()).permute(0, 2, 3, 1).numpy())

    def needs_tiles(self, h: int, w: int) -> bool:
        return self.tile is not None and (h > self.tile or w > self.tile)

    def translate_tiled(self, image: torch.Tensor) -> np.ndarray:
        """One uint8 ``[C,H,W]`` image through overlapping tiles (memory bounded by the tile size)."""
        assert self.tile is not None
        stats = None
        if self._instance_norm:
            stats = self._norm_stats(image)
        ctx = fixed_norm_stats(self.net, stats) if stats else contextlib.nullcontext()
        with self._norm_context(), ctx:
            return translate_tiled(
                self._run, image, self.tile, self.overlap, self.multiple, self.min_size,
                self.out_channels, torch.float32, self.device, batch_size=self.batch_size,
            )

    def _norm_stats(self, image: torch.Tensor) -> dict:
        # Global instance-norm statistics from one pass over the whole image,
        # downscaled so its long side is at most norm_stats_size: the memory of
        # that pass is bounded like a tile's, and per-channel means/variances
        # change little with a moderate downscale.
        _, h, w = image.shape
        x = to_unit(image.unsqueeze(0).to(self.device))
        scale = min(1.0, self.norm_stats_size / max(h, w))
        if scale < 1.0:
            size = (max(1, round(h * scale)), max(1, round(w * scale)))
            x = F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
        x, _, _ = pad_to_multiple(x, self.multiple, self.min_size)
        with torch.inference_mode(), self._autocast(), self._norm_context(), seeded(self.seed, x):
            return collect_norm_stats(self.net, x.to(torch.bfloat16) if self.precision == "bf16" else x)

    def translate_tensor(self, image: torch.Tensor, tiled: Optional[bool] = None) -> np.ndarray:
        """uint8 ``[C,H,W]`` -> ``[H,W,C']`` uint8; ``tiled=None`` tiles only when the image exceeds ``tile``."""
        h, w = image.shape[-2:]
        if tiled if tiled is not None else self.needs_tiles(h, w):
            if self.tile is None:
                raise ImtransError("tiled translation needs a tile size (tile=512)")
            return self.translate_tiled(image)
        return self.translate_batch([image])[0]

    def __call__(self, image: Image.Image, tiled: Optional[bool] = None) -> Image.Image:
        """Translate one PIL image; returns a PIL image of the same size (or the ``size``-resized size).

        Transparency is composited on white for the network and re-attached to the output.
        """
        alpha = None
        if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
            a = image.convert("RGBA").getchannel("A")
            alpha = None if a.getextrema() == (255, 255) else a
        arr = self.translate_tensor(self._prepare(image), tiled=tiled)
        out = Image.fromarray(arr[:, :, 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")
        if alpha is not None:
            out = out.convert("RGBA" if out.mode == "RGB" else "LA")
            out.putalpha(alpha.resize(out.size, Image.Resampling.BICUBIC) if alpha.size != out.size else alpha)
        return out

    # ---------------------------------------------------------------- folders

    def translate_folder(
        self,
        inputs: str | os.PathLike | Iterable[str | os.PathLike],
        out_dir: str | os.PathLike,
        *,
        suffix: str = "",
        format: Literal["png", "jpg", "webp"] = "png",
        quality: int = 95,
        skip_existing: bool = False,
        workers: Optional[int] = None,
        on_progress: Optional[Callable[[int, int], None]] = None,
        on_error: Optional[Callable[[Path, str], None]] = None,
        rank: int = 0,
        world: int = 1,
    ) -> TranslateReport:
        """Translate files/folders/globs into ``out_dir``, keeping relative folders and stems.

        Runs the stages of :mod:`imtrans.translate.batch`: decoding in a thread
        pool with bounded prefetch and encoding plus the atomic write (temp
        file + rename) in another, so both overlap the model; same-size images
        are batched.  Unreadable files (broken symbolic links included) are
        recorded in ``report.failed`` with the reason and the rest continue.
        Inputs of the same stem (``x.jpg``, ``x.png``) are all kept: see
        ``report.renamed``.  ``on_progress(done, total)`` is called as files
        finish, ``on_error(input, reason)`` as they fail.  ``rank``/``world``
        shard the inputs across processes (every ``world``-th file from
        ``rank``), so each file is translated by exactly one process.
        Raises :class:`ImtransError` before any work when an output path would
        leave ``out_dir``, the suffix or format is bad, or no input is an image.
        """
        inputs = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        self.calibrate_on_files(inputs)
        return batch.translate_folder(
            self, inputs, out_dir, suffix=suffix, format=format, quality=quality, skip_existing=skip_existing,
            workers=workers, on_progress=on_progress, on_error=on_error, rank=rank, world=world,
        )


def resize_short_side(img: Image.Image, size: int) -> Image.Image:
    """Resize so the shorter side is ``size`` px, keeping the aspect ratio."""
    w, h = img.size
    s = size / min(w, h)
    new = (max(1, round(w * s)), max(1, round(h * s)))
    return img if new == img.size else img.resize(new, Image.Resampling.BICUBIC)


def load_translator(
    model: str | os.PathLike,
    direction: str = "a2b",
    device: str = "auto",
    precision: str = "auto",
    **kwargs,
) -> Translator:
    """Load a :class:`Translator` from a run directory, checkpoint directory, ``.safetensors`` file or zoo name.

    ``direction`` picks the generator through the checkpoint's ``translators``
    map (CycleGAN: ``a2b`` = G, ``b2a`` = F).  Other keyword arguments go to
    :class:`Translator` (``tile``, ``overlap``, ``size``, ``batch_size``,
    ``norm_mode``, ``seed``).  A pix2pix checkpoint (a run, or a zoo
    ``pix2pix_*`` model) runs with the pix2pix test protocol unless
    ``norm_mode="eval"``.  The checkpoint's parts must be registered:
    :func:`imtrans.load_translator` (the public entry point) loads the plugins first.
    """
    return Translator.from_checkpoint(model, direction, device=device, precision=precision, **kwargs)
