"""How a generator runs at test time: the pix2pix protocol (``train``) or running statistics (``eval``).

The pix2pix paper, and the official ``test.py`` unless ``--eval`` is given, run
the generator at test time exactly as in training: batch normalisation with the
statistics of the test batch (batch 1, so of the image itself) and dropout on.
:func:`batch_statistics` puts a network in that state without touching its
running statistics; :func:`forward_per_image` runs a batch one image at a time
with the dropout stream re-seeded for each image, so an image's result depends
on neither the other images of its batch nor their order, and is reproducible.

``eval`` is the usual inference mode: running statistics, no dropout (official
``--eval``).  Every evaluation of a pix2pix run and ``imtrans translate`` of its
checkpoint use the mode the run was trained for (:func:`published_norm_mode`).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Literal

import torch
from torch import nn

NormMode = Literal["train", "eval"]
NORM_MODES: tuple[str, ...] = ("auto", "train", "eval")


@contextlib.contextmanager
def batch_statistics(net: nn.Module) -> Iterator[nn.Module]:
    """Inside the block ``net`` is in train mode, but its batch norms neither read nor update running statistics.

    Dropout is active.  Every module's ``training`` flag and every batch norm's
    ``track_running_stats`` are put back on exit, so buffers (``num_batches_tracked``
    included) are exactly as before.
    """
    flags = [(m, m.training) for m in net.modules()]
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    net.train()
    for m in bns:
        # training and not tracking: F.batch_norm gets no running buffers, normalises with the batch's own
        # statistics (what the official train-mode forward computes) and updates nothing
        m.track_running_stats = False
    try:
        yield net
    finally:
        for m in bns:
            m.track_running_stats = True
        for m, flag in flags:
            m.training = flag


def _rng_devices(x: torch.Tensor) -> list[int]:
    return [x.device.index if x.device.index is not None else torch.cuda.current_device()] if x.is_cuda else []


@contextlib.contextmanager
def seeded(seed: int, x: torch.Tensor) -> Iterator[None]:
    """Random numbers (dropout masks) drawn inside the block come from ``seed``; the global streams do not move."""
    with torch.random.fork_rng(devices=_rng_devices(x)):
        torch.manual_seed(seed)
        yield


def forward_per_image(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``fn`` on each image of ``x`` alone (batch statistics of that image), dropout seeded with ``seed`` each time.

    The global random streams are forked, so calling this moves none of them.
    """
    outs = []
    for i in range(x.shape[0]):
        with seeded(seed, x):
            outs.append(fn(x[i:i + 1]))
    return torch.cat(outs, 0)


def published_norm_mode(meta: dict[str, Any]) -> NormMode:
    """The test-time mode a checkpoint's generator was trained for, from its metadata.

    ``test_mode`` when the checkpoint records it (runs since it was added); else
    pix2pix checkpoints (runs, and the zoo's ``pix2pix_*`` files, whose metadata
    name the scheme) use the pix2pix protocol, unless their recipe's
    ``[scheme] test_mode`` says ``eval``; anything else runs in eval mode.
    """
    mode = meta.get("test_mode")
    if mode in ("train", "eval"):
        return mode
    if meta.get("scheme") != "pix2pix":
        return "eval"
    import tomllib

    try:
        scheme = tomllib.loads(meta.get("recipe") or "").get("scheme") or {}
    except (tomllib.TOMLDecodeError, TypeError, AttributeError):
        scheme = {}
    return "eval" if isinstance(scheme, dict) and scheme.get("test_mode") == "eval" else "train"
