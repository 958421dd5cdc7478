"""Paired data for pix2pix-style schemes: pair sources, the paired dataset and its one-sided views.

A *pair source* holds aligned ``(A, B)`` image pairs and offers ``len``,
``load_pair(i) -> (PIL, PIL)`` and ``name(i)``.  Three are registered as
domains (built like any domain, ``factory(split, **params)``):

* ``aligned``: the official pix2pix layout — each file of ``ROOT/<split>``
  holds A (left half) and B (right half) side by side;
* ``paired_folders``: two folders whose files are matched by relative path
  without extension (``A/x.png`` <-> ``B/x.jpg``); unmatched files are
  reported in one warning and counted;
* ``synthetic_paired`` (:mod:`imtrans.data.synthetic_paired`): an offline task
  with exact ground truth.

:class:`PairedDataset` turns a source into the trainer's batch shape
``{"a", "b", "a_index", "b_index"}`` where ``a[i]`` and ``b[i]`` are the two
halves of one pair, after ``direction`` (``AtoB`` keeps them, ``BtoA`` swaps
them — the official ``--direction``).  A bad pair (a half that does not
decode, halves of different sizes, an aligned file of odd width) is skipped
with one warning naming it, counted, and replaced by the next good pair, so the
substitute is deterministic; when no pair is usable the run stops with one
sentence.  Crop and flip must then be applied to both halves with the *same*
parameters: call the augmentation as ``augment(a, b)`` (see
:meth:`imtrans.augment.Augment.forward`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Literal, Protocol

import torch
from PIL import Image
from torch.utils.data import Dataset

from imtrans.data.imageio import IMAGE_EXTENSIONS, ImageDecodeError, list_images, open_rgb
from imtrans.errors import ImtransError

log = logging.getLogger("imtrans.data")

Direction = Literal["AtoB", "BtoA"]
Prepare = Callable[[Image.Image], torch.Tensor]


class BadPairError(ImageDecodeError):
    """A pair that cannot be used (its message names the file and the reason)."""


class PairSource(Protocol):
    """What :class:`PairedDataset` needs from a paired domain."""

    def __len__(self) -> int: ...

    def load_pair(self, i: int) -> tuple[Image.Image, Image.Image]: ...

    def name(self, i: int) -> str: ...


def _split_folder(root: Path, split: str) -> Path:
    """``ROOT/train``; for the held-out split ``ROOT/test``, else ``ROOT/val`` (facades ships both)."""
    for sub in ([split] if split == "train" else [split, "val"]):
        if (root / sub).is_dir():
            return root / sub
    return root / split


class AlignedPairs:
    """Official pix2pix layout: every image in ``ROOT/<split>`` is A (left half) | B (right half).

    ``split`` ``train`` reads ``ROOT/train``; ``test`` reads ``ROOT/test`` or,
    if absent, ``ROOT/val``.  A file of odd width cannot be cut into two equal
    halves (the official code would silently give halves that differ by one
    pixel): it is skipped as a bad pair.
    """

    def __init__(self, split: str, root: str, dataset: str = ""):
        base = Path(root).expanduser()
        folder = _split_folder(base, split)
        if not folder.is_dir():
            msg = f"paired data folder '{folder}' not found (the aligned layout is ROOT/train, ROOT/val, ROOT/test)"
            if dataset:
                parent = base.parent.as_posix() if base.name == dataset else base.as_posix()
                msg += f"; download it with `imtrans data download {dataset} --kind pix2pix --root {parent}`"
            else:
                msg += "; set data.root to a folder that contains train/"
            raise ImtransError(msg)
        self.root, self.folder = base, folder
        self.paths = list_images(folder)
        if not self.paths:
            raise ImtransError(
                f"no images found under '{folder}' (looked for {', '.join(IMAGE_EXTENSIONS)}); "
                "put the side-by-side A|B files there"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def name(self, i: int) -> str:
        """Path of pair ``i`` relative to the split folder."""
        return self.paths[i].relative_to(self.folder).as_posix()

    def load_pair(self, i: int) -> tuple[Image.Image, Image.Image]:
        """Decode file ``i`` and cut it into its left (A) and right (B) halves."""
        ab = open_rgb(self.paths[i])
        w, h = ab.size
        if w % 2:
            raise BadPairError(
                f"'{self.paths[i]}' is {w} px wide, an odd width, so it cannot be cut into two equal A|B halves"
            )
        return ab.crop((0, 0, w // 2, h)), ab.crop((w // 2, 0, w, h))

    def __repr__(self) -> str:
        return f"AlignedPairs('{self.folder}', {len(self)} pairs)"


def _stems(root: Path, paths: list[Path]) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in paths:
        rel = p.relative_to(root).as_posix()
        out.setdefault(os.path.splitext(rel)[0], p)  # sorted order: the first extension wins
    return out


class FolderPairs:
    """Two folders of images matched by relative path without extension (``A/x.png`` <-> ``B/x.jpg``).

    Files present on one side only are listed in one warning (logger
    ``imtrans.data``) and counted in :attr:`unmatched`; ``split`` is accepted
    for the domain contract (the folders *are* the split).
    """

    def __init__(self, split: str, a: str, b: str, recursive: bool = True):
        roots = []
        for key, path in (("a", a), ("b", b)):
            r = Path(path).expanduser()
            if not r.is_dir():
                raise ImtransError(f"paired_folders: folder {key} = '{r}' does not exist; check the path")
            roots.append(r)
        self.root_a, self.root_b = roots
        sa = _stems(self.root_a, list_images(self.root_a, recursive))
        sb = _stems(self.root_b, list_images(self.root_b, recursive))
        keys = sorted(set(sa) & set(sb))
        self.pairs = [(sa[k], sb[k]) for k in keys]
        self.unmatched = sorted(
            [p.relative_to(self.root_a).as_posix() for k, p in sa.items() if k not in sb]
            + [p.relative_to(self.root_b).as_posix() for k, p in sb.items() if k not in sa]
        )
        if self.unmatched:
            log.warning(
                "paired_folders: %d file(s) without a partner are skipped: %s",
                len(self.unmatched), ", ".join(self.unmatched[:50]) + (" ..." if len(self.unmatched) > 50 else ""),
            )
        if not self.pairs:
            raise ImtransError(
                f"paired_folders: no file in '{self.root_a}' has a partner of the same name in '{self.root_b}' "
                f"({len(self.unmatched)} unmatched); name the two images of a pair alike, e.g. A/x.png and B/x.jpg"
            )

    def __len__(self) -> int:
        return len(self.pairs)

    def name(self, i: int) -> str:
        """Relative path of pair ``i``'s A file."""
        return self.pairs[i][0].relative_to(self.root_a).as_posix()

    def load_pair(self, i: int) -> tuple[Image.Image, Image.Image]:
        """Decode both files of pair ``i``; halves of different sizes make it a bad pair."""
        pa, pb = self.pairs[i]
        a, b = open_rgb(pa), open_rgb(pb)
        if a.size != b.size:
            raise BadPairError(
                f"pair '{self.name(i)}' has halves of different sizes ({a.size[0]}x{a.size[1]} in '{pa}', "
                f"{b.size[0]}x{b.size[1]} in '{pb}')"
            )
        return a, b

    def __repr__(self) -> str:
        return f"FolderPairs('{self.root_a}', '{self.root_b}', {len(self)} pairs)"


def aligned(split: str, root: str, dataset: str = "") -> AlignedPairs:
    """Paired data in the official pix2pix layout: each file of ROOT/<split> holds A (left) | B (right)."""
    return AlignedPairs(split, root, dataset=dataset)


def paired_folders(split: str, a: str, b: str, recursive: bool = True) -> FolderPairs:
    """Paired data from two folders whose files match by relative path without extension."""
    return FolderPairs(split, a, b, recursive=recursive)


def is_pair_source(obj: Any) -> bool:
    """Whether a built domain holds pairs (has ``load_pair``)."""
    return callable(getattr(obj, "load_pair", None))


class PairedDataset(Dataset):
    """Items ``{"a", "b", "a_index", "b_index"}``: the two prepared halves of pair ``i`` (after ``direction``).

    Same contract as :class:`~imtrans.data.unpaired.UnpairedDataset`: indices
    may be ``(epoch, i)`` pairs from :class:`~imtrans.data.unpaired.EpochSampler`;
    ``skipped`` / ``skipped_files()`` report bad pairs met in this process.
    """

    paired = True

    def __init__(self, source: PairSource, prepare: Prepare, direction: Direction = "AtoB", cache: bool = False):
        if direction not in ("AtoB", "BtoA"):
            raise ImtransError(f"data.direction '{direction}' is unknown; use 'AtoB' or 'BtoA'")
        if len(source) == 0:
            raise ImtransError(f"paired data {source!r} has no pairs; check its path or parameters")
        self.source, self.prepare, self.direction = source, prepare, direction
        self.cache = cache
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
        self._bad: dict[int, str] = {}

    def __len__(self) -> int:
        return len(self.source)

    def set_epoch(self, epoch: int) -> None:
        """Pairs do not depend on the epoch (kept for the dataset contract)."""

    @property
    def skipped(self) -> int:
        """Number of bad pairs met so far in this process."""
        return len(self._bad)

    def skipped_files(self) -> dict[str, list[str]]:
        """Names of the bad pairs met so far in this process (under the key "pairs")."""
        return {"pairs": [self.source.name(k) for k in sorted(self._bad)]} if self._bad else {}

    def _pair(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.source.load_pair(k)
        if self.direction == "BtoA":
            a, b = b, a
        ta, tb = self.prepare(a), self.prepare(b)
        if ta.shape != tb.shape:  # a preset that keeps each image's own size met halves of different sizes
            raise BadPairError(f"pair '{self.source.name(k)}' has halves of different sizes after preparing")
        return ta, tb

    def fetch(self, j: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Pair ``j``, or the next usable one; raises when none of the pairs can be used."""
        n = len(self.source)
        for step in range(n):
            k = (j + step) % n
            if k in self._bad:
                continue
            if self.cache and k in self._cache:
                return (*self._cache[k], k)
            try:
                pair = self._pair(k)
            except ImageDecodeError as e:
                self._bad[k] = str(e)
                log.warning("skipping bad pair %s: %s", self.source.name(k), e)
                continue
            if self.cache:
                self._cache[k] = pair
            return (*pair, k)
        raise ImtransError(
            f"none of the {n} pairs of {self.source!r} can be used (each was skipped with a warning above); "
            "fix or replace the files"
        )

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        i = int(index[1]) if isinstance(index, tuple) else int(index)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} pairs")
        a, b, k = self.fetch(i)
        return {"a": a, "b": b, "a_index": k, "b_index": k}


class PairSide:
    """One side of a pair source seen as a plain domain (``load``/``name``), for sample grids and evaluation.

    Side ``a`` is the input after ``direction`` and offers ``target(i)``: its
    partner, the ground truth of translating ``load(i)``.
    """

    def __init__(self, source: PairSource, side: Literal["a", "b"], direction: Direction = "AtoB"):
        self.source, self.side, self.direction = source, side, direction

    def __len__(self) -> int:
        return len(self.source)

    def _halves(self, i: int) -> tuple[Image.Image, Image.Image]:
        a, b = self.source.load_pair(i)
        return (b, a) if self.direction == "BtoA" else (a, b)

    def load(self, i: int) -> Image.Image:
        """This side's image of pair ``i``."""
        return self._halves(i)[0 if self.side == "a" else 1]

    def target(self, i: int) -> Image.Image:
        """The other side's image of pair ``i``."""
        return self._halves(i)[1 if self.side == "a" else 0]

    def name(self, i: int) -> str:
        return self.source.name(i)

    def __repr__(self) -> str:
        return f"PairSide({self.source!r}, side={self.side!r}, direction={self.direction!r})"
