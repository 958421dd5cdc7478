"""The unpaired two-domain dataset and a reproducible DataLoader around it.

Pairing follows the official ``unaligned_dataset`` (without ``serial_batches``):
item ``i`` takes A image ``i % |A|`` and a *random* B image.  Here that random
B index comes from a generator seeded by ``(seed, epoch, i)``, so it is the
same on every run, in every worker, and after resuming from a checkpoint.

Epochs reach the workers through the indices themselves: :class:`EpochSampler`
yields ``(epoch, i)`` pairs, which :meth:`UnpairedDataset.__getitem__`
accepts.  This matters with ``persistent_workers``: the workers hold their own
copy of the dataset, so calling ``set_epoch`` on the parent's copy alone would
not reach them.
"""

from __future__ import annotations

import logging
import random
from typing import Any, Callable, Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from imtrans.data.imageio import ImageDecodeError
from imtrans.errors import ImtransError

log = logging.getLogger("imtrans.data")

Prepare = Callable[[Any], torch.Tensor]


def _mix(*parts: int) -> int:
    """Combine integers into one seed (stable across processes, unlike ``hash``)."""
    h = 0x243F6A8885A308D3
    for p in parts:
        h = (h * 0x100000001B3 ^ (int(p) & 0xFFFFFFFFFFFFFFFF)) & 0xFFFFFFFFFFFFFFFF
    return h


class UnpairedDataset(Dataset):
    """Items ``{"a", "b", "a_index", "b_index"}`` from two domains, unpaired.

    * ``len`` is ``max(|A|, |B|)``; A index is ``i % |A|``, B index is drawn
      from ``random.Random(mix(seed, epoch, i))``.
    * ``prepare_a`` / ``prepare_b`` turn a PIL image into ``uint8 [C,H,W]`` (an
      augmentation's :meth:`prepare`, run in the worker).
    * A file that fails to decode is skipped with one warning (logger
      ``imtrans.data``) and replaced by the next decodable index of the same
      domain (``(j + 1) % n``, ...), so the substitute is deterministic too.
      ``skipped`` counts bad files seen *by this process*; each DataLoader
      worker has its own copy and its own count.
    * ``cache=True`` keeps prepared tensors in memory (per process) — only
      sensible for small sets and deterministic ``prepare`` functions, which
      all built-in presets are.
    """

    def __init__(
        self,
        domain_a: Any,
        domain_b: Any,
        prepare_a: Prepare,
        prepare_b: Prepare,
        seed: int = 0,
        cache: bool = False,
    ):
        for side, dom in (("A", domain_a), ("B", domain_b)):
            if len(dom) == 0:
                raise ImtransError(f"domain {side} ({dom!r}) has no images; check its path or parameters")
        self.domain_a, self.domain_b = domain_a, domain_b
        self.prepare_a, self.prepare_b = prepare_a, prepare_b
        self.seed = int(seed)
        self.epoch = 0
        self.cache = cache
        self._cache: dict[tuple[str, int], torch.Tensor] = {}
        self._bad: set[tuple[str, int]] = set()

    def __len__(self) -> int:
        return max(len(self.domain_a), len(self.domain_b))

    def set_epoch(self, epoch: int) -> None:
        """Epoch used for plain integer indices (sampler-given ``(epoch, i)`` pairs override it)."""
        self.epoch = int(epoch)

    @property
    def skipped(self) -> int:
        """Number of undecodable files met so far in this process."""
        return len(self._bad)

    def skipped_files(self) -> dict[str, list[str]]:
        """Names of the undecodable files met so far in this process, by side ("A", "B")."""
        files: dict[str, list[str]] = {}
        for side, k in sorted(self._bad):
            dom = self.domain_a if side == "A" else self.domain_b
            files.setdefault(side, []).append(dom.name(k) if hasattr(dom, "name") else str(k))
        return files

    def b_index(self, i: int, epoch: int | None = None) -> int:
        """The B index paired with item ``i`` in ``epoch`` (before any decode-failure substitution)."""
        e = self.epoch if epoch is None else epoch
        return random.Random(_mix(self.seed, e, i)).randrange(len(self.domain_b))

    def _fetch(self, side: str, domain: Any, prepare: Prepare, j: int) -> tuple[torch.Tensor, int]:
        n = len(domain)
        for step in range(n):
            k = (j + step) % n
            key = (side, k)
            if key in self._bad:
                continue
            if self.cache and key in self._cache:
                return self._cache[key], k
            try:
                x = prepare(domain.load(k))
            except ImageDecodeError as e:
                self._bad.add(key)
                log.warning("skipping undecodable image (%s); using another one instead: %s", side, e)
                continue
            if self.cache:
                self._cache[key] = x
            return x, k
        raise ImtransError(f"no image of domain {side} could be decoded ({n} tried); see the warnings above")

    def __getitem__(self, index: int | tuple[int, int]) -> dict[str, Any]:
        if isinstance(index, tuple):
            epoch, i = int(index[0]), int(index[1])
        else:
            epoch, i = self.epoch, int(index)
        if not 0 <= i < len(self):
            raise IndexError(f"index {i} out of range for {len(self)} items")
        a, ia = self._fetch("A", self.domain_a, self.prepare_a, i % len(self.domain_a))
        b, ib = self._fetch("B", self.domain_b, self.prepare_b, self.b_index(i, epoch))
        return {"a": a, "b": b, "a_index": ia, "b_index": ib}


class EpochSampler(Sampler):
    """Yields ``(epoch, i)`` for every item, shuffled as a function of ``(seed, epoch)``.

    ``start`` skips the first items of the epoch's order (resuming mid-epoch).
    ``rank``/``world`` shard each epoch's order for distributed training: rank ``r``
    takes every ``world``-th item from ``r`` (all ranks get the same count, the
    remainder is dropped), so a step over all ranks sees the same items as one
    process with a ``world`` times larger batch.  ``start`` counts within the shard.
    """

    def __init__(self, n: int, seed: int = 0, epoch: int = 0, shuffle: bool = True, start: int = 0,
                 rank: int = 0, world: int = 1):
        self.n, self.seed, self.shuffle = n, int(seed), shuffle
        self.epoch, self.start = int(epoch), int(start)
        self.rank, self.world = int(rank), int(world)

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch (and optionally the position inside it) of the next iteration."""
        self.epoch, self.start = int(epoch), int(start)

    def order(self) -> list[int]:
        """This epoch's full order of item indices."""
        if not self.shuffle:
            return list(range(self.n))
        g = torch.Generator()
        # Masked to 63 bits because manual_seed wants a non-negative int64.
        g.manual_seed(_mix(self.seed, self.epoch) & 0x7FFFFFFFFFFFFFFF)
        return torch.randperm(self.n, generator=g).tolist()

    @property
    def per_rank(self) -> int:
        """Items in this rank's whole epoch, wherever ``start`` is (``len`` counts only those still to come)."""
        return self.n // self.world

    def shard(self) -> list[int]:
        """This rank's part of the epoch's order."""
        return self.order()[self.rank::self.world][:self.per_rank]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        epoch = self.epoch
        for i in self.shard()[self.start:]:
            yield (epoch, i)

    def __len__(self) -> int:
        return max(0, self.per_rank - self.start)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    workers: int,
    seed: int,
    epoch: int,
    shuffle: bool = True,
    drop_last: bool = True,
    pin_memory: bool = False,
) -> DataLoader:
    """A DataLoader whose order and pairings are a function of ``(seed, epoch)``.

    Move to another epoch with ``set_loader_epoch(loader, epoch)`` (or
    ``loader.sampler.set_epoch``) before iterating again; the loader can be
    reused across epochs, and with ``workers > 0`` its workers persist.
    """
    if batch_size < 1:
        raise ImtransError(f"batch_size must be at least 1, got {batch_size}")
    if drop_last and len(dataset) < batch_size:
        raise ImtransError(
            f"the dataset has {len(dataset)} items, fewer than batch_size {batch_size}, so every batch "
            "would be dropped; lower batch_size or add images"
        )
    if hasattr(dataset, "set_epoch"):
        dataset.set_epoch(epoch)
    sampler = EpochSampler(len(dataset), seed=seed, epoch=epoch, shuffle=shuffle)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=pin_memory,
        persistent_workers=workers > 0,
        # An own generator: starting an iterator would otherwise draw a base seed
        # from torch's global RNG, so a resumed run would augment differently.
        generator=torch.Generator().manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF),
    )


def set_loader_epoch(loader: DataLoader, epoch: int, start: int = 0) -> None:
    """Point a loader from :func:`make_loader` at ``epoch`` (``start`` = items to skip)."""
    loader.sampler.set_epoch(epoch, start)  # type: ignore[union-attr]
    ds = loader.dataset
    if hasattr(ds, "set_epoch"):
        ds.set_epoch(epoch)
