"""The ``textures`` domain: procedural texture images drawn from a seed.

Image ``i`` of a split is a pure function of ``(seed, split, i)``: nothing is
stored and nothing is downloaded, and the ``test`` split draws from another
random stream than ``train``, so held-out images never repeat training ones.
"""

from __future__ import annotations

import colorsys
import random
from typing import Annotated, Literal

import numpy as np
from PIL import Image
from pydantic import Field

from imtrans.errors import ImtransError

KINDS: tuple[str, ...] = ("checker", "waves", "noise")
_STREAMS = {"train": 0, "test": 1}


def _rng(seed: int, split: str, index: int) -> random.Random:
    # Distinct large multipliers keep (seed, split, index) triples apart for any realistic count.
    return random.Random((seed * 1_000_033 + _STREAMS[split]) * 10_000_079 + index)


def _colour(rng: random.Random) -> np.ndarray:
    # HSV with bounded saturation/value gives distinct but not garish colours.
    h, s, v = rng.random(), rng.uniform(0.4, 0.9), rng.uniform(0.35, 0.95)
    return np.array(colorsys.hsv_to_rgb(h, s, v), dtype=np.float32)


def _grid(size: int, rng: random.Random) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates in [0, 1), rotated by a random angle about the centre."""
    t = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    y, x = np.meshgrid(t, t, indexing="ij")
    a = rng.uniform(0, np.pi)
    c, s = np.cos(a), np.sin(a)
    return c * x - s * y, s * x + c * y


def _checker(size: int, rng: random.Random) -> np.ndarray:
    u, v = _grid(size, rng)
    cells = rng.randint(3, 10)
    phase = rng.random(), rng.random()
    m = (np.floor(u * cells + phase[0]) + np.floor(v * cells + phase[1])) % 2
    return m.astype(np.float32)


def _waves(size: int, rng: random.Random) -> np.ndarray:
    u, v = _grid(size, rng)
    f = rng.uniform(2.0, 9.0)
    wobble = rng.uniform(0.0, 0.15)
    m = np.sin(2 * np.pi * (f * u + wobble * np.sin(2 * np.pi * 2 * v)) + rng.uniform(0, 2 * np.pi))
    return (0.5 + 0.5 * m).astype(np.float32)


def _noise(size: int, rng: random.Random) -> np.ndarray:
    # Value noise: a coarse random lattice upsampled bicubically (PIL), two octaves.
    nrng = np.random.default_rng(rng.getrandbits(63))
    out = np.zeros((size, size), dtype=np.float32)
    for cells, amp in ((rng.randint(3, 6), 0.7), (rng.randint(8, 14), 0.3)):
        lattice = (nrng.random((cells, cells)) * 255).astype(np.uint8)
        up = Image.fromarray(lattice, mode="L").resize((size, size), Image.BICUBIC)
        out += amp * np.asarray(up, dtype=np.float32) / 255.0
    return out


_PATTERNS = {"checker": _checker, "waves": _waves, "noise": _noise}


class TexturesDomain:
    """Procedural textures from a seed: checkerboards, waves or smooth noise (``pattern = "mixed"``: all three).

    Each image is a two-colour rendering of one pattern with random scale,
    orientation and phase; image ``i`` depends only on ``(seed, split, i)``.

    Parameters: ``pattern`` checker | waves | noise | mixed (the pattern
    cycles with the index); ``count`` images per split; ``size`` side in pixels;
    ``seed`` selects another, equally reproducible set.
    """

    def __init__(
        self,
        split: str,
        # not called `kind`: registry.build(kind, name, ...) takes that keyword itself
        pattern: Literal["checker", "waves", "noise", "mixed"] = "mixed",
        # Annotated constraints are checked by the registry, so `imtrans check` refuses count = 0
        count: Annotated[int, Field(ge=1)] = 256,
        size: Annotated[int, Field(ge=4)] = 64,
        seed: int = 0,
    ) -> None:
        if split not in _STREAMS:
            raise ImtransError(f"textures domain split '{split}' is unknown; use 'train' or 'test'")
        if count < 1:
            raise ImtransError(f"textures count must be at least 1, got {count}")
        if size < 4:
            raise ImtransError(f"textures size must be at least 4 pixels, got {size}")
        self.split = split
        self.pattern = pattern
        self.count = count
        self.size = size
        self.seed = seed

    def __len__(self) -> int:
        return self.count

    def _check(self, i: int) -> int:
        if not 0 <= i < self.count:
            raise IndexError(f"textures index {i} out of range 0..{self.count - 1}")
        return i

    def pattern_of(self, i: int) -> str:
        """Which pattern image ``i`` shows."""
        return KINDS[self._check(i) % len(KINDS)] if self.pattern == "mixed" else self.pattern

    def load(self, i: int) -> Image.Image:
        """Image ``i`` as a PIL RGB image of ``size`` x ``size``."""
        kind = self.pattern_of(i)
        rng = _rng(self.seed, self.split, i)
        c0, c1 = _colour(rng), _colour(rng)
        m = _PATTERNS[kind](self.size, rng)[..., None]
        rgb = (1.0 - m) * c0 + m * c1
        return Image.fromarray((np.clip(rgb, 0.0, 1.0) * 255).round().astype(np.uint8), mode="RGB")

    def name(self, i: int) -> str:
        """A stable id such as ``train/waves_00012.png`` (used for output file names)."""
        return f"{self.split}/{self.pattern_of(i)}_{i:05d}.png"

    def __repr__(self) -> str:
        return f"TexturesDomain(split={self.split!r}, pattern={self.pattern!r}, count={self.count}, size={self.size}, seed={self.seed})"
