"""Checking a recipe by building it: every part's constructor runs once, before anything is trained.

Validating parameters against each part's model catches wrong keys and types;
a constructor's own checks (``patchnce`` layers, a generator's channel
counts, a domain's folder, an extra term's declared ``term_kind``, a feature
extractor's parameters) run only when the part is built.  :func:`build_parts` builds them all, the networks on
the ``meta`` device (shapes without memory or initialisation cost), so that
``imtrans check`` reports what ``imtrans run`` would, before
``recipe.resolved.toml`` is written.
"""

from __future__ import annotations

from typing import Any

import torch

from imtrans import registry
from imtrans.errors import ImtransError
from imtrans.recipe import Recipe


def build_parts(recipe: Recipe, warnings: list[str] | None = None, notes: list[str] | None = None) -> dict[str, Any]:
    """Build the scheme (its networks and losses), the augmentations, the FID/KID feature extractor
    and the domains; return them by role.

    With a ``warnings`` list, a training domain that cannot be built here (its data is not downloaded
    yet, say) is reported there instead of raised: the recipe itself is valid, this machine just
    cannot run it yet.  ``notes`` gets what the run would say without stopping (FID/KID skipped
    because the extractor's weights are not here).
    """
    from imtrans.engine.data import build_paired, domain_specs, scheme_is_paired  # where training finds its data

    out: dict[str, Any] = {}
    with torch.device("meta"):
        out["scheme"] = registry.build_spec("scheme", recipe.scheme.as_dict(), recipe)
        out["augmentation"] = registry.build_spec("augmentation", recipe.data.augment.as_dict())
        if recipe.model.d_augment is not None:
            out["d_augment"] = registry.build_spec("d_augment", recipe.model.d_augment.as_dict())
            if not len(getattr(out["scheme"], "d_augment", ())):
                raise ImtransError(
                    f"{recipe.source}: scheme '{recipe.scheme.name}' does not apply [model.d_augment] (it never "
                    "calls Scheme.build_d_augment), so the augmentation would silently do nothing; remove "
                    "[model.d_augment] or use a scheme that applies it (cyclegan, pix2pix, cut)")
        extractor = build_eval_features(recipe, notes if notes is not None else [])
    if extractor is not None:
        out["eval_features"] = extractor
    if scheme_is_paired(recipe):
        # pairs come from one aligned layout (ROOT/train, ROOT/test) or [data.a], built as `run` builds them
        try:
            _, domains = build_paired(recipe, out["augmentation"].prepare)
        except ImtransError as e:
            if warnings is None:
                raise
            warnings.append(f"data: {e}")
            return out
        out.update({f"data.{k}": v for k, v in domains.items() if v is not None})
        return out
    for key, (spec, split) in domain_specs(recipe).items():  # type: ignore[misc]
        try:
            out[f"data.{key}"] = registry.build_spec("domain", spec.as_dict(), split)
        except ImtransError as e:
            explicit = getattr(recipe.data, key) is not None
            if key.startswith("test") and not explicit:
                continue  # no held-out split in the layout: training samples from training images
            if warnings is None:
                raise
            warnings.append(f"data.{key}: {e}")
    return out


def build_eval_features(recipe: Recipe, notes: list[str]) -> Any:
    """The recipe's ``train.eval_features`` as a run builds it (``None`` without ``eval_fid``); never downloads.

    Weights that are not on this machine go to ``notes`` (the run skips FID/KID and says so); any
    other failure of its constructor is the recipe's mistake, raised naming the key.
    """
    from imtrans.eval.evaluate import extractor_from_spec
    from imtrans.eval.weights import WeightsUnavailableError

    if not recipe.train.eval_fid:
        return None
    try:
        return extractor_from_spec(recipe.train.eval_features.as_dict(), download=False)
    except WeightsUnavailableError as e:
        notes.append(f"train.eval_features: FID/KID will be skipped during training: {e}")
    except ImtransError as e:
        raise ImtransError(f"train.eval_features: {e}") from None
    return None


def describe_domain(key: str, domain: Any, limit: int = 20_000) -> str:
    """One line on what a domain holds: image count, pixel sizes, unreadable files (``imtrans check``).

    Folder domains (those with ``paths``) are read header by header (``verify``: cheap, no full
    decode), up to ``limit`` files; other domains are only counted.
    """
    from collections import Counter

    from PIL import Image

    n = len(domain)
    paths = getattr(domain, "paths", None)
    where = f" in {getattr(domain, 'root', '')}" if getattr(domain, "root", None) else ""
    if paths is None:
        return f"{key}: {n} images{where}"
    sizes: Counter = Counter()
    bad: list[str] = []
    for p in paths[:limit]:
        try:
            with Image.open(p) as im:
                size = im.size
                im.verify()  # the header and, for PNG, the chunk checksums; not a full decode
            sizes[size] += 1
        except Exception:  # noqa: BLE001 - any failure means training would skip this file
            bad.append(p.name)
    text = f"{key}: {n} images{where}"
    if sizes:
        (w, h), most = sizes.most_common(1)[0]
        small, big = min(sizes, key=lambda s: s[0] * s[1]), max(sizes, key=lambda s: s[0] * s[1])
        text += f", {w}x{h} px" if len(sizes) == 1 else (
            f", {len(sizes)} sizes from {small[0]}x{small[1]} to {big[0]}x{big[1]} px (most: {w}x{h}, {most} images)")
    if len(paths) > limit:
        text += f" (sizes from the first {limit})"
    if bad:
        text += f"; {len(bad)} unreadable (training skips them): " + ", ".join(bad[:5]) + (", ..." if len(bad) > 5 else "")
    return text
