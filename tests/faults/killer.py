"""Child side of the kill tests: train the tiny recipe in a process that the test (or the child itself) kills.

Children are started through a ``forkserver`` that has already imported torch and
imtrans, so one kill point costs a fraction of a second instead of a fresh
interpreter.  ``phase`` makes the child SIGKILL *itself* at an exact instant
inside :func:`imtrans.engine.checkpoint.save_checkpoint` (the ``nth`` time that
instant is reached); ``phase=None`` trains until the parent kills it.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import torch

import helpers
from imtrans.engine import checkpoint as ckpt
from imtrans.engine.trainer import Trainer
from imtrans.plugins import load_plugins
from imtrans.recipe import recipe_from_dict

# load the plugin registries in the fork server, once
load_plugins()

PHASES = (
    "torn_weights",         # weights.safetensors half written in the temp dir
    "torn_state",           # state.safetensors half written in the temp dir
    "before_swap",          # both files complete in the temp dir, nothing renamed yet
    "after_latest_to_old",  # latest renamed to latest.old; the new one not yet in place (only latest.old)
    "after_tmp_to_latest",  # the new latest in place, latest.old not yet removed
    "during_remove_old",    # latest.old half deleted (its weights gone, its state still there)
)


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _install(phase: str, nth: int) -> None:
    seen = {"n": 0}

    def hit() -> bool:
        seen["n"] += 1
        return seen["n"] >= nth

    orig_save_st, orig_rename, orig_rmtree = ckpt._save_st, os.rename, shutil.rmtree

    def save_st(tensors, path, metadata):
        orig_save_st(tensors, path, metadata)
        is_w = Path(path).name == ckpt.WEIGHTS
        if (phase == "torn_weights" and is_w) or (phase == "torn_state" and not is_w):
            if hit():
                size = Path(path).stat().st_size
                os.truncate(path, size // 2)
                _die()

    def rename(src, dst, *a, **kw):
        src, dst = Path(src), Path(dst)
        if phase == "before_swap" and src.name.startswith(".") and hit():
            _die()
        orig_rename(src, dst, *a, **kw)
        if phase == "after_latest_to_old" and dst.name.endswith(".old") and hit():
            _die()
        if phase == "after_tmp_to_latest" and src.name.startswith(".") and hit():
            _die()

    def rmtree(path, *a, **kw):
        p = Path(path)
        if phase == "during_remove_old" and p.name.endswith(".old") and (p / ckpt.WEIGHTS).exists() and hit():
            os.unlink(p / ckpt.WEIGHTS)
            _die()
        return orig_rmtree(path, *a, **kw)

    ckpt._save_st = save_st
    os.rename = rename  # this process is thrown away: patching the module is fine
    shutil.rmtree = rmtree


def has_checkpoint(run: Path) -> bool:
    c = run / "checkpoints"
    return (c / "latest" / ckpt.WEIGHTS).exists() or (c / "latest.old" / ckpt.WEIGHTS).exists()


def child(root: str, name: str, phase: str | None, nth: int, max_steps: int) -> None:
    torch.set_num_threads(1)
    if phase:
        _install(phase, nth)
    data = helpers.tiny_data(Path(root), name, checkpoint_every=1, max_steps=max_steps, log_every=1,
                             epochs=1000, epochs_decay=0, save_every_epochs=0)
    run = Path(root) / name
    Trainer(recipe_from_dict(data), resume=has_checkpoint(run), progress=False).fit()
