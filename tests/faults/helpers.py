"""Shared helpers of the fault tests: a tiny recipe (dict and TOML) and a NaN-injecting loss plugin."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

from imtrans import hookimpl

#: environment for CLI subprocesses: one torch thread (two spin-waiting threads crawl on shared CPUs)
ONE_THREAD = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Autouse in every fault test module that imports it: torch on one thread for the test, then restored.

    On shared CPUs, OpenMP spin-waiting on two threads made the tiny training steps ~20x slower.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_data(root: Path, name: str, **train: Any) -> dict[str, Any]:
    """The tiny synthetic CycleGAN of tests/test_train_run.py as a recipe dict (32 px, workers 0)."""
    return {
        "description": "fault test",
        "data": {
            "a": {"name": "synthetic", "task": "stripes", "side": "a", "count": 12, "size": 40},
            "b": {"name": "synthetic", "task": "stripes", "side": "b", "count": 10, "size": 40},
            "augment": {"name": "resize_and_crop", "load_size": 40, "crop_size": 32, "flip": True},
            "batch_size": 2,
            "workers": 0,
        },
        "model": {
            "generator": {"name": "resnet", "ngf": 4, "n_blocks": 1},
            "discriminator": {"name": "patchgan", "ndf": 4, "n_layers": 1},
        },
        "scheme": {"name": "cyclegan", "pool_size": 3},
        "train": {"precision": "fp32", "device": "cpu", "epochs": 1, "epochs_decay": 2, "steps_per_epoch": 3,
                  "log_every": 1, "sample_every": 0, "save_every_epochs": 0, "eval_images": 4, **train},
        "output": {"root": str(root), "name": name},
    }


def write_toml(path: Path, data: dict[str, Any]) -> Path:
    import tomli_w

    path.write_text(tomli_w.dumps(copy.deepcopy(data)))
    return path


class NanLoss(torch.nn.Module):
    """Extra generator term that is 0 (with a gradient) except at the listed training steps, where it is NaN or Inf.

    ``steps``: comma-separated 1-based training steps; ``value``: "nan" or "inf".
    Steps are counted from the calls made with gradients enabled (two per step: a->b and b->a).
    """

    default_weight = 1.0

    def __init__(self, steps: str = "3", value: str = "nan"):
        super().__init__()
        self.bad = {int(x) for x in steps.split(",") if x.strip()}
        self.value = float(value)
        self.calls = 0

    def forward(self, src, out, generator):
        zero = out.mean() * 0.0
        if not torch.is_grad_enabled():
            return zero  # set-up probe
        self.calls += 1
        step = (self.calls + 1) // 2
        return zero + self.value if step in self.bad else zero


@hookimpl
def register_losses(register):
    """This module is itself a plugin: ``plugins.register_plugin("faults", helpers)``."""
    register("nan_at_step", NanLoss)
