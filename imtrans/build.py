"""Build a network, *then* load weights into it: the one place that does both.

Constructors only build (and initialise) layers; they never read files or
download.  This module turns a spec or a checkpoint's metadata into a network
and then loads weights:

* :func:`build_part`: a recipe spec -> a part; a generator whose spec names a zoo
  model (``pretrained = "horse2zebra"``) is then loaded from the zoo to fine-tune;
* :func:`build_net_from_meta` / :func:`load_generator`: a network rebuilt from a
  checkpoint's own metadata (no recipe needed), then its trained weights loaded.

Importing official ``.pth`` files lives beside it in the same layer
(:mod:`imtrans.nets.official`, used by :mod:`imtrans.zoo`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import torch

from imtrans import registry
from imtrans.engine.checkpoint import CheckpointError, load_into, load_weights, read_meta
from imtrans.errors import ImtransError
from imtrans.provenance import check_origin


def build_part(kind: str, spec: Mapping[str, Any], *context: Any) -> Any:
    """Build a registered part from ``{"name": ..., **params}``; a generator with a zoo ``pretrained`` name then loads it."""
    part = registry.build_spec(kind, dict(spec), *context)
    rec = registry.record_of(part)
    zoo_name = rec.params.get("pretrained") if rec is not None and kind == "generator" else None
    if isinstance(zoo_name, str) and zoo_name:  # a bool is timm's own encoder switch (handled by the part)
        from imtrans.zoo.store import init_from_pretrained

        layout = getattr(part, "layout_params", None)
        params = {k: v for k, v in rec.params.items() if layout is None or k in layout}
        init_from_pretrained(part, zoo_name, rec.name, params)
    return part


def _rebuild_spec(spec: dict[str, Any]) -> dict[str, Any]:
    # The checkpoint carries the trained weights: a part's own loader (timm's `pretrained` encoder,
    # `pretrained_file`) must not fetch or need them again.  A zoo name is not loaded here at all.
    spec = dict(spec)
    if spec.get("pretrained") is True:
        spec["pretrained"] = False
    if spec.get("pretrained_file"):
        spec["pretrained_file"] = ""
    return spec


def build_net_from_meta(path: str | Path, net_name: str) -> torch.nn.Module:
    """Rebuild one network from the checkpoint's own metadata and load its weights."""
    meta = read_meta(path)
    nets = meta.get("nets", {})
    if net_name not in nets:
        raise CheckpointError(f"{path} has no network '{net_name}'; it has {', '.join(nets) or 'none'}")
    info = nets[net_name]
    if info == {}:
        raise CheckpointError(f"{path}: network '{net_name}' was not built from a registered part, so it cannot be "
                              "rebuilt from the checkpoint; load its weights into a network you build yourself")
    try:
        kind, spec = info["kind"], dict(info["spec"])
        if not isinstance(kind, str) or not isinstance(spec.get("name"), str):
            raise TypeError("kind and spec.name must be strings")
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: the metadata of network '{net_name}' is corrupt ({e})") from None
    if kind in registry.KINDS:
        # a part whose plugin is missing: name the distribution to install (recorded at training)
        check_origin(kind, spec["name"], info.get("origin"), f"{path} (network '{net_name}')")
    try:
        net = registry.build_spec(kind, _rebuild_spec(spec))
    except CheckpointError:
        raise
    except ImtransError as e:
        raise CheckpointError(
            f"{path}: network '{net_name}' cannot be rebuilt from the checkpoint's metadata ({e}); "
            "the file is corrupt, or it needs a plugin that is not installed"
        ) from None
    load_into(net, load_weights(path, net_name), f"{path} ({net_name})")
    return net.eval()


def load_generator(model: str | os.PathLike, direction: str = "a2b") -> torch.nn.Module:
    """The generator that translates in ``direction``, rebuilt from a checkpoint and loaded, in eval mode.

    ``model`` is a run directory, a checkpoint directory or a ``.safetensors``
    weights file.  ``direction`` is looked up in the checkpoint's
    ``translators`` map (CycleGAN: ``a2b`` = G, ``b2a`` = F); a file without
    that map (e.g. written by an older tool) must hold exactly one generator.
    Raises :class:`CheckpointError` naming the file and the fix.
    """
    meta = read_meta(model)
    translators = meta.get("translators") or {}
    nets = meta.get("nets") or {}
    if translators:
        if direction not in translators:
            raise CheckpointError(
                f"{model} has no direction '{direction}'; it has {', '.join(sorted(translators))}: "
                "pass --direction accordingly"
            )
        return build_net_from_meta(model, translators[direction])
    gens = [n for n, info in nets.items() if isinstance(info, dict) and info.get("kind") == "generator"]
    if len(gens) != 1:
        raise CheckpointError(
            f"{model} holds no translating generator (networks: {', '.join(nets) or 'none'}); "
            "a discriminator-only file cannot translate images"
        )
    return build_net_from_meta(model, gens[0])
