"""An offline paired task with exact ground truth: label maps -> textured shapes (a toy "facades").

Each index draws a scene of :mod:`imtrans.data.synthetic` (one to three
ellipses or rotated boxes).  Every shape belongs to one of three *classes*
(from its hue), and the pair renders the scene twice:

* **A**, the label map: a flat dark background and each shape filled with its
  class colour (no other information), like the facades label images;
* **B**, the "photo": a fixed light background and each shape in its class's
  material — class 0 red with contour stripes of period ``size / 8``, class 1
  blue with finer stripes (``size / 12``), class 2 a flat yellow — with dark
  outlines along the visible boundaries.

B is a fixed local function of A (the stripes follow each shape's outline, so
they are unchanged by flips and crops), hence a perfect translator reaches zero
error, while copying the input is far off: the ``gt_l1_a2b`` / ``copy_l1_a2b``
pair of the evaluation shows how much was learnt.  Every pair is a pure
function of ``(seed, split, i)``; ``test`` uses a stream disjoint from ``train``.
"""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image

from imtrans.data.synthetic import Scene, _shape_fields, _stripes, _to_pil, make_scene
from imtrans.errors import ImtransError

# Streams 0..3 belong to the unpaired synthetic domains.
_STREAMS = {"train": 10, "test": 11}

_F = np.float32
LABEL_BG = (0.05, 0.05, 0.2)
LABEL_COLORS = ((1.0, 0.0, 0.0), (0.0, 1.0, 1.0), (1.0, 1.0, 0.0))
PHOTO_BG = (0.85, 0.82, 0.75)
PHOTO_COLORS = ((0.8, 0.2, 0.15), (0.15, 0.3, 0.85), (0.95, 0.8, 0.2))
#: stripe period as a fraction of the image size per class (0: flat)
STRIPE_PERIODS = (1 / 8, 1 / 12, 0.0)


def shape_class(color: tuple[float, float, float]) -> int:
    """Class of a shape (0, 1, 2) from the hue of its colour."""
    return int(colorsys.rgb_to_hsv(*color)[0] * 3) % 3


def _stripes_period(dist: np.ndarray, size: int, frac: float) -> np.ndarray:
    # _stripes uses a period of size / 8; rescale the distance to get another period
    return _stripes(dist * _F(1 / 8 / frac), size)


def render_pair(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """The label map (A) and the photo (B) of ``scene``, each float ``[3,S,S]`` in [0,1]."""
    S = scene.size
    alpha, band, dist = _shape_fields(scene)
    lab = np.broadcast_to(np.asarray(LABEL_BG, dtype=_F).reshape(3, 1, 1), (3, S, S)).copy()
    img = np.broadcast_to(np.asarray(PHOTO_BG, dtype=_F).reshape(3, 1, 1), (3, S, S)).copy()
    for k, shape in enumerate(scene.shapes):  # painter's order: later shapes on top
        c = shape_class(shape.color)
        a = alpha[k]
        lab = lab * (1 - a) + np.asarray(LABEL_COLORS[c], dtype=_F).reshape(3, 1, 1) * a
        col = np.asarray(PHOTO_COLORS[c], dtype=_F).reshape(3, 1, 1)
        if STRIPE_PERIODS[c]:
            col = col * (0.35 + 0.65 * _stripes_period(dist[k], S, STRIPE_PERIODS[c]))
        img = img * (1 - a) + col * a
    vis = np.ones_like(alpha[0])
    outline = np.zeros_like(alpha[0])
    for k in reversed(range(len(scene.shapes))):  # only the visible part of each boundary
        outline = np.maximum(outline, band[k] * vis)
        vis = vis * (1 - alpha[k])
    img = img * (1 - 0.7 * outline)
    return np.clip(lab, 0, 1).astype(_F), np.clip(img, 0, 1).astype(_F)


class SyntheticPairs:
    """Offline paired toy task: label map (A) -> textured shapes (B); see :mod:`imtrans.data.synthetic_paired`."""

    def __init__(self, split: str, count: int = 512, size: int = 64, seed: int = 0):
        if split not in _STREAMS:
            raise ImtransError(f"synthetic_paired split '{split}' is unknown; use 'train' or 'test'")
        if count < 1:
            raise ImtransError(f"synthetic_paired count must be at least 1, got {count}")
        if size < 16:
            raise ImtransError(f"synthetic_paired size must be at least 16 pixels, got {size}")
        self.split, self.count, self.size, self.seed = split, count, size, seed

    def __len__(self) -> int:
        return self.count

    def scene(self, i: int) -> Scene:
        if not 0 <= i < self.count:
            raise IndexError(f"synthetic_paired index {i} out of range for {self.count} pairs")
        return make_scene(self.seed, _STREAMS[self.split], i, self.size)

    def load_pair(self, i: int) -> tuple[Image.Image, Image.Image]:
        """Pair ``i``: (label map, photo)."""
        lab, img = render_pair(self.scene(i))
        return _to_pil(lab), _to_pil(img)

    def name(self, i: int) -> str:
        return f"labels2shapes/{self.split}/{i:05d}.png"

    def __repr__(self) -> str:
        return f"SyntheticPairs(split={self.split!r}, count={self.count}, size={self.size})"


def synthetic_paired(split: str, count: int = 512, size: int = 64, seed: int = 0) -> SyntheticPairs:
    """Offline paired task with exact ground truth: label maps (A) -> textured shapes (B)."""
    return SyntheticPairs(split, count=count, size=size, seed=seed)
