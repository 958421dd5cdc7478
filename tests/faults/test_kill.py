"""kill -9 at any instant leaves a loadable checkpoint, and --resume continues.

Kill points: every distinct instant inside a checkpoint write (``killer.PHASES``,
reached via self-inflicted SIGKILL at an exact point, twice each: on the first and
on a later checkpoint), plus kills from the parent after random delays while
``train.checkpoint_every = 1`` keeps a checkpoint write going almost all the time.
"""

from __future__ import annotations

import multiprocessing
import random
import signal
import time
from pathlib import Path

import helpers
from helpers import ONE_THREAD, one_torch_thread  # noqa: F401  (autouse fixture)
import killer
from imtrans.engine import checkpoint as ckpt
from imtrans.engine.lock import LOCK_NAME

from conftest import run_cli

N_RANDOM = 24  # random-delay kill points (plus 2 per phase)


def _ctx():
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["killer"])
    return ctx


RESOLVED: list[str] = []


def check_loadable(run: Path) -> int:
    """What a resume does first: resolve, read metadata, rebuild every net, read the state."""
    path = ckpt.resolve_checkpoint(run)
    RESOLVED.append(path.name)
    meta = ckpt.read_meta(path)
    for net in meta["nets"]:
        ckpt.build_net_from_meta(path, net)
    st = ckpt.load_state(path)
    assert st["step"] == meta["step"] >= 1
    return int(st["step"])


def test_sigkill_at_many_instants_leaves_a_loadable_checkpoint(tmp_path):
    ctx = _ctx()
    rng = random.Random(1234)
    tried: list[str] = []
    steps: list[int] = []
    name = "killed"
    run = tmp_path / name
    # 1) exact instants inside save_checkpoint, each on the first and on the third write of a process
    for phase in killer.PHASES:
        for nth in (1, 3):
            p = ctx.Process(target=killer.child, args=(str(tmp_path), name, phase, nth, 10_000))
            p.start()
            p.join(60)
            assert p.exitcode == -signal.SIGKILL, (phase, nth, p.exitcode)
            tried.append(f"{phase}#{nth}")
            if killer.has_checkpoint(run):
                steps.append(check_loadable(run))
    # 2) random instants from outside: training, logging, sampling, checkpoint writes, start-up
    for i in range(N_RANDOM):
        p = ctx.Process(target=killer.child, args=(str(tmp_path), name, None, 0, 10_000))
        p.start()
        time.sleep(rng.uniform(0.0, 1.2))
        p.kill()
        p.join(30)  # reaped: the stale lock's pid is really gone
        assert p.exitcode in (-signal.SIGKILL, 0), p.exitcode
        tried.append(f"random#{i}")
        if killer.has_checkpoint(run):
            steps.append(check_loadable(run))
    assert len(tried) == 2 * len(killer.PHASES) + N_RANDOM
    assert steps and max(steps) > 1, steps
    assert "latest.old" in RESOLVED  # the kill between the two renames left only latest.old, and it loaded
    # the run directory still resumes from the command line, past the last step reached
    last = check_loadable(run)
    toml = helpers.write_toml(tmp_path / "tiny.toml", helpers.tiny_data(
        tmp_path, name, checkpoint_every=1, max_steps=last + 2, epochs=1000, epochs_decay=0))
    r = run_cli("run", str(toml), "--resume", str(run), "--no-progress", env=ONE_THREAD, timeout=120)
    assert r.returncode == 0, r.stderr
    assert check_loadable(run) == last + 2
    assert not (run / LOCK_NAME).exists()
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]  # temp dirs cleaned
    print(f"kill points tried: {len(tried)}; checkpoint steps seen: {sorted(set(steps))}")
