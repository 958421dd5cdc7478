"""Augmentation presets: CPU-side deterministic resizing plus device-side random crop/flip/jitter.

Each preset mirrors one official ``--preprocess`` mode of
pytorch-CycleGAN-and-pix2pix, split in two halves:

* :meth:`Augment.prepare` (DataLoader worker, CPU): ``PIL -> uint8 [C,H,W]``,
  deterministic resizing with BICUBIC (as official), so that the images of a
  batch share a size and the uint8 tensors are cheap to ship to the device;
* :meth:`Augment.forward` (device, float batches in [-1, 1]): random crop,
  horizontal flip and optional colour jitter in ``train()`` mode; a centre crop
  and nothing else in ``eval()`` mode.  Parameters are drawn per sample from
  torch's global RNG (seeded by the trainer), and reused for every ``paired``
  tensor so aligned images stay aligned.

Differences from the official code: random parameters are drawn per sample on
the device rather than in the worker; ``eval()`` uses a centre crop and no flip
(official test runs still crop randomly); ``color_jitter`` is new.
"""

from __future__ import annotations

from typing import Any

import torch
from PIL import Image
from torch import nn

from imtrans.data.imageio import pil_to_uint8_tensor
from imtrans.errors import ImtransError

_BICUBIC = Image.Resampling.BICUBIC


def to_model_range(x: torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """A uint8 batch as float in [-1, 1] on ``device`` (the copy is non-blocking; pin memory to benefit)."""
    if device is not None:
        x = x.to(device, non_blocking=True)
    return x.float().div_(127.5).sub_(1.0)


class Augment(nn.Module):
    """Base of the presets: ``prepare`` resizes on the CPU, ``forward`` crops/flips/jitters on the device."""

    #: Side of the square random crop in ``forward`` (``None``: no crop).
    crop_size: int | None = None

    def __init__(self, flip: bool = True, color_jitter: float = 0.0):
        super().__init__()
        if color_jitter < 0:
            raise ImtransError(f"color_jitter must be >= 0, got {color_jitter}")
        self.flip = flip
        self.color_jitter = float(color_jitter)
        self._jitter = None
        if color_jitter > 0:
            import kornia.augmentation as K

            s = self.color_jitter
            # kornia's hue range is a fraction of the colour wheel; keep it milder
            # than the other factors so colours do not swap identity.
            self._jitter = K.ColorJitter(brightness=s, contrast=s, saturation=s, hue=min(0.5, s / 4), p=1.0)

    # -- CPU side -------------------------------------------------------------
    def resize(self, img: Image.Image) -> Image.Image:
        """The deterministic resize of this preset (identity by default)."""
        return img

    def prepare(self, img: Image.Image) -> torch.Tensor:
        """``PIL -> uint8 [C,H,W]`` after this preset's deterministic resize."""
        return pil_to_uint8_tensor(self.resize(img))

    # -- device side ------------------------------------------------------------
    def _crop_params(self, b: int, h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
        c = self.crop_size
        if c is None or (c >= h and c >= w):
            return None
        if c > h or c > w:
            raise ImtransError(
                f"crop_size {c} is larger than the prepared image ({h}x{w}); lower crop_size or raise load_size"
            )
        if self.training:
            ys = torch.randint(0, h - c + 1, (b,))
            xs = torch.randint(0, w - c + 1, (b,))
        else:
            ys = torch.full((b,), (h - c) // 2)
            xs = torch.full((b,), (w - c) // 2)
        return ys, xs

    def _apply_crop(self, t: torch.Tensor, params) -> torch.Tensor:
        if params is None:
            return t
        ys, xs = params
        c = self.crop_size
        if bool((ys == ys[0]).all() and (xs == xs[0]).all()):
            y, x = int(ys[0]), int(xs[0])
            return t[:, :, y:y + c, x:x + c]
        # Exact integer crops per sample (no resampling); batches are small.
        return torch.stack([t[k, :, int(y):int(y) + c, int(x):int(x) + c] for k, (y, x) in enumerate(zip(ys, xs))])

    def forward(self, x: torch.Tensor, *paired: torch.Tensor) -> Any:
        """Augment ``x`` (float ``[B,C,H,W]`` in [-1,1]) and each ``paired`` tensor with the same parameters.

        Returns a tensor, or a tuple ``(x, *paired)`` when paired tensors were given.
        """
        squeeze = x.dim() == 3
        tensors = [t.unsqueeze(0) if t.dim() == 3 else t for t in (x, *paired)]
        b, _, h, w = tensors[0].shape
        for t in tensors[1:]:
            if t.shape[0] != b or t.shape[-2:] != (h, w):
                raise ValueError(f"paired tensor shape {tuple(t.shape)} does not match {tuple(tensors[0].shape)}")
        crop = self._crop_params(b, h, w, tensors[0].device)
        tensors = [self._apply_crop(t, crop) for t in tensors]
        if self.training and self.flip:
            mask = (torch.rand(b) < 0.5).to(tensors[0].device).view(b, 1, 1, 1)
            tensors = [torch.where(mask, t.flip(-1), t) for t in tensors]
        if self.training and self._jitter is not None:
            out = []
            params = None
            for t in tensors:
                if t.shape[1] != 3:  # jitter is defined for RGB only
                    out.append(t)
                    continue
                t01 = (t + 1) / 2
                j = self._jitter(t01) if params is None else self._jitter(t01, params=params)
                params = self._jitter._params
                out.append((j * 2 - 1).clamp(-1, 1))
            tensors = out
        if squeeze:
            tensors = [t[0] for t in tensors]
        return tensors[0] if not paired else tuple(tensors)

    def extra_repr(self) -> str:
        return f"crop_size={self.crop_size}, flip={self.flip}, color_jitter={self.color_jitter}"


def _check_sizes(**sizes: int) -> None:
    for k, v in sizes.items():
        if v < 1:
            raise ImtransError(f"{k} must be a positive number of pixels, got {v}")


def _check_crop(load_size: int, crop_size: int) -> None:
    _check_sizes(load_size=load_size, crop_size=crop_size)
    if crop_size > load_size:
        raise ImtransError(f"crop_size {crop_size} is larger than load_size {load_size}; make crop_size <= load_size")


class ResizeAndCrop(Augment):
    """Resize to load_size x load_size, then random crop crop_size and random flip (official default)."""

    def __init__(self, load_size: int = 286, crop_size: int = 256, flip: bool = True, color_jitter: float = 0.0):
        super().__init__(flip, color_jitter)
        _check_crop(load_size, crop_size)
        self.load_size, self.crop_size = load_size, crop_size

    def resize(self, img: Image.Image) -> Image.Image:
        if img.size == (self.load_size, self.load_size):
            return img
        return img.resize((self.load_size, self.load_size), _BICUBIC)


def _scale_width(img: Image.Image, target: int, min_height: int) -> Image.Image:
    # Official rule: width becomes ``target``, height keeps the aspect ratio but
    # never drops below the crop size (so a crop always fits).
    ow, oh = img.size
    if ow == target and oh >= min_height:
        return img
    h = int(max(target * oh / ow, min_height))
    return img.resize((target, h), _BICUBIC)


class ScaleWidth(Augment):
    """Scale width to load_size keeping the aspect ratio (height at least crop_size); flip; no crop.

    Images of different aspect ratios get different heights, so they only batch
    together with batch size 1 (as in the official code).
    """

    def __init__(self, load_size: int = 256, crop_size: int = 256, flip: bool = True, color_jitter: float = 0.0):
        super().__init__(flip, color_jitter)
        _check_sizes(load_size=load_size, crop_size=crop_size)
        self.load_size, self.min_height = load_size, crop_size

    def resize(self, img: Image.Image) -> Image.Image:
        return _scale_width(img, self.load_size, self.min_height)


class ScaleWidthAndCrop(Augment):
    """Scale width to load_size keeping the aspect ratio, then random crop crop_size and flip."""

    def __init__(self, load_size: int = 286, crop_size: int = 256, flip: bool = True, color_jitter: float = 0.0):
        super().__init__(flip, color_jitter)
        _check_crop(load_size, crop_size)
        self.load_size, self.crop_size = load_size, crop_size

    def resize(self, img: Image.Image) -> Image.Image:
        return _scale_width(img, self.load_size, self.crop_size)


class Resize(Augment):
    """Resize to size x size (BICUBIC) and random flip; no crop."""

    def __init__(self, size: int = 256, flip: bool = True, color_jitter: float = 0.0):
        super().__init__(flip, color_jitter)
        _check_sizes(size=size)
        self.size = size

    def resize(self, img: Image.Image) -> Image.Image:
        if img.size == (self.size, self.size):
            return img
        return img.resize((self.size, self.size), _BICUBIC)


class Crop(Augment):
    """Random crop crop_size from the image as loaded (no resize) and random flip.

    The images of one batch must share a size (true of the official datasets).
    """

    def __init__(self, crop_size: int = 256, flip: bool = True, color_jitter: float = 0.0):
        super().__init__(flip, color_jitter)
        _check_sizes(crop_size=crop_size)
        self.crop_size = crop_size


class NoResize(Augment):
    """No resizing, except rounding H and W to a multiple of 4 (as official 'none'); optional flip."""

    base = 4

    def __init__(self, flip: bool = False, color_jitter: float = 0.0):
        super().__init__(flip, color_jitter)

    def resize(self, img: Image.Image) -> Image.Image:
        ow, oh = img.size
        # Round to the nearest multiple, but never to zero for tiny images.
        w = max(self.base, int(round(ow / self.base) * self.base))
        h = max(self.base, int(round(oh / self.base) * self.base))
        if (w, h) == (ow, oh):
            return img
        return img.resize((w, h), _BICUBIC)


AUGMENTATIONS = {
    "resize_and_crop": ResizeAndCrop,
    "scale_width": ScaleWidth,
    "scale_width_and_crop": ScaleWidthAndCrop,
    "resize": Resize,
    "crop": Crop,
    "none": NoResize,
}
