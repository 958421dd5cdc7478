"""Weights files that are not ours: reading a ``.pth`` state dict safely, and one strict key/shape check.

Every loader of foreign or stored weights (official ``.pth`` files, the FID
Inception weights, checkpoints) checks a state dict against the network it is
meant for with :func:`mismatch`, so a wrong file is always reported the same
way: the first missing, unexpected or differently shaped key, with its shape.
"""

from __future__ import annotations

import os
from typing import Mapping

import torch

from imtrans.errors import ImtransError


def read_pth(path: str | os.PathLike, *, fix: str, what: str = "weights file") -> dict[str, torch.Tensor]:
    """A ``.pth`` state dict read on the CPU with ``weights_only=True``: no code is ever unpickled.

    A ``{"state_dict": ...}`` wrapper is unwrapped.  Every failure (missing file,
    a pickle that needs code, not a dict of tensors) is one :class:`ImtransError`
    naming the file and ending with ``fix``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ImtransError(f"{what} '{path}' does not exist; {fix}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - every failure means "not a readable .pth"
        # torch's own text for a refused pickle suggests retrying with weights_only=False, i.e.
        # running the file's code: never pass it on.  (Matched by name: this module imports no pickle.)
        if type(e).__name__ == "UnpicklingError":
            raise ImtransError(
                f"could not read '{path}': it is not a state dict (it holds Python objects other than tensors "
                f"and numbers, which are refused without running them); {fix}"
            ) from None
        raise ImtransError(
            f"could not read '{path}': it is not a state dict (not a PyTorch .pth file, or truncated or corrupt); {fix}"
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ImtransError(f"'{path}' does not hold a state dict (a dict of tensors); {fix}")
    return dict(obj)


def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(s) for s in t.shape) + "]"


def _first(keys: list[str], tensors: Mapping[str, torch.Tensor], what: str) -> str:
    more = f" and {len(keys) - 1} more" if len(keys) > 1 else ""
    return f"{what} '{keys[0]}' (shape {_shape(tensors[keys[0]])}){more}"


def mismatch(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor]) -> str | None:
    """Why ``got`` does not load strictly where ``expected`` is (``None`` if it does).

    Names the first missing and the first unexpected key (with how many more),
    else the first key whose shape differs: ``"key 'k' has shape [8, 3] in the
    file but [16, 3] in the network"``.
    """
    missing = [k for k in expected if k not in got]
    unexpected = [k for k in got if k not in expected]
    parts = []
    if missing:
        parts.append(_first(missing, expected, "missing key"))
    if unexpected:
        parts.append(_first(unexpected, got, "unexpected key"))
    if parts:
        return "; ".join(parts)
    for k, v in expected.items():
        if tuple(got[k].shape) != tuple(v.shape):
            return f"key '{k}' has shape {_shape(got[k])} in the file but {_shape(v)} in the network"
    return None


def check_keys(expected: Mapping[str, torch.Tensor], got: Mapping[str, torch.Tensor], what: str, fix: str,
               error: type[ImtransError] = ImtransError) -> None:
    """Raise ``error("{what}: {mismatch}; {fix}")`` unless ``got`` has exactly ``expected``'s keys and shapes."""
    why = mismatch(expected, got)
    if why is not None:
        raise error(f"{what}: {why}; {fix}")
