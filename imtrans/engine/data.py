"""The training data of a run: domains, the reproducible loader, held-out sample batches.

Order and pairing are pure functions of (seed, epoch, index) (see :mod:`imtrans.data.unpaired`),
so a resumed run continues mid-epoch with exactly the batches an uninterrupted run would see.
"""

from __future__ import annotations

import os
from typing import Any, Iterator, Optional

import torch
from torch.utils.data import DataLoader

from imtrans import registry
from imtrans.engine import distributed as D
from imtrans.errors import ImtransError
from imtrans.recipe import PartSpec, Recipe


def domain_specs(recipe: Recipe) -> dict[str, tuple[PartSpec, str]]:
    """Training and held-out domain specs, from explicit tables or the unpaired layout."""
    d = recipe.data
    out: dict[str, tuple[PartSpec, str]] = {}
    for side in ("a", "b"):
        spec = getattr(d, side)
        if spec is None:
            if d.root is None:
                raise ImtransError(
                    f"{recipe.source}: data.{side} is not set and data.root is not set either; "
                    f"give data.root (an unpaired layout ROOT/trainA, trainB) or a [data.{side}] domain"
                )
            spec = PartSpec(name="layout", root=d.root, side=side, dataset=d.dataset)
        out[side] = (spec, "train")
        test = getattr(d, f"test_{side}")
        out[f"test_{side}"] = (test, "test") if test is not None else (spec, "test")
    return out


def scheme_is_paired(recipe: Recipe) -> bool:
    """Whether the recipe's scheme trains on pairs (its factory declares ``paired = True``)."""
    return bool(getattr(registry.get_registry("scheme").get(recipe.scheme.name).factory, "paired", False))


def build_paired(recipe: Recipe, prepare: Any) -> tuple[Any, dict[str, Any]]:
    """The training :class:`~imtrans.data.paired.PairedDataset` and the domains read for samples and evaluation.

    The pairs come from ``[data.a]`` when given (any pair source: ``aligned``,
    ``paired_folders``, ``synthetic_paired``), else from the aligned layout of
    ``data.root``; the held-out pairs from ``[data.test_a]``, else the same
    spec with split ``test`` (``ROOT/test`` or ``ROOT/val``), else none.
    ``data.direction`` decides which half is the input.  The domains are
    one-sided views: ``a``/``test_a`` (inputs, with ``target``) and ``b``/``test_b``.
    """
    from imtrans.data.paired import PairedDataset, PairSide, is_pair_source

    d = recipe.data
    if d.b is not None or d.test_b is not None:
        raise ImtransError(
            f"{recipe.source}: scheme '{recipe.scheme.name}' trains on pairs, which come from data.a alone; "
            "remove data.b / data.test_b and give a paired domain (aligned, paired_folders, synthetic_paired) in data.a"
        )
    spec = d.a
    if spec is None:
        if d.root is None:
            raise ImtransError(
                f"{recipe.source}: paired data needs data.root (the aligned layout ROOT/train, ROOT/test) "
                "or a [data.a] pair source such as paired_folders"
            )
        spec = PartSpec(name="aligned", root=d.root, dataset=d.dataset)
    train = registry.build_spec("domain", spec.as_dict(), "train")
    if not is_pair_source(train):
        raise ImtransError(
            f"{recipe.source}: data.a '{spec.name}' is not a paired domain; use aligned, paired_folders or "
            "synthetic_paired (or a plugin domain with load_pair)"
        )
    try:
        test = registry.build_spec("domain", (d.test_a or spec).as_dict(), "test")
    except ImtransError:
        if d.test_a is not None:
            raise
        test = None  # no held-out split: samples come from training pairs, no evaluation
    ds = PairedDataset(train, prepare, direction=d.direction, cache=d.cache)
    domains: dict[str, Any] = {"a": PairSide(train, "a", d.direction), "b": PairSide(train, "b", d.direction)}
    domains["test_a"] = PairSide(test, "a", d.direction) if test is not None and is_pair_source(test) else None
    domains["test_b"] = PairSide(test, "b", d.direction) if domains["test_a"] is not None else None
    return ds, domains


class TrainData:
    """Domains, data set and loader of one run (one shard of it under torchrun)."""

    def __init__(self, recipe: Recipe, augment, device: torch.device, dist: D.DistInfo) -> None:
        from imtrans.data.unpaired import EpochSampler, UnpairedDataset

        self.recipe, self.augment, self.device = recipe, augment, device
        t, bs = recipe.train, recipe.data.batch_size
        self.batch_size = bs
        #: pairs (pix2pix): batch["a"][i] and batch["b"][i] belong together and share one crop and flip
        self.paired = scheme_is_paired(recipe)
        if self.paired:
            self.dataset, self.domains = build_paired(recipe, augment.prepare)
        else:
            self.domains = self._build_domains()
            self.dataset = UnpairedDataset(self.domains["a"], self.domains["b"], augment.prepare, augment.prepare,
                                           seed=t.seed, cache=recipe.data.cache)
        if len(self.dataset) < bs:
            raise ImtransError(
                f"the data has {len(self.dataset)} images, fewer than data.batch_size = {bs}; lower data.batch_size")
        self.sampler = EpochSampler(len(self.dataset), seed=t.seed, epoch=0, shuffle=True,
                                    rank=dist.rank, world=dist.world)
        if len(self.sampler) < bs:
            raise ImtransError(
                f"the data has {len(self.dataset)} images: {len(self.sampler)} per process for {dist.world} processes, "
                f"fewer than data.batch_size = {bs}; lower data.batch_size or use fewer processes"
            )
        # more decode processes than cores only makes them fight the training threads for CPU
        workers = min(recipe.data.workers, os.cpu_count() or 1)
        self.loader = DataLoader(
            self.dataset, batch_size=bs, sampler=self.sampler, num_workers=workers, drop_last=True,
            pin_memory=device.type == "cuda", persistent_workers=workers > 0,
            # its own generator: creating loader iterators must not consume the global RNG,
            # or a resumed run would draw different augmentations than an uninterrupted one
            generator=torch.Generator().manual_seed(t.seed),
            prefetch_factor=4 if workers > 0 else None,
        )
        self._reported_skips = 0

    def _build_domains(self) -> dict[str, Any]:
        domains: dict[str, Any] = {}
        for key, (spec, split) in domain_specs(self.recipe).items():
            try:
                domains[key] = registry.build_spec("domain", spec.as_dict(), split)
            except ImtransError:
                if key.startswith("test"):
                    domains[key] = None  # no held-out split: samples come from training images
                    continue
                raise
        return domains

    @property
    def held_out(self) -> bool:
        """Whether both held-out splits exist (else samples come from training images)."""
        return self.domains.get("test_a") is not None and self.domains.get("test_b") is not None

    @property
    def steps_per_epoch(self) -> int:
        """Steps in a whole epoch; not ``len(sampler)``, which shrinks while a resumed epoch is under way."""
        n = self.sampler.per_rank // self.batch_size
        cap = self.recipe.train.steps_per_epoch
        return min(n, cap) if cap else n

    def epoch(self, epoch: int, start_step: int) -> Iterator[dict[str, torch.Tensor]]:
        """The augmented batches of ``epoch``, from its ``start_step``-th batch on, on the device."""
        self.sampler.set_epoch(epoch, start=start_step * self.batch_size)
        it = iter(self.loader)
        while True:
            try:
                batch = self._next(it)
            except StopIteration:
                return
            yield self._augmented(batch)

    def first_batch(self) -> dict[str, torch.Tensor]:
        """A batch for data-dependent set-up (lazily shaped parameters); consumes no loader state."""
        loader = DataLoader(self.dataset, batch_size=self.batch_size,
                            sampler=[(0, i) for i in range(self.batch_size)])
        return self._augmented(self._next(iter(loader)))

    def _augmented(self, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The batch on the device in [-1, 1], augmented; the two halves of a pair get the same crop and flip."""
        from imtrans.augment import to_model_range

        a, b = (to_model_range(batch[k], self.device) for k in ("a", "b"))
        if self.paired:
            a, b = self.augment(a, b)
            return {"a": a, "b": b}
        return {"a": self.augment(a), "b": self.augment(b)}

    def _next(self, it):
        try:
            return next(it)
        except RuntimeError as e:
            if "stack expects each tensor to be equal size" not in str(e):
                raise
            raise ImtransError(
                f"images of different sizes cannot share a batch after data.augment "
                f"'{self.recipe.data.augment.name}' (it keeps aspect ratios); set data.batch_size = 1 "
                "or use a cropping preset such as resize_and_crop or scale_width_and_crop"
            ) from None

    def sample_batch(self, side: str, n: int = 4) -> Optional[torch.Tensor]:
        """``n`` fixed held-out images of side ``a``/``b`` (training images without a held-out split)."""
        from imtrans.augment import to_model_range

        domain = self.domains.get(f"test_{side}") or self.domains[side]
        if domain is None or len(domain) == 0:
            return None
        imgs = []
        for i in range(min(n, len(domain))):
            try:
                imgs.append(self.augment.prepare(domain.load(i)))
            except ImtransError:
                continue
        if not imgs:
            return None
        imgs = [x for x in imgs if tuple(x.shape) == tuple(imgs[0].shape)]
        x = to_model_range(torch.stack(imgs), self.device)
        self.augment.eval()  # no random crops/flips: the same images at every sample step
        with torch.no_grad():
            x = self.augment(x)
        self.augment.train()
        return x

    def new_skips(self) -> Optional[dict[str, Any]]:
        """Undecodable files met since the last call, in *this* process (workers keep their own counts)."""
        n = self.dataset.skipped
        if n <= self._reported_skips:
            return None
        self._reported_skips = n
        files = self.dataset.skipped_files()
        return {"skipped": n, "files": {s: v[:50] for s, v in files.items()}}
