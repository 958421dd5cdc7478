"""Shared test fixtures: plugin-state isolation and small helpers."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

# Keep every test on 2 CPU threads and away from GPUs, whatever the machine.  Under pytest-xdist
# each worker gets one thread, and so does every subprocess it starts: the workers already share
# the cores, and OpenMP threads spin-waiting for a busy core made tiny steps ~20x slower.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    torch.set_num_threads(1)
else:
    torch.set_num_threads(min(2, os.cpu_count() or 1))
# `auto` translation on CPU exports ONNX graphs into a cache: keep the tests' out of the user's.
os.environ.setdefault("IMTRANS_ONNX_CACHE", tempfile.mkdtemp(prefix="imtrans-test-onnx-"))


@pytest.fixture(autouse=True)
def autograd_left_on(request):
    """Fail a test that switches autograd off globally and leaves it off (later tests would train nothing)."""
    yield
    if not torch.is_grad_enabled():
        torch.set_grad_enabled(True)
        pytest.fail(f"{request.node.nodeid} left autograd disabled; use `with torch.no_grad():` instead", pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _plugins_loaded():
    """Tests build parts directly, so they start where every entry point starts: plugins loaded."""
    from imtrans.plugins import load_plugins

    load_plugins()


@pytest.fixture
def fresh_plugins():
    """For a test that changes what is installed: reload the plugins afterwards, as they were."""
    from imtrans import plugins

    saved_path = list(sys.path)
    yield plugins
    sys.path[:] = saved_path
    plugins.load_plugins(reload=True)


def parts_plugin(hook: str, parts: dict[str, Any]) -> types.SimpleNamespace:
    """A plugin object whose ``hook`` (``"register_losses"``...) registers ``parts`` (name -> factory or entry).

    Load it with ``fresh_plugins.load_plugins(objects={"name": plugin}, reload=True)``.
    """
    from imtrans import hookimpl

    def register_all(register):
        for name, part in parts.items():
            register(name, part)

    return types.SimpleNamespace(**{hook: hookimpl(register_all)})


def make_dist_plugin(tmp: Path, dist: str, module: str, source: str, ep_name: str | None = None, version: str = "0.1") -> Path:
    """A plugin 'installed' as its own distribution: module + minimal dist-info with entry_points.txt."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / f"{module}.py").write_text(textwrap.dedent(source))
    # dist-info folders spell the name with underscores (wheel rule); importlib dedups by that name
    info = tmp / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[imtrans]\n{ep_name or dist} = {module}\n")
    return tmp


def run_cli(*args: str, env: dict | None = None, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    e = dict(os.environ)
    # wide enough that one-sentence messages stay on one line; pytest-xdist workers inherit a COLUMNS of 80
    e["COLUMNS"] = "200"
    if env:
        e.update(env)
    return subprocess.run([sys.executable, "-m", "imtrans", *args], capture_output=True, text=True,
                          env=e, cwd=cwd or ROOT, timeout=timeout)


def tiny_recipe_data(root: Path, name: str, **train) -> dict:
    """A tiny synthetic-data CycleGAN recipe (32 px crops of 40 px, batch 2, workers 0) as a dict."""
    return {
        "description": "test",
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
        "train": {"precision": "fp32", "epochs": 1, "epochs_decay": 2, "steps_per_epoch": 3, "log_every": 1,
                  "eval_images": 4, **train},
        "output": {"root": str(root), "name": name},
    }


def build_wheel(tmp: Path, project: Path = ROOT, package: str = "imtrans") -> Path:
    """A project's wheel, built offline from a copy of it (an in-tree build would leave build/ in the checkout)."""
    src = tmp / "src"
    src.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(project / f, src / f)
    shutil.copytree(project / package, src / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyi"))
    out = tmp / "wheel"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-index", "--no-deps", "--no-build-isolation",
                    "-w", str(out), str(src)], check=True, capture_output=True, timeout=300)
    (wheel,) = out.glob("*.whl")
    return wheel
