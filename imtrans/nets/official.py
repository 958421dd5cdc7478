"""Loading weights trained with the official pytorch-CycleGAN-and-pix2pix code.

The official code saves plain ``state_dict`` files such as
``checkpoints/<name>/latest_net_G_A.pth`` (``G_A``, ``G_B``, ``D_A``,
``D_B``) and publishes generators such as ``horse2zebra.pth``.  Our
``resnet``, ``unet``, ``patchgan`` and ``pixelgan`` parts build their layers
in the official order under the official attribute names, so the key
mapping is the identity on the layer names:

==========  ==========================  =======================  ==================
part        official class              official keys            our keys
==========  ==========================  =======================  ==================
resnet      ResnetGenerator             ``model.<i>....``        ``model.<i>....``
unet        UnetGenerator               ``model.model.<i>....``  same
patchgan    NLayerDiscriminator         ``model.<i>....``        same
pixelgan    PixelDiscriminator          ``net.<i>....``          same
==========  ==========================  =======================  ==================

What the mapping does handle:

* a leading ``module.`` (saved from ``nn.DataParallel``) is removed, as is
  ``_orig_mod.`` (saved from ``torch.compile``);
* a batch-norm ``num_batches_tracked`` absent from files saved before
  PyTorch 0.4.1 is filled with 0, as PyTorch does for such files;
* ``running_mean`` / ``running_var`` / ``num_batches_tracked`` of
  *instance*-norm layers are dropped: older official versions created
  ``InstanceNorm2d`` with ``track_running_stats=True`` and old checkpoints
  carry those buffers, which the official loader also deletes
  (``__patch_instance_norm_state_dict``); ours track no statistics;
* the parameters used to build the part (``ngf``, ``n_blocks``, ``norm``,
  ...) must be the ones the file was trained with; a mismatch is reported
  as the first missing / unexpected / differently shaped key.

``timm_unet``, ``multiscale`` and spectrally normalised networks have no
official counterpart.  Official ``norm='none'`` networks do not load either:
the official code omits the conv biases there and ours keep them.

Only ``torch.load(..., weights_only=True)`` is used: an official ``.pth``
is a dict of tensors and never needs arbitrary unpickling.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional

import torch
from torch import nn

from imtrans._version import __version__
from imtrans.errors import ImtransError
from imtrans.registry import part_origin, record_of
from imtrans.statedict import check_keys, read_pth

# part name -> (kind, [(official key prefix, imtrans key prefix), ...]).
# The prefixes are the same today because our modules mirror the official
# attribute names; the table is where a future part with different names
# would declare its renames.
OFFICIAL_LAYOUTS: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "resnet": ("generator", [("model.", "model.")]),
    "unet": ("generator", [("model.", "model.")]),
    "patchgan": ("discriminator", [("model.", "model.")]),
    "pixelgan": ("discriminator", [("net.", "net.")]),
}

_STAT_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _layout(part_name: str) -> list[tuple[str, str]]:
    try:
        return OFFICIAL_LAYOUTS[part_name][1]
    except KeyError:
        raise ImtransError(
            f"part '{part_name}' has no official weights layout; official weights exist for: "
            + ", ".join(sorted(OFFICIAL_LAYOUTS))
        ) from None


def _rename(key: str, rules: list[tuple[str, str]], reverse: bool) -> str:
    for official, ours in rules:
        src, dst = (ours, official) if reverse else (official, ours)
        if key.startswith(src):
            return dst + key[len(src):]
    return key


def _strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _WRAPPER_PREFIXES:
            if key.startswith(p):
                key, changed = key[len(p):], True
    return key


def _instance_norm_stat_keys(sd: dict[str, torch.Tensor], module: nn.Module | None) -> set[str]:
    """Keys of running statistics that belong to instance-norm layers."""
    if module is not None:
        prefixes = {name for name, m in module.named_modules() if isinstance(m, nn.InstanceNorm2d)}
        return {k for k in sd if k.rsplit(".", 1)[-1] in _STAT_SUFFIXES and k.rsplit(".", 1)[0] in prefixes}
    # Without the module: official instance norm is never affine while batch
    # norm always is, so statistics without a sibling ``.weight`` are instance norm.
    out = set()
    for k in sd:
        owner, _, leaf = k.rpartition(".")
        if leaf in _STAT_SUFFIXES and f"{owner}.weight" not in sd:
            out.add(k)
    return out


def official_to_imtrans(
    part_name: str, state_dict: dict[str, torch.Tensor], module: nn.Module | None = None
) -> dict[str, torch.Tensor]:
    """Map an official ``state_dict`` to the keys of our part ``part_name``.

    Strips ``module.`` / ``_orig_mod.`` prefixes, drops instance-norm running
    statistics (exactly those of ``module``'s InstanceNorm layers when
    ``module`` is given, otherwise those without a sibling affine weight) and
    applies the prefix renames of :data:`OFFICIAL_LAYOUTS`.  Tensors are not
    copied.
    """
    rules = _layout(part_name)
    stripped = {_strip_wrappers(k): v for k, v in state_dict.items()}
    # Renaming first lets ``module`` (which has our names) pick the statistics.
    renamed = {_rename(k, rules, reverse=False): v for k, v in stripped.items()}
    drop = _instance_norm_stat_keys(renamed, module)
    out = {k: v for k, v in renamed.items() if k not in drop}
    if module is not None:
        # Files saved before PyTorch 0.4.1 have batch-norm statistics but no step counter
        # (e.g. the published pix2pix models); PyTorch itself fills it with 0 for such files.
        for owner, m in module.named_modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and f"{owner}.running_mean" in out:
                out.setdefault(f"{owner}.num_batches_tracked", torch.tensor(0, dtype=torch.long))
    return out


def imtrans_to_official(part_name: str, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map our ``state_dict`` of part ``part_name`` to the official layout (the inverse of :func:`official_to_imtrans`).

    The result loads into the official class with ``load_state_dict``
    (official ``load_networks`` tolerates the absent instance-norm statistics).
    """
    rules = _layout(part_name)
    for k in state_dict:
        if ".parametrizations." in k:
            raise ImtransError(
                f"key '{k}' belongs to a spectrally normalised layer, which the official code does not have; "
                f"build the part with spectral_norm=False"
            )
    return {_rename(k, rules, reverse=True): v for k, v in state_dict.items()}


def load_official_pth(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Read an official ``.pth`` state_dict on the CPU with ``weights_only=True``.

    Failures (missing file, not a tensor dict, a pickle that needs code) become
    :class:`ImtransError`.  A checkpoint dict that wraps the weights under
    ``"state_dict"`` is unwrapped.
    """
    return read_pth(path, what="official weights file",
                    fix="pass a weights file saved by the official code (e.g. latest_net_G_A.pth)")


def _build(part: str, params: dict[str, Any]) -> nn.Module:
    """Build one of our parts with its parameters validated like the registry does.

    A private :class:`~imtrans.registry.Registry` is used so that this works
    without the plugin machinery (and gives the same parameter messages).
    """
    from imtrans.nets.discriminators import DISCRIMINATORS
    from imtrans.nets.generators import GENERATORS
    from imtrans.registry import Registry

    if part in GENERATORS:
        reg, factory = Registry("generator"), GENERATORS[part]
    elif part in DISCRIMINATORS:
        reg, factory = Registry("discriminator"), DISCRIMINATORS[part]
    else:
        _layout(part)  # raises the "no official layout" message
        raise AssertionError("unreachable")
    reg.register(part, factory, plugin="imtrans.nets")
    return reg.build(part, **params)


def convert_official(
    path: str | os.PathLike, part: str, params: dict[str, Any] | None = None
) -> tuple[nn.Module, dict[str, torch.Tensor]]:
    """Build part ``part`` with ``params`` and load the official weights at ``path`` into it.

    Returns ``(module, state_dict)`` where ``state_dict`` is in our layout (ready
    to be stored by the checkpoint code).  Example::

        G, sd = convert_official("horse2zebra.pth", "resnet", {"n_blocks": 9})

    A file that does not fit raises :class:`ImtransError` naming the first
    missing, unexpected or differently shaped key.
    """
    params = dict(params or {})
    _layout(part)
    module = _build(part, params)
    raw = load_official_pth(path)
    sd = official_to_imtrans(part, raw, module)
    what = f"'{os.fspath(path)}' does not fit {part} with parameters {params or 'default'}"
    fix = "build the part with the parameters the file was trained with (ngf, n_blocks/num_downs/n_layers, norm, channels)"
    check_keys(module.state_dict(), sd, what, fix)
    module.load_state_dict(sd, strict=True)
    return module, sd


def _converted(
    pth: str | os.PathLike, part: str, params: dict[str, Any] | None, role: Optional[str], name: Optional[str]
) -> tuple[str, dict[str, torch.Tensor], dict[str, Any]]:
    """``(net name, state_dict in our layout, checkpoint metadata)`` for one official network."""
    if part not in OFFICIAL_LAYOUTS:
        raise ImtransError(f"--part '{part}' has no official layout; choose one of {', '.join(sorted(OFFICIAL_LAYOUTS))}")
    kind = OFFICIAL_LAYOUTS[part][0]
    if role is not None and role != kind:
        raise ImtransError(f"--role {role} does not match part '{part}', which is a {kind}")
    params = dict(params or {})
    net, sd = convert_official(pth, part, params)
    name = name or ("G" if kind == "generator" else "D")
    rec = record_of(net)
    spec = rec.spec if rec is not None else {"name": part, **params}
    # the origin of the part, as a run's checkpoint records it: official layouts are imtrans's own parts
    # (the private registry of _build records none, and the plugins may not be loaded here)
    origin = part_origin(kind, part) or {"plugin": "builtin", "dist": "imtrans", "version": __version__}
    meta: dict[str, Any] = {"nets": {name: {"kind": kind, "spec": spec, "origin": origin}}, "source": Path(pth).name}
    if kind == "generator":
        meta["translators"] = {"a2b": name}
    return name, sd, meta


def import_official_weights(
    pth: str | os.PathLike,
    part: str,
    params: dict[str, Any] | None,
    out: str | os.PathLike,
    role: Optional[Literal["generator", "discriminator"]] = None,
    name: Optional[str] = None,
) -> Path:
    """Convert one official network and save it as an imtrans weights file (what ``imtrans import-weights`` runs).

    The file is written by :func:`imtrans.engine.checkpoint.save_weights`, the
    checkpoint's own writer: keys ``"<name>.<param>"`` (``name`` defaults to
    ``G`` for a generator, ``D`` for a discriminator) and ``imtrans`` metadata
    with ``nets``; a generator also gets ``translators = {"a2b": name}``, so
    ``imtrans translate FILE`` and :func:`imtrans.load_translator` work on it directly.
    ``role``, when given, must match the part's kind.
    """
    from imtrans.engine.checkpoint import save_weights

    name, sd, meta = _converted(pth, part, params, role, name)
    return save_weights(out, {name: sd}, meta)


def imported_weights(
    pth: str | os.PathLike,
    part: str,
    params: dict[str, Any],
    role: Optional[str] = None,
    name: Optional[str] = None,
    extra_meta: Optional[dict[str, Any]] = None,
) -> bytes:
    """The bytes of the file :func:`import_official_weights` writes; ``extra_meta`` adds metadata keys (the zoo's record).

    Encoded by :func:`imtrans.engine.checkpoint.weights_bytes`, the same format code as every weights file.
    """
    from imtrans.engine.checkpoint import weights_bytes

    name, sd, meta = _converted(pth, part, params, role, name)
    return weights_bytes({name: sd}, {**meta, **(extra_meta or {})})


# The name this function had in the CLI module; kept for callers of that API.
import_weights_file = import_official_weights
