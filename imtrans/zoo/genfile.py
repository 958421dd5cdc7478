"""imtrans generator files in the zoo: what one holds, and its checks when a zoo entry downloads one.

A generator file is a weights file in the checkpoint's own format
(:func:`imtrans.engine.checkpoint.weights_bytes`) holding one network, ``G``,
that translates ``a2b``; its ``imtrans`` metadata is the run checkpoint's for
that network: the part spec and its origin (plugin, distribution, version),
so it rebuilds without the recipe and a missing plugin is named with its
``pip install``; plus the scheme, step, epoch, test mode, recipe and the
origins of the recipe's parts, and ``exported`` (the run's direction and
network name it came from).

:mod:`imtrans.zoo.publish` writes one from a run (``imtrans export RUN -o model.safetensors``).

* :func:`translating_net`: which network of a file translates a direction;
* :func:`accept`: checks a file downloaded for a ``Pretrained`` entry of format
  ``imtrans`` (readable metadata, a translating generator, the entry's architecture);
* :func:`missing_pins` / :func:`check_parts`: the ``pip install`` of the plugin parts a
  file needs and this environment lacks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imtrans.zoo.catalogue import Pretrained, describe_spec
from imtrans.zoo.convert import RefusedFileError

#: the network name inside a generator file (what the zoo's converted official files use too)
NET = "G"


def translating_net(meta: dict[str, Any], where: str, direction: str = "a2b") -> str:
    """The network of ``meta`` that translates in ``direction``, as :func:`imtrans.build.load_generator` picks it."""
    from imtrans.engine.checkpoint import CheckpointError

    nets = meta.get("nets") or {}
    translators = meta.get("translators") or {}
    if translators:
        name = translators.get(direction)
        if name is None:
            raise CheckpointError(f"{where} has no direction '{direction}'; it has {', '.join(sorted(translators))}: "
                                  "pass --direction accordingly")
    else:  # a file without the map (import-weights of an older version): its one generator
        gens = [n for n, i in nets.items() if isinstance(i, dict) and i.get("kind") == "generator"]
        name = gens[0] if len(gens) == 1 else None
    info = nets.get(name) if name is not None else None
    if not (isinstance(info, dict) and info.get("kind") == "generator" and isinstance(info.get("spec"), dict)
            and isinstance(info["spec"].get("name"), str)):
        raise CheckpointError(f"{where} holds no rebuildable generator translating {direction} "
                              f"(networks: {', '.join(nets) or 'none'}); it is not an imtrans generator file")
    return str(name)


def _refuse(name: str, url: str, why: str, fix: str) -> RefusedFileError:
    return RefusedFileError(f"the file downloaded for pretrained '{name}' from '{url}' was refused and removed from "
                            f"the cache because {why}; {fix}")


def accept(name: str, entry: Pretrained, path: Path, url: str) -> None:
    """Check a downloaded generator file for ``entry``; :class:`RefusedFileError` (one sentence) if it does not fit."""
    from safetensors import SafetensorError, safe_open

    from imtrans.engine.checkpoint import CheckpointError, read_meta

    try:
        meta = read_meta(path)
        net = translating_net(meta, str(path))
        with safe_open(str(path), framework="pt") as sf:
            if not any(k.startswith(net + ".") for k in sf.keys()):
                raise CheckpointError(f"it holds no weights of network '{net}'")
    except (CheckpointError, SafetensorError, OSError) as e:
        raise _refuse(name, url, f"it is not an imtrans generator file ({str(e).split('; ')[0]})",
                      "publish a file written by `imtrans export RUN -o model.safetensors`") from None
    spec = meta["nets"][net]["spec"]
    if entry.architecture:
        wrong = _mismatch(entry.architecture, spec)
        if wrong:
            raise _refuse(name, url, f"the entry declares architecture {entry.describe_architecture()} but the file "
                          f"holds {describe_spec(spec)} ({wrong})",
                          "correct the entry's architecture, or leave it out (the file carries its own)")


def _mismatch(declared: dict[str, Any], spec: dict[str, Any]) -> str:
    """The first difference between an entry's architecture and a file's spec, as ``key=file value``; ``""`` if none."""
    from imtrans.registry import get_registry

    if declared["name"] != spec["name"]:
        return f"part '{spec['name']}'"
    reg = get_registry("generator")
    full = {**(reg.get(spec["name"]).defaults() if spec["name"] in reg else {}), **spec}  # older files omit defaults
    for k, v in declared.items():
        if k not in full:
            return f"no parameter {k}"
        if full[k] != v:
            return f"{k}={full[k]!r}"
    return ""


def missing_pins(meta: dict[str, Any]) -> list[str]:
    """``dist==version`` of each plugin distribution a file's networks come from whose part is not registered here."""
    from imtrans.registry import KINDS, get_registry

    pins = []
    for info in (meta.get("nets") or {}).values():
        if not isinstance(info, dict) or not isinstance(info.get("spec"), dict) or info.get("kind") not in KINDS:
            continue
        origin = info.get("origin") if isinstance(info.get("origin"), dict) else {}
        dist, version = str(origin.get("dist") or ""), str(origin.get("version") or "")
        if dist and dist != "imtrans" and info["spec"].get("name") not in get_registry(info["kind"]):
            pins.append(f"{dist}=={version}" if version else dist)
    return list(dict.fromkeys(pins))


def check_parts(name: str, path: Path) -> None:
    """Name the ``pip install`` for a zoo model whose generator's plugin is missing.

    Only the missing case: another installed version is warned about once, when the network is rebuilt
    (:func:`imtrans.build.build_net_from_meta`).
    """
    from imtrans.engine.checkpoint import read_meta
    from imtrans.provenance import check_origin
    from imtrans.registry import KINDS, get_registry

    for info in (read_meta(path).get("nets") or {}).values():
        if isinstance(info, dict) and info.get("kind") in KINDS and isinstance(info.get("spec"), dict):
            part = str(info["spec"].get("name"))
            if part not in get_registry(info["kind"]):
                check_origin(info["kind"], part, info.get("origin"), f"pretrained '{name}'")
