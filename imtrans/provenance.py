"""Which plugin distribution made each part of a run: recorded in checkpoints, checked when they are read.

A checkpoint's metadata records, for every network, the ``origin`` of its
part (``{"plugin", "dist", "version"}``, recorded by the registry when the part was registered)
and, under ``parts``, the origin of every part the recipe names.  Reading a
checkpoint (``imtrans translate``, ``run --resume``, ``check`` of a recipe
whose run directory holds one) then says ``pip install DIST`` when a part's
plugin is missing, and warns when another version of it is installed.
"""

from __future__ import annotations

import warnings
from typing import Any

from imtrans import registry
from imtrans.errors import ImtransError, ImtransWarning
from imtrans.registry import part_origin, record_of


class ProvenanceWarning(ImtransWarning):
    """A checkpoint's part comes from another version of its plugin than the one installed."""


def net_origin(net: Any) -> dict[str, str]:
    """The origin of a part built by the registry (``{}`` for anything else)."""
    rec = record_of(net)
    return dict(rec.origin) if rec is not None else {}


def recipe_parts(recipe: Any) -> list[tuple[str, str]]:
    """(kind, name) of every part a recipe names."""
    m, d = recipe.model, recipe.data
    out = [("scheme", recipe.scheme.name), ("augmentation", d.augment.name)]
    out += [("generator", s.name) for s in (m.generator, m.generator_b) if s is not None]
    out += [("discriminator", s.name) for s in (m.discriminator, m.discriminator_b) if s is not None]
    if getattr(m, "d_augment", None) is not None:
        out.append(("d_augment", m.d_augment.name))
    out += [("domain", s.name) for s in (d.a, d.b, d.test_a, d.test_b) if s is not None]
    out += [("loss", s.name) for s in recipe.losses.values()]
    return list(dict.fromkeys(out))


def recipe_origins(recipe: Any) -> dict[str, dict[str, str]]:
    """``{"kind:name": origin}`` for every part of a recipe (what a checkpoint records under ``parts``)."""
    return {f"{kind}:{name}": part_origin(kind, name) for kind, name in recipe_parts(recipe)}


def check_origin(kind: str, name: str, origin: Any, where: str) -> None:
    """Raise with the ``pip install`` that provides a missing part; warn when another version is installed."""
    origin = origin if isinstance(origin, dict) else {}  # older checkpoints record none
    dist, version = str(origin.get("dist") or ""), str(origin.get("version") or "")
    if name not in registry.get_registry(kind):
        if dist and dist != "imtrans":  # a built-in part that is missing is not a plugin problem
            pin = f"{dist}=={version}" if version else dist
            raise ImtransError(
                f"{where} needs {kind} '{name}' from the plugin distribution '{dist}' {version}, which is not "
                f"installed here (or failed to load: see `imtrans plugins`); install it with `pip install {pin}`"
            )
        return  # nothing recorded: the registry's own unknown-part error speaks
    now = part_origin(kind, name)
    if dist and now.get("dist") and (now.get("dist"), now.get("version")) != (dist, version):
        warnings.warn(
            f"{where} was made with {kind} '{name}' from {dist} {version}, but {now['dist']} "
            f"{now.get('version', '')} provides it here; results may differ (`pip install {dist}=={version}` "
            f"restores the original)",
            ProvenanceWarning,
            stacklevel=2,
        )


def check_meta(meta: dict[str, Any], where: str) -> None:
    """Check every part a checkpoint's metadata records (its networks and its recipe's parts)."""
    for net, info in (meta.get("nets") or {}).items():
        if not isinstance(info, dict) or not isinstance(info.get("spec"), dict):
            continue  # a corrupt entry: the checkpoint reader reports it
        name, kind = info["spec"].get("name"), info.get("kind")
        if isinstance(name, str) and kind in registry.KINDS and isinstance(info.get("origin"), dict):
            check_origin(kind, name, info["origin"], f"{where} (network '{net}')")
    for key, origin in (meta.get("parts") or {}).items():
        kind, _, name = str(key).partition(":")
        if kind in registry.KINDS and isinstance(origin, dict):
            check_origin(kind, name, origin, where)
