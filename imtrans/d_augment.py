"""Discriminator augmentations (part kind ``d_augment``): DiffAugment and ADA, on the device.

A data augmentation preset (:mod:`imtrans.augment`) changes the *training images* before G
sees them; a discriminator augmentation changes *every input of every discriminator*, real
and fake alike, inside the training step and differentiably, so that G still gets its
adversarial gradient through it.  That is what keeps D from memorising a small training set
(Zhao et al., "Differentiable Augmentation for Data-Efficient GAN Training", NeurIPS 2020;
Karras et al., "Training Generative Adversarial Networks with Limited Data", NeurIPS 2020).

The contract (see docs/plugins.md): an ``nn.Module`` whose ``forward(x)`` takes a batch of
discriminator inputs ``[B, C, H, W]`` in [-1, 1] (C = 6 for pix2pix's stacked pair) and returns
the augmented batch, with random parameters drawn per sample from torch's global RNG on the
input's device (seeded and checkpointed by the trainer); an optional ``update(real_logits)``
that the scheme calls after each discriminator step with D's output on the reals; any state
(ADA's probability) in buffers, which the scheme checkpoints so a resume restores it exactly.

Colour operations act on each 3-channel image of the input with one draw per sample, so the
two halves of a pix2pix pair change colour together; geometric operations move the whole
tensor, so the halves stay aligned.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from imtrans.errors import ImtransError


class DAugment(nn.Module):
    """Base of the discriminator augmentations: ``forward(x)`` augments, ``update`` learns nothing."""

    def update(self, real_logits: Any) -> None:
        """Feedback after a discriminator step (D's output on the reals); a fixed augmentation ignores it."""


def _rand(b: int, x: torch.Tensor) -> torch.Tensor:
    """``b`` uniform numbers in [0, 1) on ``x``'s device, shaped to broadcast over [B, G, 3, H, W]."""
    return torch.rand(b, 1, 1, 1, 1, device=x.device, dtype=torch.float32)


def _groups(x: torch.Tensor) -> torch.Tensor:
    """``[B, C, H, W]`` as ``[B, G, c, H, W]``: images of 3 channels when C is a multiple of 3, else one group."""
    b, c, h, w = x.shape
    k = 3 if c % 3 == 0 else c
    return x.reshape(b, c // k, k, h, w)


# -- DiffAugment's three policies (same distributions as the paper's code) --------------------

def _rounded(v: float) -> int:
    """Half rounds up, as the paper's code sizes its shifts and cutouts (``int(size * ratio + 0.5)``): 12.5 -> 13."""
    return int(v + 0.5)


def _color(x: torch.Tensor) -> torch.Tensor:
    """Brightness + U(-0.5, 0.5), saturation x U(0, 2) around each pixel's mean, contrast x U(0.5, 1.5)."""
    b = x.shape[0]
    g = _groups(x)
    g = g + (_rand(b, x) - 0.5).to(g.dtype)
    mean = g.mean(dim=2, keepdim=True)
    g = (g - mean) * (_rand(b, x) * 2).to(g.dtype) + mean
    mean = g.mean(dim=(2, 3, 4), keepdim=True)  # each image's own mean, not the pair's
    g = (g - mean) * (_rand(b, x) + 0.5).to(g.dtype) + mean
    return g.reshape(x.shape)


def _translation(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Shift each sample by integers in [-ratio*H, ratio*H] x [-ratio*W, ratio*W]; zeros fill in."""
    b, c, h, w = x.shape
    sh, sw = _rounded(h * ratio), _rounded(w * ratio)
    if sh == 0 and sw == 0:
        return x
    ty = torch.randint(-sh, sh + 1, (b, 1), device=x.device)
    tx = torch.randint(-sw, sw + 1, (b, 1), device=x.device)
    padded = F.pad(x, [sw, sw, sh, sh])  # zero = mid-grey in [-1, 1], as the paper's code
    rows = (torch.arange(h, device=x.device)[None] - ty + sh).view(b, 1, h, 1).expand(b, c, h, w + 2 * sw)
    out = padded.gather(2, rows)  # gather is differentiable in its input: G's gradient passes
    cols = (torch.arange(w, device=x.device)[None] - tx + sw).view(b, 1, 1, w).expand(b, c, h, w)
    return out.gather(3, cols)


def _cutout(x: torch.Tensor, ratio: float) -> torch.Tensor:
    """Zero one rectangle of (ratio*H, ratio*W) per sample, its centre anywhere in the image (may overhang)."""
    b, _, h, w = x.shape
    ch, cw = _rounded(h * ratio), _rounded(w * ratio)
    if ch == 0 or cw == 0:
        return x
    # the paper's code draws the centre in [0, size + (1 - cut % 2)) and clips the rectangle to the image
    cy = torch.randint(0, h + (1 - ch % 2), (b, 1), device=x.device) - ch // 2
    cx = torch.randint(0, w + (1 - cw % 2), (b, 1), device=x.device) - cw // 2
    r, c = torch.arange(h, device=x.device)[None], torch.arange(w, device=x.device)[None]
    in_r = (r >= cy) & (r < cy + ch)
    in_c = (c >= cx) & (c < cx + cw)
    keep = ~(in_r[:, :, None] & in_c[:, None, :])
    return x * keep[:, None].to(x.dtype)


POLICIES = ("color", "translation", "cutout")


class DiffAugment(DAugment):
    """DiffAugment (Zhao et al. 2020): colour, translation and cutout on real and fake D inputs.

    ``policy``: comma-separated, applied in the order given, each to every sample: ``color``
    (brightness, saturation, contrast), ``translation`` (integer shift up to ``translation``
    of the size, zero padding), ``cutout`` (a zeroed ``cutout``-sized rectangle).  The paper
    uses ``"color,translation,cutout"`` for unconditional and image-to-image settings with
    little data, and ``"translation"`` alone when colour matters to the task.
    """

    def __init__(
        self,
        policy: str = "color,translation,cutout",
        translation: Annotated[float, Field(ge=0, le=0.5)] = 0.125,
        cutout: Annotated[float, Field(ge=0, le=1)] = 0.5,
    ):
        super().__init__()
        self.policy = [p.strip() for p in policy.split(",") if p.strip()]
        bad = [p for p in self.policy if p not in POLICIES]
        if bad:
            raise ImtransError(
                f"d_augment 'diffaugment' policy {policy!r} has unknown part {bad[0]!r}; use a comma-separated "
                f"list of {', '.join(POLICIES)} (e.g. \"color,translation,cutout\")")
        self.translation, self.cutout = float(translation), float(cutout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for p in self.policy:
            if p == "color":
                x = _color(x)
            elif p == "translation":
                x = _translation(x, self.translation)
            else:
                x = _cutout(x, self.cutout)
        return x

    def extra_repr(self) -> str:
        return f"policy={','.join(self.policy)!r}, translation={self.translation}, cutout={self.cutout}"


# -- ADA: each transform applied to a sample with probability p, p steered by D's overfitting --

ADA_OPS = ("xflip", "rotate90", "translation", "scale", "rotate", "brightness", "contrast", "hue", "saturation")


def _flatten(logits: Any) -> list[torch.Tensor]:
    """A discriminator's output (a map, or a list of maps for several scales) as a list of tensors."""
    if isinstance(logits, torch.Tensor):
        return [logits]
    return [t for item in logits for t in _flatten(item)]


class ADA(DAugment):
    """ADA (Karras et al. 2020): geometric and colour transforms, each with probability p per sample.

    ``p`` starts at ``p`` and, every ``interval`` discriminator steps, moves toward keeping
    r_t = E[sign(D(real))] at ``target`` (0.6, the paper's; the scheme centres D's output on
    its GAN loss's decision boundary, so LSGAN's 0.5 counts as 0): up when D is too sure of the
    reals (it overfits), down otherwise, by ``batch * interval / (speed_kimg * 1000)`` so that
    it can go from 0 to 1 in ``speed_kimg`` thousand real images (500 in the paper); clipped
    to [0, 1].  ``adaptive = false`` keeps ``p`` fixed.  ``ops``: a comma-separated subset of
    ``xflip`` (mirror, half the time), ``rotate90`` (0/90/180/270 degrees), ``translation``
    (integer shift up to ``translation`` of the size), ``scale`` (isotropic, log2-normal with
    std ``scale_std``), ``rotate`` (any angle), reflection padding (kornia ``warp_affine``);
    ``brightness`` (+N(0, ``brightness_std``)), ``contrast`` (x log2-normal, std
    ``contrast_std``), ``hue`` (rotation about the grey axis), ``saturation`` (log2-normal,
    std ``saturation_std``): the paper's "bgc" pipeline without anisotropic scaling,
    fractional translation and luma flip.
    """

    def __init__(
        self,
        target: Annotated[float, Field(gt=-1, lt=1)] = 0.6,
        interval: Annotated[int, Field(ge=1)] = 4,
        speed_kimg: Annotated[float, Field(gt=0)] = 500.0,
        p: Annotated[float, Field(ge=0, le=1)] = 0.0,
        adaptive: bool = True,
        ops: str = ",".join(ADA_OPS),
        translation: Annotated[float, Field(ge=0, le=0.5)] = 0.125,
        scale_std: Annotated[float, Field(ge=0)] = 0.2,
        brightness_std: Annotated[float, Field(ge=0)] = 0.2,
        contrast_std: Annotated[float, Field(ge=0)] = 0.5,
        saturation_std: Annotated[float, Field(ge=0)] = 1.0,
    ):
        super().__init__()
        self.ops = {o.strip() for o in ops.split(",") if o.strip()}
        bad = sorted(self.ops - set(ADA_OPS))
        if bad:
            raise ImtransError(f"d_augment 'ada' ops {ops!r} has unknown op {bad[0]!r}; use a comma-separated "
                               f"list of {', '.join(ADA_OPS)}")
        self.target, self.interval, self.speed_kimg, self.adaptive = target, interval, speed_kimg, adaptive
        self.translation, self.scale_std = translation, scale_std
        self.brightness_std, self.contrast_std, self.saturation_std = brightness_std, contrast_std, saturation_std
        # state a resume must restore exactly: the probability, the last r_t, the running sums
        self.register_buffer("p", torch.tensor(float(p)))
        self.register_buffer("rt", torch.tensor(0.0))
        self.register_buffer("acc", torch.zeros(3))  # sum of signs, number of logits, real images
        self.register_buffer("steps", torch.tensor(0, dtype=torch.int64))

    # -- the transforms ------------------------------------------------------------------------
    def _on(self, name: str, b: int, device: torch.device) -> torch.Tensor:
        if name not in self.ops:
            return torch.zeros(b, dtype=torch.bool, device=device)
        return torch.rand(b, device=device) < self.p

    def _geometry(self, x: torch.Tensor) -> torch.Tensor:
        """One affine matrix per sample (pixel coordinates, about the centre), warped once."""
        from kornia.geometry.transform import warp_affine

        b, _, h, w = x.shape
        dev = x.device
        flip = self._on("xflip", b, dev) & (torch.rand(b, device=dev) < 0.5)
        k = torch.where(self._on("rotate90", b, dev), torch.randint(0, 4, (b,), device=dev), 0)
        on_t = self._on("translation", b, dev)
        size = torch.tensor([w, h], device=dev, dtype=torch.float32)
        t = torch.round((torch.rand(b, 2, device=dev) * 2 - 1) * self.translation * size) * on_t[:, None]
        on_s = self._on("scale", b, dev)
        s = torch.where(on_s, torch.exp2(torch.randn(b, device=dev) * self.scale_std), 1.0)
        on_r = self._on("rotate", b, dev)
        th = torch.where(on_r, (torch.rand(b, device=dev) * 2 - 1) * math.pi, 0.0)
        # exact quarter turns (cos/sin of k*pi/2 in floats are not exactly 0 and 1)
        c90 = torch.tensor([1.0, 0.0, -1.0, 0.0], device=dev)[k]
        s90 = torch.tensor([0.0, 1.0, 0.0, -1.0], device=dev)[k]
        c, sn = torch.cos(th), torch.sin(th)
        cos, sin = c90 * c - s90 * sn, s90 * c + c90 * sn
        fx = torch.where(flip, -1.0, 1.0)
        a = torch.stack([torch.stack([cos * s * fx, -sin * s], -1), torch.stack([sin * s * fx, cos * s], -1)], -2)
        centre = torch.tensor([(w - 1) / 2, (h - 1) / 2], device=dev)
        shift = centre - (a @ centre) + t
        m = torch.cat([a, shift[:, :, None]], -1)
        warped = warp_affine(x.float(), m, (h, w), padding_mode="reflection", align_corners=True).to(x.dtype)
        moved = (flip | (k != 0) | on_t | on_s | on_r).view(b, 1, 1, 1)
        return torch.where(moved, warped, x)  # untouched samples stay bit-exact

    def _colour(self, x: torch.Tensor) -> torch.Tensor:
        """One colour matrix per sample applied to each 3-channel image (``[-1, 1]``, grey at 0)."""
        b, dev = x.shape[0], x.device
        g = _groups(x).float()
        on_b, on_c = self._on("brightness", b, dev), self._on("contrast", b, dev)
        bright = torch.randn(b, device=dev) * self.brightness_std * on_b
        con = torch.where(on_c, torch.exp2(torch.randn(b, device=dev) * self.contrast_std), 1.0)
        if g.shape[2] != 3:  # no hue or saturation without three channels
            out = (g + bright.view(b, 1, 1, 1, 1)) * con.view(b, 1, 1, 1, 1)
            return torch.where((on_b | on_c).view(b, 1, 1, 1), out.reshape(x.shape).to(x.dtype), x)
        v = torch.full((3,), 3 ** -0.5, device=dev)
        vv = torch.outer(v, v)
        eye = torch.eye(3, device=dev)
        on_h = self._on("hue", b, dev)
        th = torch.where(on_h, (torch.rand(b, device=dev) * 2 - 1) * math.pi, 0.0).view(b, 1, 1)
        cross = torch.tensor([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]], device=dev)
        hue = vv + torch.cos(th) * (eye - vv) + torch.sin(th) * cross  # Rodrigues about the grey axis
        on_s = self._on("saturation", b, dev)
        sat = torch.where(on_s, torch.exp2(torch.randn(b, device=dev) * self.saturation_std), 1.0).view(b, 1, 1)
        mat = (vv + sat * (eye - vv)) @ hue * con.view(b, 1, 1)
        offset = (mat @ torch.full((3,), 1.0, device=dev)) * bright.view(b, 1)  # brightness first, as ADA
        out = torch.einsum("bij,bgjhw->bgihw", mat, g) + offset.view(b, 1, 3, 1, 1)
        moved = (on_b | on_c | on_h | on_s).view(b, 1, 1, 1)
        return torch.where(moved, out.reshape(x.shape).to(x.dtype), x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._colour(self._geometry(x))

    # -- the feedback --------------------------------------------------------------------------
    @torch.no_grad()
    def update(self, real_logits: Any) -> None:
        """Add D's output on one batch of reals to the running r_t; every ``interval`` calls, adjust p.

        All on the device (no host synchronisation); under torchrun the sums are added over the
        processes, so every rank keeps the same p.
        """
        if not self.adaptive:
            return
        ts = _flatten(real_logits)
        inc = torch.stack([sum(t.detach().float().sign().sum() for t in ts),
                           torch.tensor(float(sum(t.numel() for t in ts)), device=self.acc.device),
                           torch.tensor(float(ts[0].shape[0]), device=self.acc.device)]).to(self.acc)
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            dist.all_reduce(inc)
        self.acc += inc
        self.steps += 1
        due = (self.steps % self.interval) == 0
        rt = self.acc[0] / self.acc[1].clamp(min=1)
        new_p = (self.p + torch.sign(rt - self.target) * self.acc[2] / (self.speed_kimg * 1000)).clamp(0, 1)
        self.p.copy_(torch.where(due, new_p, self.p))
        self.rt.copy_(torch.where(due, rt, self.rt))
        self.acc.copy_(torch.where(due, torch.zeros_like(self.acc), self.acc))

    def extra_repr(self) -> str:
        p = "?" if self.p.is_meta else f"{float(self.p):.4f}"  # `imtrans check` builds parts on the meta device
        return (f"p={p}, target={self.target}, interval={self.interval}, "
                f"speed_kimg={self.speed_kimg}, adaptive={self.adaptive}, ops={','.join(sorted(self.ops))!r}")


D_AUGMENTATIONS = {"diffaugment": DiffAugment, "ada": ADA}
