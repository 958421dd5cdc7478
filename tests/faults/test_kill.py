"""kill -9 at any instant leaves a loadable checkpoint, and --resume continues.

Kill points: every distinct instant inside a checkpoint write (``killer.PHASES``,
reached via self-inflicted SIGKILL at an exact point, twice each: on the first and
on a later checkpoint), plus kills from the parent after random delays while
``train.checkpoint_every = 1`` keeps a checkpoint write going almost all the time.
The first-write instants run in CI; the later-write and random ones are ``slow`` (``-m slow``).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.forkserver
import os
import random
import signal
import time
from pathlib import Path

import pytest

import helpers
from helpers import ONE_THREAD, one_torch_thread  # noqa: F401  (autouse fixture)
import killer
from imtrans.build import build_net_from_meta
from imtrans.engine import checkpoint as ckpt
from imtrans.engine.lock import LOCK_NAME

from conftest import run_cli

N_RANDOM = 24  # random-delay kill points (the slow test; the exact instants are 2 per phase)


def _ctx():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["killer"])
    # Python 3.11's fork server does not take the parent's sys.path: unless PYTHONPATH names the test
    # folders when it starts, its preload of `killer` fails silently and every child imports torch and
    # imtrans itself (3.3 s here), longer than the random test's kill delays (0-1.2 s).
    here = Path(__file__).resolve().parent
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(here), str(here.parent), *([old] if old else [])])
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if old is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = old
    return ctx


def check_loadable(run: Path) -> int:
    """What a resume does first: resolve, read metadata, rebuild every net, read the state."""
    path = ckpt.resolve_checkpoint(run)
    meta = ckpt.read_meta(path)
    for net in meta["nets"]:
        build_net_from_meta(path, net)
    st = ckpt.load_state(path)
    assert st["step"] == meta["step"] >= 1
    return int(st["step"])


def resume_from_cli(tmp_path: Path, run: Path) -> None:
    """The killed run directory still resumes from the command line, past the last step reached."""
    last = check_loadable(run)
    toml = helpers.write_toml(tmp_path / "tiny.toml", helpers.tiny_data(
        tmp_path, run.name, checkpoint_every=1, max_steps=last + 2, epochs=1000, epochs_decay=0))
    r = run_cli("run", str(toml), "--resume", str(run), "--no-progress", env=ONE_THREAD, timeout=120)
    assert r.returncode == 0, r.stderr
    assert check_loadable(run) == last + 2
    assert not (run / LOCK_NAME).exists()
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # temp dirs cleaned


def kill_at_every_phase(tmp_path: Path, nth: int) -> Path:
    """One child per phase of a checkpoint write, each killing itself there on its ``nth`` write."""
    ctx = _ctx()
    resolved: list[str] = []
    steps: list[int] = []
    run = tmp_path / "killed"
    for phase in killer.PHASES:
        p = ctx.Process(target=killer.child, args=(str(tmp_path), run.name, phase, nth, 10_000))
        p.start()
        p.join(600)  # generous: on busy shared cores a child's start-up alone can take a minute
        assert p.exitcode == -signal.SIGKILL, (phase, nth, p.exitcode)
        if killer.has_checkpoint(run):
            resolved.append(ckpt.resolve_checkpoint(run).name)
            steps.append(check_loadable(run))
    assert steps and max(steps) > 1, steps
    assert "latest.old" in resolved  # the kill between the two renames left only latest.old, and it loaded
    print(f"kill points tried: {len(killer.PHASES)} (write #{nth}); checkpoint steps seen: {sorted(set(steps))}")
    return run


def test_sigkill_at_every_instant_of_a_checkpoint_write_leaves_a_loadable_checkpoint(tmp_path):
    """Each phase on a process's first write (which, after the first child, replaces an existing latest)."""
    resume_from_cli(tmp_path, kill_at_every_phase(tmp_path, nth=1))


@pytest.mark.slow
def test_sigkill_on_a_later_write_of_the_same_process(tmp_path):
    """Each phase again on a process's third write: the previous latest was written by the same process."""
    resume_from_cli(tmp_path, kill_at_every_phase(tmp_path, nth=3))


@pytest.mark.slow
def test_sigkill_at_random_instants_leaves_a_loadable_checkpoint(tmp_path):
    """Kills from the parent after random delays: training, logging, sampling, checkpoint writes, start-up."""
    ctx = _ctx()
    rng = random.Random(1234)
    steps: list[int] = []
    run = tmp_path / "killed"
    for i in range(N_RANDOM):
        p = ctx.Process(target=killer.child, args=(str(tmp_path), run.name, None, 0, 10_000))
        p.start()
        time.sleep(rng.uniform(0.0, 1.2))
        p.kill()
        p.join(30)  # reaped: the stale lock's pid is really gone
        assert p.exitcode in (-signal.SIGKILL, 0), p.exitcode
        if killer.has_checkpoint(run):
            steps.append(check_loadable(run))
    assert steps and max(steps) > 1, steps
    resume_from_cli(tmp_path, run)
    print(f"kill points tried: {N_RANDOM}; checkpoint steps seen: {sorted(set(steps))}")
