"""Procedural, offline, seed-reproducible two-domain data for the quickstart and tests.

Each index draws a *scene*: a smooth two-colour background gradient and one to
three coloured shapes (ellipses or rotated boxes).  A scene can be rendered in
two domains:

* domain **A**: the plain scene, flat-coloured shapes;
* domain **B**: a fixed, local, learnable stylisation of the same scene, chosen
  by ``task``:

  - ``stripes`` (zebra-like): inside each shape, dark stripes that follow its
    outline (contour bands at a fixed distance from the boundary, period
    ``size / 8`` pixels); the background is untouched.  The stripes are
    anchored to the shape, not to image coordinates, so the mapping is local
    (a convolutional generator can infer it from the neighbourhood) and is
    unchanged by flips and crops.  Stripes fixed in image coordinates were
    tried first: their phase depends on the distance to the image border, and
    a small paired CNN could not learn them at all.
  - ``rim``: inside each shape, a dark rim of fixed width (``size / 16`` pixels,
    4 at 64 px) along its outline; the rest of the shape and the background are
    untouched.  Whether a pixel belongs to the rim depends only on the shape's
    edge within that width, so a small CNN can learn the mapping *exactly* in
    both directions (removing the rim reads the shape's colour a few pixels
    further in) -- when trained *paired*.  Unpaired, it is ambiguous: a dark
    band drawn just *outside* the outline gives the same sequence (background,
    dark band, flat colour) and fools the discriminator as well, and CycleGAN
    learns exactly that (the shapes grow a dark halo).
  - ``glow`` (the quickstart's task): each shape keeps its colour on its
    outer ``size / 32`` pixels (2 at 64 px) and darkens linearly over the next
    ``5 * size / 64`` pixels to a quarter of its colour, which the core keeps:
    a bright edge fading into a dark core.  The outline itself does not change,
    so there is no rim-like ambiguity about where the change goes, and the
    darkening is smooth, so a generator that is slightly off in position is
    only slightly wrong.  The mapping is local in both directions (the core
    colour is a quarter of the edge colour).  (Before ``rim``, the quickstart
    used ``stripes``: a stripe drawn at the wrong phase costs twice the copy
    error, and the phase needs a receptive field as large as the shape, so a
    small generator trained for minutes did worse than copying its input.)
  - ``paint``: a "painting" look: colour channels rotated (R,G,B -> G,B,R),
    posterised to five levels per channel, and dark outlines along the shape
    boundaries.

Unpaired by construction: side ``a`` and side ``b`` draw scenes from different
random streams, so ``b``'s image ``i`` is not the counterpart of ``a``'s image
``i``.  The ground truth is still known: ``target(i)`` renders scene ``i`` of
*this* side's stream in the *other* domain, which is what a perfect translator
would output.  The ``test`` split uses two more streams, disjoint from
training.  Every scene is a pure function of ``(seed, split, side, i)``.
"""

from __future__ import annotations

import colorsys
import functools
import math
import random
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from PIL import Image

from imtrans.errors import ImtransError

TASKS: tuple[str, ...] = ("stripes", "rim", "glow", "paint")

# One random stream per (split, side): this is what makes the sides unpaired
# and the test split held out.
_STREAMS = {("train", "a"): 0, ("train", "b"): 1, ("test", "a"): 2, ("test", "b"): 3}


_PLACEMENT_TRIES = 30  # attempts to place each shape; a scene keeps the shapes that fit


def _scene_seed(seed: int, stream: int, index: int) -> int:
    # Large odd multipliers keep (seed, stream, index) triples from colliding
    # for any realistic count; Python's Random accepts arbitrary ints.
    return (seed * 1_000_003 + stream) * 10_000_019 + index


@dataclass(frozen=True)
class _Shape:
    kind: str  # "ellipse" | "box"
    cx: float
    cy: float
    rx: float
    ry: float
    angle: float
    color: tuple[float, float, float]


@dataclass(frozen=True)
class Scene:
    """Parameters of one procedural scene (all lengths in pixels)."""

    size: int
    bg0: tuple[float, float, float]
    bg1: tuple[float, float, float]
    bg_angle: float
    shapes: tuple[_Shape, ...]


def _reach(kind: str, rx: float, ry: float) -> float:
    """Radius of the circle around a shape's centre that contains all of it (any rotation)."""
    return rx if kind == "ellipse" else math.hypot(rx, ry)


def make_scene(seed: int, stream: int, index: int, size: int) -> Scene:
    """Draw scene ``index`` of ``stream`` (deterministic in all arguments).

    Every shape lies wholly inside the image and no two overlap: the B rendering then
    depends only on what the A image shows (stripes anchored to an outline hidden under
    another shape or cut by the border could not be inferred from the A image, which made
    part of the old task's ground truth unlearnable).
    """
    rng = random.Random(_scene_seed(seed, stream, index))

    def muted() -> tuple[float, float, float]:
        # Low-saturation background so the saturated shapes stand out.
        return colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.05, 0.3), rng.uniform(0.35, 0.8))

    bg0, bg1 = muted(), muted()
    shapes: list[_Shape] = []
    for _ in range(rng.randint(2, 4)):
        for _attempt in range(_PLACEMENT_TRIES):  # rejection sampling of a free spot
            kind = rng.choice(("ellipse", "box"))
            rx = rng.uniform(0.14, 0.3) * size
            ry = rx * rng.uniform(0.5, 1.0)
            reach = _reach(kind, rx, ry)
            lo, hi = reach + 1, size - reach - 1
            if lo > hi:
                continue
            cx, cy = rng.uniform(lo, hi), rng.uniform(lo, hi)
            if all(math.hypot(cx - s.cx, cy - s.cy) > reach + _reach(s.kind, s.rx, s.ry) + 2 for s in shapes):
                color = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.7, 1.0))
                shapes.append(_Shape(kind, cx, cy, rx, ry, rng.uniform(0, math.pi), color))
                break
    return Scene(size, bg0, bg1, rng.uniform(0, 2 * math.pi), tuple(shapes))


# Rendering uses NumPy, not torch: the arrays are tiny, and torch's intra-op
# thread pool made each image ~40x slower on a busy machine (measured: 0.4 ms
# vs 25 ms per 64 px image), while NumPy's elementwise ops stay single-threaded.
_F = np.float32


@functools.lru_cache(maxsize=8)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(size, dtype=_F) + _F(0.5)  # pixel centres
    yy, xx = np.meshgrid(c, c, indexing="ij")
    return yy, xx


def _stripes(dist: np.ndarray, size: int) -> np.ndarray:
    """Soft stripes in [0, 1] that follow the shape's outline (light band at the edge)."""
    period = max(4.0, size / 8.0)
    s = np.cos(_F(2 * math.pi / period) * np.maximum(dist, 0))
    # A steep ramp instead of a hard threshold: about one pixel of anti-aliasing.
    return np.clip(0.5 + 2.0 * s, 0, 1).astype(_F)


def _rim(dist: np.ndarray, size: int) -> np.ndarray:
    """Rim weight in [0, 1]: 1 within ``size / 16`` pixels inside the outline, 0 deeper in."""
    width = max(2.0, size / 16.0)
    return np.clip(width + 0.5 - dist, 0, 1).astype(_F)  # about one pixel of anti-aliasing


def _glow(dist: np.ndarray, size: int) -> np.ndarray:
    """Darkening weight in [0, 1]: 0 on the outer ``size / 32`` pixels of a shape, rising linearly
    to 1 over the next ``5 * size / 64`` pixels (2 and 5 at 64 px), 1 deeper in."""
    scale = size / 64.0
    return np.clip((dist - 2 * scale) / (5 * scale), 0, 1).astype(_F)


def _shape_fields(scene: Scene) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per shape, each ``[n, S, S]``: coverage alpha in [0,1], a boundary-band weight, and
    the inside distance to the boundary in pixels (negative outside)."""
    yy, xx = _grid(scene.size)
    n = len(scene.shapes)

    def col(vals: list[float]) -> np.ndarray:
        return np.asarray(vals, dtype=_F).reshape(n, 1, 1)

    cx, cy = col([s.cx for s in scene.shapes]), col([s.cy for s in scene.shapes])
    rx, ry = col([s.rx for s in scene.shapes]), col([s.ry for s in scene.shapes])
    ang = col([s.angle for s in scene.shapes])
    is_box = col([1.0 if s.kind == "box" else 0.0 for s in scene.shapes])
    dx, dy = xx - cx, yy - cy
    up = dx * np.cos(ang) + dy * np.sin(ang)  # pixels along the shape's own axes
    vp = -dx * np.sin(ang) + dy * np.cos(ang)
    # Box: exact distance to the nearest side (inside).  Ellipse: the first-order
    # estimate (1 - rho) / |grad rho| of the distance to the boundary, exact on
    # circles and close near the edge; capped by the short radius because the
    # estimate blows up near the centre of elongated ellipses.
    d_box = np.minimum(rx - np.abs(up), ry - np.abs(vp))
    rho = np.sqrt((up / rx) ** 2 + (vp / ry) ** 2)
    grad = np.sqrt((up / rx**2) ** 2 + (vp / ry**2) ** 2) / np.maximum(rho, 1e-6)
    d_ell = np.minimum((1 - rho) / np.maximum(grad, 1e-6), np.minimum(rx, ry))
    dist = np.where(is_box > 0, d_box, d_ell).astype(_F)
    alpha = np.clip(dist + 0.5, 0, 1)  # about one pixel of anti-aliasing
    band = np.clip(1 - np.abs(dist) / 1.5, 0, 1)
    return alpha, band, dist


def _render_np(scene: Scene, domain: str, task: str) -> np.ndarray:
    yy, xx = _grid(scene.size)
    S = scene.size
    g = math.cos(scene.bg_angle) * (xx - S / 2) + math.sin(scene.bg_angle) * (yy - S / 2)
    g = np.clip(g / S + 0.5, 0, 1)  # smooth ramp across the image
    bg0 = np.asarray(scene.bg0, dtype=_F).reshape(3, 1, 1)
    bg1 = np.asarray(scene.bg1, dtype=_F).reshape(3, 1, 1)
    img = bg0 * (1 - g) + bg1 * g
    alpha, band, dist = _shape_fields(scene)
    striped = domain == "b" and task == "stripes"
    for k, shape in enumerate(scene.shapes):  # painter's order: later shapes on top
        c = np.asarray(shape.color, dtype=_F).reshape(3, 1, 1)
        if striped:
            c = c * (0.2 + 0.8 * _stripes(dist[k], S))
        elif domain == "b" and task == "rim":
            c = c * (1 - 0.75 * _rim(dist[k], S))  # the rim keeps a quarter of the colour
        elif domain == "b" and task == "glow":
            c = c * (1 - 0.75 * _glow(dist[k], S))  # the core keeps a quarter of the colour
        a = alpha[k]
        img = img * (1 - a) + c * a
    if domain == "b" and task == "paint":
        img = img[[1, 2, 0]]
        img = np.round(img * 4) / 4
        # Outlines after posterising so they stay crisp; only visible boundary
        # parts count (a shape covered by a later one keeps no outline there).
        vis = np.ones_like(alpha[0])
        outline = np.zeros_like(alpha[0])
        for k in reversed(range(len(scene.shapes))):
            outline = np.maximum(outline, band[k] * vis)
            vis = vis * (1 - alpha[k])
        img = img * (1 - 0.8 * outline)
    return np.clip(img, 0, 1).astype(_F)


def render(scene: Scene, domain: Literal["a", "b"], task: str) -> torch.Tensor:
    """Render ``scene`` in domain ``a`` (plain) or ``b`` (``task`` style) as float ``[3,S,S]`` in [0,1]."""
    return torch.from_numpy(_render_np(scene, domain, task))


def _to_pil(img: np.ndarray) -> Image.Image:
    arr = np.rint(img * 255).astype(np.uint8).transpose(1, 2, 0)
    return Image.fromarray(np.ascontiguousarray(arr), mode="RGB")


class SyntheticDomain:
    """Procedural two-domain toy data (offline, seed-reproducible); see :mod:`imtrans.data.synthetic`.

    ``load(i)`` is scene ``i`` of this side's stream in this side's domain;
    ``target(i)`` is the same scene in the other domain (the ground truth of
    translating ``load(i)``).
    """

    def __init__(
        self,
        split: str,
        task: Literal["stripes", "rim", "glow", "paint"] = "stripes",
        side: Literal["a", "b"] = "a",
        count: int = 512,
        size: int = 64,
        seed: int = 0,
    ):
        if split not in ("train", "test"):
            raise ImtransError(f"synthetic domain split '{split}' is unknown; use 'train' or 'test'")
        if task not in TASKS:
            raise ImtransError(f"synthetic task '{task}' is unknown; use one of {', '.join(TASKS)}")
        if side not in ("a", "b"):
            raise ImtransError(f"synthetic side '{side}' is unknown; use 'a' or 'b'")
        if count < 1:
            raise ImtransError(f"synthetic count must be at least 1, got {count}")
        if size < 16:
            raise ImtransError(f"synthetic size must be at least 16 pixels, got {size}")
        self.split, self.task, self.side = split, task, side
        self.count, self.size, self.seed = count, size, seed
        self.stream = _STREAMS[(split, side)]

    def __len__(self) -> int:
        return self.count

    def _check(self, i: int) -> int:
        if not -self.count <= i < self.count:
            raise IndexError(f"synthetic index {i} out of range for {self.count} images")
        return i % self.count

    def scene(self, i: int) -> Scene:
        """The scene behind image ``i``."""
        return make_scene(self.seed, self.stream, self._check(i), self.size)

    def render(self, i: int, domain: Literal["a", "b"]) -> torch.Tensor:
        """Scene ``i`` rendered in ``domain`` as float ``[3,S,S]`` in [0,1]."""
        return render(self.scene(i), domain, self.task)

    def load(self, i: int) -> Image.Image:
        """Image ``i`` of this side (RGB)."""
        return _to_pil(_render_np(self.scene(i), self.side, self.task))

    def target(self, i: int) -> Image.Image:
        """Ground-truth translation of ``load(i)``: the same scene in the other domain."""
        return _to_pil(_render_np(self.scene(i), "b" if self.side == "a" else "a", self.task))

    def name(self, i: int) -> str:
        """A stable id such as ``stripes/train_a/00007.png``."""
        return f"{self.task}/{self.split}_{self.side}/{self._check(i):05d}.png"

    def __repr__(self) -> str:
        return f"SyntheticDomain(task={self.task!r}, split={self.split!r}, side={self.side!r}, count={self.count})"
