"""Checkpoints: safetensors only, written atomically, rebuildable without the recipe.

A checkpoint is a directory::

    checkpoints/latest/
        weights.safetensors   every network's weights, keys "<net>.<param>" (a loss's frozen
                              parameters left out: :func:`frozen_keys`);
                              metadata "imtrans" = JSON {format, scheme, step, epoch,
                              nets: {net: {kind, spec: {name, **params}}}, translators, recipe}
        state.safetensors     optimiser / scheduler / pool / RNG / step state:
                              tensors + a JSON skeleton (no pickle anywhere)

It is written to a temporary directory (files fsync'ed), then renamed into
place; the previous ``latest`` is first renamed to ``latest.old`` and removed
only after the new one is in place, so a crash at any instant leaves a
loadable checkpoint (:func:`resolve_checkpoint` falls back to ``latest.old``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Collection, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from safetensors.torch import save as st_save

from imtrans.atomic import atomic_path, default_dir_mode, fsync_dir
from imtrans.errors import ImtransError
from imtrans.recipe_files import tomllib
from imtrans.registry import record_of
from imtrans.statedict import check_keys

FORMAT = 1
WEIGHTS = "weights.safetensors"
STATE = "state.safetensors"


class CheckpointError(ImtransError):
    """A checkpoint that cannot be read or does not fit the networks."""


# ---------------------------------------------------------------------------
# nested state <-> (tensors, JSON)
# ---------------------------------------------------------------------------

def pack(obj: Any) -> tuple[dict[str, torch.Tensor], Any]:
    """Split nested dicts/lists/tuples into a flat tensor map and a JSON skeleton."""
    tensors: dict[str, torch.Tensor] = {}

    def walk(x: Any, path: str) -> Any:
        if isinstance(x, torch.Tensor):
            key = path or "_"
            tensors[key] = x.detach().cpu().contiguous()
            return {"__t__": key}
        if isinstance(x, dict):
            return {"__d__": [[walk(k, f"{path}.k{i}"), walk(v, f"{path}.{i}")] for i, (k, v) in enumerate(x.items())]}
        if isinstance(x, tuple):
            return {"__tuple__": [walk(v, f"{path}.{i}") for i, v in enumerate(x)]}
        if isinstance(x, list):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(x)]
        if isinstance(x, float) and (x != x or x in (float("inf"), float("-inf"))):
            return {"__float__": repr(x)}
        if x is None or isinstance(x, (bool, int, float, str)):
            return x
        raise TypeError(f"cannot store {type(x).__name__} in a checkpoint")

    return tensors, walk(obj, "s")


def unpack(tensors: dict[str, torch.Tensor], skel: Any) -> Any:
    def walk(x: Any) -> Any:
        if isinstance(x, dict):
            if "__t__" in x:
                return tensors[x["__t__"]]
            if "__d__" in x:
                return {walk(k): walk(v) for k, v in x["__d__"]}
            if "__tuple__" in x:
                return tuple(walk(v) for v in x["__tuple__"])
            if "__float__" in x:
                return float(x["__float__"])
        if isinstance(x, list):
            return [walk(v) for v in x]
        return x

    return walk(skel)


# ---------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------

def save_weights(
    path: str | Path, nets: Mapping[str, torch.nn.Module | Mapping[str, torch.Tensor]], meta: dict[str, Any]
) -> Path:
    """Write a weights file: keys ``"<net>.<param>"``, metadata ``imtrans`` = ``meta`` plus ``format``.

    The one writer of the weights format: :func:`save_checkpoint` uses it for
    ``weights.safetensors`` and ``imtrans import-weights`` for its single file.
    ``nets`` maps each network's name to the module or its ``state_dict``.
    The file is written atomically (temporary file + fsync + rename).
    """
    tensors, metadata = _weights_layout(nets, meta)
    _save_st(tensors, Path(path), metadata)
    return Path(path)


def weights_bytes(nets: Mapping[str, torch.nn.Module | Mapping[str, torch.Tensor]], meta: dict[str, Any]) -> bytes:
    """The bytes :func:`save_weights` would write (for callers that write or hash them themselves)."""
    tensors, metadata = _weights_layout(nets, meta)
    return st_save({k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}, metadata=metadata)


def _weights_layout(nets, meta: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    # The weights format in one place: "<net>.<param>" keys, metadata "imtrans" = meta + format.
    weights: dict[str, torch.Tensor] = {}
    for name, net in nets.items():
        sd = saved_state(net) if isinstance(net, torch.nn.Module) else net
        for k, v in sd.items():
            weights[f"{name}.{k}"] = v
    return weights, {"imtrans": json.dumps(dict(meta, format=FORMAT))}


def frozen_keys(net: torch.nn.Module) -> set[str]:
    """The state-dict keys of ``net`` that checkpoints leave out: the frozen parameters of a loss.

    The rule: a module built as a **loss** (its :class:`~imtrans.registry.PartRecord` says so) leaves
    out its parameters with ``requires_grad = False`` (a perceptual loss's pretrained backbone): they
    never train, and the loss rebuilds them from its spec.  Never a scheme's networks (the schemes
    switch a discriminator's ``requires_grad`` off during the generator step, and a generator's
    frozen encoder may come from a file that is not there at translate time), never buffers (a frozen
    backbone's batch-norm statistics still move in train mode, and they are small).  A loss that
    changes its frozen parameters itself, or freezes some only for a while, sets
    ``checkpoint_frozen = True`` and is saved whole.
    """
    rec = record_of(net)
    if rec is None or rec.kind != "loss" or getattr(net, "checkpoint_frozen", False):
        return set()
    return {k for k, p in net.named_parameters(remove_duplicate=False) if not p.requires_grad}


def saved_state(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    """``net.state_dict()`` without its :func:`frozen_keys`: what a checkpoint stores of it."""
    leave_out = frozen_keys(net)
    return {k: v for k, v in net.state_dict().items() if k not in leave_out}


def frozen_digest(net: torch.nn.Module, keys: Collection[str]) -> str:
    """sha256 of the tensors ``keys`` of ``net`` (names, dtypes, shapes, bytes): tells a rebuilt frozen part apart."""
    sd = net.state_dict()
    h = hashlib.sha256()
    for k in sorted(keys):
        t = sd[k].detach().cpu().contiguous()
        h.update(f"{k}\0{t.dtype}\0{tuple(t.shape)}\0".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy())
    return h.hexdigest()


def _save_st(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    # safetensors refuses shared storage and non-contiguous tensors: clone what needs it
    clean = {k: v.detach().cpu().contiguous().clone() for k, v in tensors.items()}
    with atomic_path(path) as tmp:
        save_file(clean, str(tmp), metadata=metadata)


def save_checkpoint(
    dest: Path,
    nets: dict[str, torch.nn.Module],
    meta: dict[str, Any],
    state: dict[str, Any] | None,
) -> Path:
    """Write a checkpoint directory atomically; returns ``dest``."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    old = dest.with_name(dest.name + ".old")
    moved = False  # whether the previous `dest` was renamed to `.old` by this call
    try:
        os.chmod(tmp, default_dir_mode())  # mkdtemp makes it 0700; give it the mode os.mkdir would
        save_weights(tmp / WEIGHTS, nets, meta)
        if state is not None:
            tensors, skel = pack(state)
            _save_st(tensors, tmp / STATE, {"imtrans_state": json.dumps(skel)})
        fsync_dir(tmp)
        if dest.exists():
            if old.exists():
                shutil.rmtree(old)
            os.rename(dest, old)
            moved = True
        os.rename(tmp, dest)
        fsync_dir(dest.parent)
        if old.exists():
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if moved and not dest.exists():
            try:  # put the previous checkpoint back where readers look first
                os.rename(old, dest)
            except OSError:
                pass  # it stays loadable as `.old` (resolve_checkpoint falls back to it)
        raise
    return dest


def remove_stale_temp(cdir: Path) -> int:
    """Delete half-written ``.NAME.*`` temp dirs left in ``cdir`` by a killed writer; returns how many.

    Only call it while holding the run lock: a live writer's temp dir looks the same.
    """
    n = 0
    cdir = Path(cdir)
    if not cdir.is_dir():
        return 0
    for p in cdir.iterdir():
        if p.name.startswith(".") and p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
            n += 1
    return n


# ---------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------

def resolve_checkpoint(path: str | Path) -> Path:
    """A run dir, a checkpoint dir or a weights file -> the checkpoint directory or file."""
    p = Path(path)
    if p.is_file():
        return p
    if not p.exists():
        raise CheckpointError(f"{p} does not exist; give a run directory, a checkpoint directory or a .safetensors file")
    candidates = [p, p / "checkpoints" / "latest", p / "checkpoints" / "latest.old", p / "latest", p / "latest.old"]
    for c in candidates:
        if (c / WEIGHTS).is_file():
            return c
    raise CheckpointError(
        f"{p} holds no checkpoint (looked for {WEIGHTS} in it, in checkpoints/latest and latest.old); "
        "train first with `imtrans run`, or point to a .safetensors file"
    )


def _weights_file(ckpt: Path) -> Path:
    return ckpt if ckpt.is_file() else ckpt / WEIGHTS


def read_meta(path: str | Path) -> dict[str, Any]:
    """The JSON metadata stored with the weights."""
    f = _weights_file(resolve_checkpoint(path))
    from safetensors import safe_open

    try:
        with safe_open(str(f), framework="pt") as sf:
            md = sf.metadata() or {}
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{f} is not a readable safetensors file ({e}); it may be truncated or corrupt") from None
    if "imtrans" not in md:
        raise CheckpointError(
            f"{f} has no imtrans metadata; convert official .pth weights with `imtrans import-weights`"
        )
    try:
        meta = json.loads(md["imtrans"])
    except json.JSONDecodeError:
        raise CheckpointError(f"{f}: its imtrans metadata is not valid JSON; the file is corrupt") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("nets", {}), dict):
        raise CheckpointError(f"{f}: its imtrans metadata is not a table of networks; the file is corrupt")
    return meta


def stored_recipe(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe table a checkpoint's metadata (:func:`read_meta`) stores; ``{}`` if none or not valid TOML.

    A checkpoint's weights stay usable without its recipe, so readers that only
    want facts from it (held-out data, descriptions, the schedule) get an empty table.
    """
    text = meta.get("recipe")
    if isinstance(text, dict):
        return text
    if not isinstance(text, str) or not text.strip():
        return {}
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return {}


def load_weights(path: str | Path, prefix: str | None = None) -> dict[str, torch.Tensor]:
    f = _weights_file(resolve_checkpoint(path))
    try:
        tensors = load_file(str(f))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{f} cannot be loaded ({e}); it may be truncated or corrupt") from None
    if prefix is None:
        return tensors
    pre = prefix + "."
    return {k[len(pre):]: v for k, v in tensors.items() if k.startswith(pre)}


def load_state(path: str | Path) -> dict[str, Any]:
    ckpt = resolve_checkpoint(path)
    f = ckpt / STATE
    if not f.is_file():
        raise CheckpointError(f"{ckpt} has no {STATE}; it holds weights only and cannot resume training")
    from safetensors import safe_open

    try:
        with safe_open(str(f), framework="pt") as sf:
            skel = json.loads((sf.metadata() or {})["imtrans_state"])
        tensors = load_file(str(f))
    except (SafetensorError, OSError, ValueError, KeyError, RuntimeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{f} cannot be loaded ({e}); it may be truncated or corrupt") from None
    try:
        state = unpack(tensors, skel)
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{f}: its state skeleton is corrupt ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{f}: its state is not a table; the file is corrupt")
    return state


def load_into(net: torch.nn.Module, weights: dict[str, torch.Tensor], where: str,
              optional: Collection[str] = ()) -> None:
    """Load a state dict strictly, naming the first mismatched key and shape on failure.

    ``optional`` keys (a loss's :func:`frozen_keys`, kept as built) may be absent from ``weights``;
    when present (a checkpoint written before they were left out) they are checked and loaded too.
    """
    expected = {k: v for k, v in net.state_dict().items() if k not in optional or k in weights}
    check_keys(expected, weights, f"{where} does not fit this network", "it was saved for another architecture",
               CheckpointError)
    net.load_state_dict(weights, strict=not optional)
