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
    """The tiny synthetic CycleGAN of the tests (tests/conftest.py) on the CPU, without samples or snapshots."""
    from conftest import tiny_recipe_data

    return tiny_recipe_data(root, name, **{"device": "cpu", "sample_every": 0, "save_every_epochs": 0, **train})


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
    term_kind = "translation"

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
    """This module is itself a plugin: ``plugins.load_plugins(objects={"faults": helpers})``."""
    register("nan_at_step", NanLoss)
