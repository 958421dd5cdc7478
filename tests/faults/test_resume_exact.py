"""A run interrupted mid-epoch and resumed is the uninterrupted run: the same steps, epochs, learning rates,
evaluations, snapshots and (within the bitwise-resume tolerance of test_train_run) the same weights.

Stops: SIGINT and SIGTERM (the run checkpoints at the step it is in and returns), and ``kill -9`` two steps
after a mid-epoch ``checkpoint_every`` checkpoint (the resumed run repeats those two steps).  The epochs are
not capped (``steps_per_epoch`` unset): a resumed epoch must still be a whole epoch long.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

import helpers
from helpers import one_torch_thread  # noqa: F401  (autouse fixture)
from imtrans.engine import checkpoint as ckpt
from imtrans.engine.trainer import Trainer
from imtrans.recipe import recipe_from_dict

from conftest import ROOT

STOP_AT = 8  # epoch 1 (steps 7-12) is 2 steps in: mid-epoch
EVERY = 4    # checkpoint_every: the kill -9 run's last checkpoint is step 8, mid-epoch


def data(root: Path, name: str) -> dict:
    # 12 A images, batch 2: 6 steps per epoch; 1 + 2 decay epochs = 18 steps; the LR changes every epoch
    d = helpers.tiny_data(root, name, steps_per_epoch=None, epochs=1, epochs_decay=2, checkpoint_every=EVERY,
                          save_every_epochs=1, sample_every=0, log_every=1, eval_fid=False)
    return d


def records(run: Path) -> list[dict]:
    return [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]


def schedule(run: Path) -> list[tuple]:
    """What must not move: every train/eval record's step, epoch and LR, in order."""
    out = []
    for r in records(run):
        if r["kind"] == "train":
            out.append(("train", r["step"], r["epoch"], r["lr"]))
        elif r["kind"] == "eval":
            out.append(("eval", r["step"], r["epoch"], bool(r.get("final"))))
    return out


def snapshots(run: Path) -> dict[str, int]:
    return {p.name: ckpt.read_meta(p)["step"] for p in sorted((run / "checkpoints").glob("epoch_*"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    torch.set_num_threads(1)
    res = Trainer(recipe_from_dict(data(root, "full")), progress=False, handle_signals=False).fit()
    assert res.steps == 18 and res.stopped == "finished"
    return root / "full"


def interrupt_in_process(root: Path, sig: signal.Signals) -> Path:
    """Send ``sig`` to ourselves when step STOP_AT is logged: the run must stop there with a checkpoint."""

    def on_log(rec):
        if rec["step"] == STOP_AT:
            os.kill(os.getpid(), sig)

    res = Trainer(recipe_from_dict(data(root, "cut")), progress=False, on_log=on_log).fit()
    assert res.stopped == f"stopped by {sig.name}" and res.steps == STOP_AT
    return root / "cut"


CHILD = """
import os, signal, sys
sys.path[:0] = {paths!r}
import torch
from pathlib import Path
from imtrans.engine.trainer import Trainer
from imtrans.plugins import load_plugins
from imtrans.recipe import recipe_from_dict
from test_resume_exact import data  # (its conftest import sets 2 threads)
torch.set_num_threads(1)
load_plugins()
def on_log(rec):
    if rec["step"] == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)
Trainer(recipe_from_dict(data(Path({root!r}), {name!r})), progress=False, on_log=on_log).fit()
"""


def child(root: Path, name: str, kill_at: int) -> int:
    """Train in a fresh process (SIGKILLing itself when step ``kill_at`` is logged); its exit code."""
    here = Path(__file__).resolve().parent
    code = CHILD.format(paths=[str(here), str(here.parent)], kill_at=kill_at, root=str(root), name=name)
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, **helpers.ONE_THREAD))
    assert p.returncode in (0, -signal.SIGKILL), p.stderr
    return p.returncode


def kill_9(root: Path) -> Path:
    """A process trains and SIGKILLs itself 2 steps after its mid-epoch checkpoint at step 8; we resume it."""
    assert child(root, "cut", kill_at=STOP_AT + 2) == -signal.SIGKILL
    run = root / "cut"
    assert max(r["step"] for r in records(run) if r["kind"] == "train") == STOP_AT + 2
    return run


def resume(run: Path) -> None:
    st = ckpt.load_state(run)
    assert (st["step"], st["epoch"], st["step_in_epoch"]) == (STOP_AT, 1, STOP_AT - 6)
    out = io.StringIO()
    res = Trainer(recipe_from_dict(data(run.parent, run.name)), resume=True, progress=False,
                  handle_signals=False, console=Console(file=out, width=200)).fit()
    assert (res.steps, res.epoch, res.stopped) == (18, 3, "finished")
    said = [line for line in out.getvalue().splitlines() if line.startswith("imtrans:")]
    # the run's start line, then the one resume line (evaluation lines follow as the run goes on)
    assert said[0].startswith("imtrans: training cyclegan on cpu")
    assert said[1] == "imtrans: resuming from step 8 (epoch 2/3, 2 of its 6 steps done); 10 steps to go, to step 18"
    assert not any("resuming" in line for line in said[2:])


def assert_same_run(run: Path, reference: Path) -> None:
    assert schedule(run) == schedule(reference)
    assert snapshots(run) == snapshots(reference) == {"epoch_0001": 6, "epoch_0002": 12, "epoch_0003": 18}
    ref_evals = [r for r in records(reference) if r["kind"] == "eval"]
    for a, b in zip([r for r in records(run) if r["kind"] == "eval"], ref_evals):
        assert a["metrics"] == pytest.approx(b["metrics"], abs=1e-5), a["step"]
    full, cut = ckpt.load_weights(reference), ckpt.load_weights(run)
    assert full.keys() == cut.keys()
    for k in full:
        assert torch.allclose(full[k], cut[k], atol=1e-6, rtol=0), k
    # the resume was said once, in metrics.jsonl too (the report page shows it)
    resumed = [r for r in records(run) if r["kind"] == "resume"]
    assert [(r["step"], r["epoch"]) for r in resumed] == [(STOP_AT, 1)]
    assert f"Resumed from the checkpoint at step {STOP_AT} (in epoch 2)." in (run / "index.html").read_text()


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_signalled_mid_epoch_and_resumed_equals_uninterrupted(tmp_path, reference, sig):
    run = interrupt_in_process(tmp_path, getattr(signal, sig))
    resume(run)
    assert_same_run(run, reference)


def test_killed_after_a_mid_epoch_checkpoint_and_resumed_equals_uninterrupted(tmp_path, reference):
    run = kill_9(tmp_path)
    resume(run)
    assert_same_run(run, reference)
