"""Padding, whole-image and tiled inference for fully convolutional generators.

Why tiles: a 9-block ResNet at 4000x3000 px needs many GB of activations.
Tiles of ``tile`` px (plus ``overlap``) keep the memory bounded by the tile
size, whatever the image size.

Three details make tiled output agree with whole-image output:

* **Aligned tiles.** Tile origins are multiples of the generator's
  ``size_multiple``, so every strided convolution samples the same grid as
  it would on the whole image.  The image is (virtually) reflect-padded at
  the bottom/right only, like :func:`pad_to_multiple`, so the padding
  convention is the same in both paths too.
* **Seam-free blending.** Each tile's output is weighted by a separable
  ramp that is *zero* for the first quarter of the overlap (where the tile's
  own border padding has corrupted the features), rises with a raised-cosine
  over the middle half and is one elsewhere; sides that touch the image
  border get weight one.  Output = sum(w * tile) / sum(w).
* **Global instance-norm statistics.** CycleGAN generators use instance
  norm, whose mean/variance would otherwise be computed per tile (visible
  as tiles of different brightness).  :func:`collect_norm_stats` runs the
  whole image once, downscaled to fit a tile, records each InstanceNorm
  layer's per-channel statistics, and :func:`fixed_norm_stats` makes those
  layers use them for every tile.  When the image already fits the
  statistics pass is exact, so tiled and whole-image results differ only
  by the residual border effect beyond the zero-weight margin.

Accumulation is done one row of tiles at a time into a strip buffer whose
finished rows are converted to uint8 immediately, so the float working set
is ``O(tile x width)``, not ``O(height x width)``.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _pad_amount(n: int, multiple: int, min_size: int) -> int:
    target = max(int(math.ceil(n / multiple)) * multiple, int(math.ceil(min_size / multiple)) * multiple)
    return target - n


def pad_to_multiple(x: torch.Tensor, multiple: int, min_size: int = 1) -> tuple[torch.Tensor, int, int]:
    """Pad ``[B,C,H,W]`` at the bottom/right to a multiple of ``multiple`` (and at least ``min_size``).

    Reflection is used (no hard edge for the network to react to); when the
    padding would exceed the image (reflect needs ``pad < size``), the padding
    is done in repeated reflect steps, then replicate for tiny images.
    Returns ``(padded, H, W)`` with the original size for cropping back.
    """
    h, w = x.shape[-2:]
    out = _pad_exact(x, _pad_amount(h, multiple, min_size), _pad_amount(w, multiple, min_size))
    return out, h, w


def to_unit(x_u8: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 [0, 255] -> float in [-1, 1]."""
    return x_u8.to(dtype).div_(127.5).sub_(1.0)


def to_u8(y: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 (rounded, clamped)."""
    return y.float().clamp(-1, 1).add_(1).mul_(127.5).round_().to(torch.uint8)


# ---------------------------------------------------------------------------
# instance-norm statistics shared across tiles
# ---------------------------------------------------------------------------

def _instance_norms(net: nn.Module) -> list[tuple[str, nn.Module]]:
    # Batch norms that normalise with batch statistics (the pix2pix test protocol, one image per
    # forward: see imtrans.nets.norm_mode) compute exactly the per-image statistics of instance norm.
    return [(n, m) for n, m in net.named_modules() if isinstance(m, nn.InstanceNorm2d)
            or (isinstance(m, nn.BatchNorm2d) and m.training and not m.track_running_stats)]


def has_instance_norm(net: nn.Module) -> bool:
    return bool(_instance_norms(net))


def has_batch_norm(net: nn.Module) -> bool:
    return any(isinstance(m, nn.BatchNorm2d) for m in net.modules())


def collect_norm_stats(net: nn.Module, x: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Run ``net(x)`` (x: ``[1,C,H,W]``) and record each InstanceNorm2d input's per-channel mean/var."""
    stats: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    handles = []
    for name, m in _instance_norms(net):
        def hook(mod, inp, _out, name=name):
            t = inp[0].float()
            var, mean = torch.var_mean(t, dim=(-2, -1), keepdim=True, unbiased=False)
            stats[name] = (mean, var)
        handles.append(m.register_forward_hook(hook))
    try:
        net(x)
    finally:
        for h in handles:
            h.remove()
    return stats


@contextlib.contextmanager
def fixed_norm_stats(net: nn.Module, stats: dict[str, tuple[torch.Tensor, torch.Tensor]]) -> Iterator[None]:
    """Within the block, each InstanceNorm2d of ``net`` normalises with the given statistics."""
    patched = []
    for name, m in _instance_norms(net):
        if name not in stats:
            continue
        mean, var = stats[name]

        def fwd(x, m=m, mean=mean, var=var):
            y = (x.float() - mean) * torch.rsqrt(var + m.eps)
            if m.affine:
                y = y * m.weight.float().view(1, -1, 1, 1) + m.bias.float().view(1, -1, 1, 1)
            return y.to(x.dtype)

        m.forward = fwd  # instance attribute shadows the class method
        patched.append(m)
    try:
        yield
    finally:
        for m in patched:
            del m.forward


# ---------------------------------------------------------------------------
# tiles
# ---------------------------------------------------------------------------

def tile_starts(size: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Origins (multiples of ``multiple``) of tiles of length ``tile`` covering ``size`` (already padded)."""
    if size <= tile:
        return [0]
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    starts = list(range(0, size - tile, stride))
    last = (size - tile) // multiple * multiple
    if last + tile < size:  # only when size is not a multiple; callers pad first
        last += multiple
    if not starts or starts[-1] != last:
        starts.append(last)
    return starts


def ramp(length: int, overlap: int, left: bool, right: bool) -> torch.Tensor:
    """1-D blend weight: zero margin (overlap/4), raised-cosine rise (overlap/2), then one."""
    w = torch.ones(length)
    if overlap <= 0:
        return w
    margin = overlap // 4
    rise = max(1, overlap - 2 * margin)
    t = (torch.arange(rise, dtype=torch.float32) + 0.5) / rise
    up = 0.5 - 0.5 * torch.cos(math.pi * t)
    prof = torch.cat([torch.zeros(margin), up])[: length // 2]
    n = prof.numel()
    if left:
        w[:n] = prof
    if right:
        w[length - n:] = prof.flip(0)
    return w


def translate_tiled(
    run: Callable[[torch.Tensor], torch.Tensor],
    img_u8: torch.Tensor,
    tile: int,
    overlap: int,
    multiple: int,
    min_size: int,
    out_channels: int,
    dtype: torch.dtype,
    device: torch.device,
    batch_size: int = 4,
) -> np.ndarray:
    """Translate one ``[C,H,W]`` uint8 image through ``run`` in overlapping tiles.

    ``run`` maps a float ``[B,C,t,t]`` batch in [-1,1] to the generator output.
    Returns the output as a ``[H, W, C]`` uint8 array.
    """
    c, h, w = img_u8.shape
    tile = max(multiple, tile // multiple * multiple, int(math.ceil(min_size / multiple)) * multiple)
    overlap = min(overlap, tile // 2)
    hp = h + _pad_amount(h, multiple, min_size)
    wp = w + _pad_amount(w, multiple, min_size)
    th, tw = min(tile, hp), min(tile, wp)
    ys, xs = tile_starts(hp, th, overlap, multiple), tile_starts(wp, tw, overlap, multiple)
    out = np.empty((h, w, out_channels), dtype=np.uint8)

    def crop(y: int, x: int) -> torch.Tensor:
        # A tile of the virtually padded image: real pixels, then the same
        # bottom/right reflection pad_to_multiple applies to the whole image.
        part = img_u8[:, y: min(y + th, h), x: min(x + tw, w)].unsqueeze(0)
        part = to_unit(part.to(device), dtype)
        ph, pw = th - part.shape[-2], tw - part.shape[-1]
        if ph or pw:
            part = _pad_exact(part, ph, pw)
        return part

    acc = torch.zeros(out_channels, 0, wp)
    wsum = torch.zeros(0, wp)
    acc_y0 = 0
    for i, y in enumerate(ys):
        wy = ramp(th, overlap, left=i > 0, right=i < len(ys) - 1)
        need = y + th - acc_y0
        if acc.shape[1] < need:
            extra = need - acc.shape[1]
            acc = torch.cat([acc, torch.zeros(out_channels, extra, wp)], 1)
            wsum = torch.cat([wsum, torch.zeros(extra, wp)], 0)
        for j0 in range(0, len(xs), batch_size):
            group = xs[j0: j0 + batch_size]
            batch = torch.cat([crop(y, x) for x in group], 0)
            res = run(batch).float().cpu()
            for k, x in enumerate(group):
                j = j0 + k
                wx = ramp(tw, overlap, left=j > 0, right=j < len(xs) - 1)
                wt = wy[:, None] * wx[None, :]
                r0 = y - acc_y0
                acc[:, r0: r0 + th, x: x + tw] += res[k] * wt
                wsum[r0: r0 + th, x: x + tw] += wt
        # Rows above the next tile row will receive no more contributions: finish them.
        done_to = ys[i + 1] if i + 1 < len(ys) else acc_y0 + acc.shape[1]
        n = done_to - acc_y0
        if n > 0:
            block = acc[:, :n] / wsum[:n].clamp_min(1e-8)
            rows = slice(acc_y0, min(done_to, h))
            if rows.stop > rows.start:
                out[rows] = to_u8(block[:, : rows.stop - rows.start, :w]).permute(1, 2, 0).numpy()
            acc, wsum, acc_y0 = acc[:, n:], wsum[n:], done_to
    return out


def _pad_exact(x: torch.Tensor, ph: int, pw: int) -> torch.Tensor:
    """Bottom/right padding by exactly (ph, pw), reflect where possible (as pad_to_multiple)."""
    while ph > 0 or pw > 0:
        ch, cw = x.shape[-2:]
        sh, sw = min(ph, ch - 1), min(pw, cw - 1)
        if sh <= 0 and ph > 0 or sw <= 0 and pw > 0:
            return F.pad(x, (0, pw, 0, ph), mode="replicate")
        x = F.pad(x, (0, sw, 0, sh), mode="reflect")
        ph, pw = ph - sh, pw - sw
    return x
