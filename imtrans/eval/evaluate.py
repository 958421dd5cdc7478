"""Evaluation: a held-out split or two folders -> FID, KID and the counts behind them.

* :func:`evaluate_run` — what ``imtrans eval RUN`` does: translate the held-out
  source split with the run's generator (``load_translator`` /
  ``Translator.translate_batch``) and compare the translations with the
  held-out target split; or take already translated images (``fake``).
* :func:`evaluate_sets` — two image sets (domains or folders).
* :func:`fid_kid_for_run` — the same numbers for the trainer's evaluator, from
  any ``uint8 -> uint8`` translate function.

Reference features are cached (:mod:`imtrans.eval.stats`).  Every result
names the extractor, its weights' sha256 and the resize mode.
"""

from __future__ import annotations

import collections
import io
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from imtrans.data.imageio import ImageDecodeError, pil_to_uint8_tensor
from imtrans.errors import ImtransError
from imtrans.eval import metrics
from imtrans.eval.features import FeatureExtractor, Precision, extract_features
from imtrans.eval.stats import cached_features

TranslateFn = Callable[[list[torch.Tensor]], list[np.ndarray]]


@dataclass
class EvalResult:
    """FID, KID (mean ± std over subsets) and what they were computed from."""

    fid: float
    kid_mean: float
    kid_std: float
    n_real: int
    n_fake: int
    extractor: dict[str, Any]
    kid_subsets: int
    kid_subset_size: int
    real: str = ""
    fake: str = ""
    direction: Optional[str] = None
    seconds: float = 0.0
    reference_cached: bool = False
    skipped: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ImageSource:
    """Images of one domain as ``uint8 [3, H, W]`` tensors; undecodable files are skipped and recorded."""

    domain: Any
    label: str
    size: Optional[int] = None
    limit: Optional[int] = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    sizes: collections.Counter = field(default_factory=collections.Counter)

    def __len__(self) -> int:
        return min(len(self.domain), self.limit) if self.limit else len(self.domain)

    def name(self, i: int) -> str:
        return self.domain.name(i) if hasattr(self.domain, "name") else str(i)

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        from imtrans.translate.translator import resize_short_side

        for i in range(len(self)):
            try:
                img = self.domain.load(i).convert("RGB")
            except ImageDecodeError as e:
                self.skipped.append((self.name(i), str(e)))
                continue
            if self.size is not None:
                img = resize_short_side(img, self.size)
            self.sizes[img.size] += 1
            yield self.name(i), pil_to_uint8_tensor(img)


def _rgb(arr: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
    return t.expand(3, -1, -1).contiguous() if t.shape[0] == 1 else t[:3].contiguous()


def _save_png(arr: np.ndarray, dest: Path) -> None:
    from PIL import Image

    from imtrans.atomic import atomic_write_bytes

    buf = io.BytesIO()
    Image.fromarray(arr[:, :, 0] if arr.shape[2] == 1 else arr).save(buf, format="PNG")
    atomic_write_bytes(dest, buf.getvalue())


def translated(source: ImageSource, translate: TranslateFn, batch_size: int = 1,
               save: Optional[Path] = None) -> Iterator[torch.Tensor]:
    """Translations of ``source`` (same-size neighbours batched), optionally written to ``save`` as PNG."""
    pending: list[tuple[str, torch.Tensor]] = []

    def run() -> Iterator[torch.Tensor]:
        outs = translate([x for _, x in pending])
        for (name, _), arr in zip(pending, outs):
            if save is not None:
                _save_png(arr, (save / name).with_suffix(".png"))
            yield _rgb(arr)
        pending.clear()

    for name, x in source:
        if pending and (len(pending) == batch_size or pending[0][1].shape != x.shape):
            yield from run()
        pending.append((name, x))
    if pending:
        yield from run()


def _size_notes(real: ImageSource, fake_sizes: collections.Counter) -> list[str]:
    notes = []
    for label, sizes in ((real.label, real.sizes), ("translated images", fake_sizes)):
        if len(sizes) > 1:
            notes.append(f"{label} come in {len(sizes)} sizes; each is resized to the extractor's input on its own")
    if real.sizes and fake_sizes:
        r, f = real.sizes.most_common(1)[0][0], fake_sizes.most_common(1)[0][0]
        if r != f:
            notes.append(f"real images are mostly {r[0]}x{r[1]} but translated ones {f[0]}x{f[1]}: FID is "
                         "sensitive to resolution, so compare sets of the same size (see --size)")
    return notes


def _fid_kid(real: np.ndarray, fake: np.ndarray, kid_subsets: int, kid_subset_size: int, seed: int) -> dict[str, Any]:
    for what, f in (("real", real), ("translated", fake)):
        if len(f) < 2:
            raise ImtransError(f"only {len(f)} {what} image(s) could be read; FID and KID need at least 2 per set")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", metrics.MetricWarning)
        fid = metrics.fid_from_features(real, fake)
    mean, std, m = metrics.kid(real, fake, subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
    notes = [str(w.message) for w in caught if issubclass(w.category, metrics.MetricWarning)]
    return {"fid": fid, "kid_mean": mean, "kid_std": std, "kid_subsets": kid_subsets, "kid_subset_size": m,
            "notes": notes}


def _features(images, extractor: FeatureExtractor, batch_size: int, device) -> np.ndarray:
    return extract_features(images, extractor, batch_size=batch_size, device=device)


def _fake_features(fake: ImageSource | Iterator[torch.Tensor], extractor: FeatureExtractor, batch_size: int,
                   device, sizes: collections.Counter) -> np.ndarray:
    def counted():
        for x in fake:
            x = x[1] if isinstance(x, tuple) else x
            sizes[(x.shape[2], x.shape[1])] += 1
            yield x

    return _features(counted(), extractor, batch_size, device)


def evaluate_sets(
    real: ImageSource,
    fake: ImageSource | Iterator[torch.Tensor],
    extractor: FeatureExtractor,
    *,
    fake_label: str = "",
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    kid_subsets: int = metrics.KID_SUBSETS,
    kid_subset_size: int = metrics.KID_SUBSET_SIZE,
    kid_seed: int = metrics.KID_SEED,
    use_cache: bool = True,
) -> EvalResult:
    """FID/KID of ``fake`` (a source or an iterator of translated ``uint8`` images) against ``real``."""
    t0 = time.perf_counter()
    identity = extractor.identity()
    precision = "bf16" if extractor.dtype == torch.bfloat16 else "fp32"

    def real_feats() -> np.ndarray:
        f = _features((x for _, x in real), extractor, batch_size, device)
        if real.skipped:  # do not cache a set that was only partly readable
            raise _Partial(f)
        return f

    try:
        rf, cached = cached_features(real.domain, identity, real_feats,
                                     extra={"size": real.size, "limit": real.limit, "precision": precision},
                                     use_cache=use_cache)
    except _Partial as p:
        rf, cached = p.features, False
    fake_sizes: collections.Counter = collections.Counter()
    ff = _fake_features(fake, extractor, batch_size, device, fake_sizes)
    skipped = list(real.skipped) + (list(fake.skipped) if isinstance(fake, ImageSource) else [])
    if not len(ff):
        raise ImtransError(f"no translated images to evaluate ({fake_label or 'fake set'} is empty or unreadable)")
    numbers = _fid_kid(rf, ff, kid_subsets, kid_subset_size, kid_seed)
    notes = numbers.pop("notes") + _size_notes(real, fake_sizes)
    if identity.get("weights_sha256") == "random-init":
        notes.append("the extractor has random weights: these numbers only exercise the pipeline and mean nothing")
    if skipped:
        notes.append(f"{len(skipped)} unreadable image(s) were left out (listed under 'skipped')")
    return EvalResult(n_real=len(rf), n_fake=len(ff), extractor=identity, real=real.label, fake=fake_label,
                      seconds=time.perf_counter() - t0, reference_cached=cached, skipped=skipped, notes=notes,
                      **numbers)


class _Partial(Exception):
    def __init__(self, features: np.ndarray) -> None:
        super().__init__("partial")
        self.features = features


def build_extractor(name: str = "inception_v3_fid", precision: Precision = "fp32", **params: Any) -> FeatureExtractor:
    """A registered feature extractor, built with ``params`` and set to ``precision``."""
    from imtrans import registry

    ext = registry.build("feature_extractor", name, **params)
    if not isinstance(ext, FeatureExtractor):
        raise ImtransError(f"feature extractor '{name}' did not build an imtrans.eval.FeatureExtractor; "
                           "its plugin must subclass it")
    return ext.set_precision(precision)


def extractor_from_spec(spec: dict[str, Any], download: bool = False) -> FeatureExtractor:
    """A recipe's ``train.eval_features`` built; weights are not downloaded unless ``download`` (never mid-run).

    Raises :class:`~imtrans.eval.weights.WeightsUnavailableError` when the weights are not on this
    machine, another :class:`ImtransError` when the spec itself is wrong.
    """
    from imtrans import registry

    params = {k: v for k, v in spec.items() if k != "name"}
    if "download" in registry.get_registry("feature_extractor").get(spec["name"]).params.model_fields:
        params.setdefault("download", download)
    return build_extractor(spec["name"], **params)


def fid_kid_for_run(
    translate: TranslateFn,
    source: Any,
    real: Any,
    extractor: FeatureExtractor,
    *,
    max_images: Optional[int] = None,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    **options: Any,
) -> dict[str, Any]:
    """FID/KID of ``translate`` applied to the ``source`` domain against the ``real`` domain (trainer hook).

    ``translate`` maps a list of same-size ``uint8 [C, H, W]`` tensors to
    ``[H, W, C]`` uint8 arrays (``Translator.translate_batch`` does).  Returns
    ``{"fid", "kid_mean", "kid_std", "n_real", "n_fake", "extractor"...}``; ``options`` go to
    :func:`evaluate_sets` (``kid_subsets``, ``use_cache``...).
    """
    src = ImageSource(source, repr(source), limit=max_images)
    ref = ImageSource(real, repr(real), limit=max_images)
    res = evaluate_sets(ref, translated(src, translate), extractor, batch_size=batch_size, device=device, **options)
    res.skipped = list(src.skipped) + res.skipped
    return res.as_dict()


def _folder(path: str | Path) -> Any:
    from imtrans.data.folder import FolderDomain

    return FolderDomain("test", str(path))


def held_out_domains(run: str | Path, direction: str, data_root: Optional[str | Path] = None) -> tuple[Any, Any]:
    """The held-out ``(source, target)`` domains of ``run`` for ``direction`` (``a2b``: testA -> testB).

    ``data_root`` (an unpaired layout) wins; otherwise the run's recipe (stored in
    its checkpoint) gives ``data.test_a``/``data.test_b``, else the test split of the training
    domain ``[data.a]``/``[data.b]`` (the quickstart's synthetic task), else the layout of
    ``data.root`` — the order training's own evaluation reads them in.
    """
    from imtrans import registry
    from imtrans.data.folder import layout

    if direction not in ("a2b", "b2a"):
        raise ImtransError(f"--direction '{direction}' is not a2b or b2a")
    src, dst = ("a", "b") if direction == "a2b" else ("b", "a")
    if data_root is not None:
        return layout("test", str(data_root), src), layout("test", str(data_root), dst)
    from imtrans.engine.checkpoint import read_meta, stored_recipe

    data = stored_recipe(read_meta(run)).get("data") or {}

    def side(s: str):
        spec = data.get(f"test_{s}")
        if spec is not None:
            return registry.build_spec("domain", spec, "test")
        if isinstance(data.get(s), dict):
            dom = registry.build_spec("domain", data[s], "test")
            if hasattr(dom, "load"):  # an image domain; a pair source (pix2pix's aligned data) is not one side
                return dom
        if data.get("root"):
            return layout("test", data["root"], s, data.get("dataset", ""))
        raise ImtransError(f"{run} names no held-out split (its recipe has no data.test_{s}, no image domain in data.{s} and no data.root); "
                           "pass --data ROOT (with testA/testB) or --real DIR")

    return side(src), side(dst)


def check_sources(run: Any, real: Any, fake: Any, data_root: Any) -> None:
    """One clear error when the arguments name no translated images or no real ones."""
    if fake is None and run is None:
        raise ImtransError("give a RUN to translate the held-out split, or --fake DIR with translated images")
    if real is None and run is None and data_root is None:
        raise ImtransError("--fake DIR needs --real DIR (or --data ROOT, or a RUN whose recipe names the split)")
    # before the extractor is built (seconds, or a weights download) for folders that are not there
    for option, path, what in (("--real", real, "real target-domain images"), ("--fake", fake, "translated images"),
                               ("--data", data_root, "an unpaired layout with testA/testB")):
        if path is not None and not Path(path).expanduser().is_dir():
            state = "is not a folder" if Path(path).expanduser().exists() else "does not exist"
            raise ImtransError(f"{option} {path} {state}; give a folder of {what}")


def evaluate_run(
    run: Optional[str | Path],
    direction: str = "a2b",
    *,
    data_root: Optional[str | Path] = None,
    real: Optional[str | Path] = None,
    fake: Optional[str | Path] = None,
    save: Optional[str | Path] = None,
    extractor: Optional[FeatureExtractor] = None,
    device: str = "auto",
    precision: str = "auto",
    size: Optional[int] = None,
    batch_size: int = 16,
    kid_subsets: int = metrics.KID_SUBSETS,
    kid_subset_size: int = metrics.KID_SUBSET_SIZE,
    use_cache: bool = True,
) -> EvalResult:
    """What ``imtrans eval`` runs: FID/KID of a run's translations (or of ``fake``) against the real split.

    ``real``/``fake`` are folders; without ``fake`` the held-out source split is
    translated by ``run`` (``size`` resizes the short side of both sides first).
    """
    from imtrans.engine.runtime import resolve_device

    check_sources(run, real, fake, data_root)
    label = run
    if run is not None:
        from imtrans.zoo import resolve_model

        run = resolve_model(run, direction=direction)  # a zoo name or hf-hub: id becomes its weights file
    dev = resolve_device(device)
    extractor = extractor or build_extractor()
    need_split = real is None or fake is None
    src_dom = dst_dom = None
    if need_split:
        src_dom, dst_dom = held_out_domains(run, direction, data_root)
    real_dom = _folder(real) if real is not None else dst_dom
    ref = ImageSource(real_dom, str(getattr(real_dom, "root", real_dom)), size=size)
    kw = dict(batch_size=batch_size, device=dev, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size,
              use_cache=use_cache)
    if fake is not None:
        res = evaluate_sets(ref, ImageSource(_folder(fake), str(fake)), extractor, fake_label=str(fake), **kw)
    else:
        from imtrans.translate import load_translator

        t = load_translator(run, direction=direction, device=device, precision=precision)
        src = ImageSource(src_dom, str(getattr(src_dom, "root", src_dom)), size=size)
        out = Path(save) if save is not None else None
        fakes = translated(src, t.translate_batch, batch_size=t.batch_size, save=out)
        res = evaluate_sets(ref, fakes, extractor, fake_label=f"{label} ({direction}) on {src.label}", **kw)
        res.skipped = list(src.skipped) + res.skipped
    res.direction = direction if fake is None else None
    return res
