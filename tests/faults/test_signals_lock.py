"""SIGTERM/SIGINT write a checkpoint and exit cleanly; a run directory in use is refused; stale locks are taken over."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

import helpers
from helpers import ONE_THREAD, one_torch_thread  # noqa: F401  (autouse fixture)
import killer
from imtrans.engine import checkpoint as ckpt
from imtrans.engine.lock import LOCK_NAME, RunLock
from imtrans.engine.trainer import Trainer
from imtrans.errors import ImtransError
from imtrans.recipe import recipe_from_dict

from conftest import ROOT, run_cli


def wait_for_train_line(run: Path, proc_alive, timeout: float = 90) -> None:
    """Until metrics.jsonl has a `train` record (the signal handlers are installed by then)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        m = run / "metrics.jsonl"
        if m.exists() and any('"kind": "train"' in l for l in m.read_text().splitlines()):
            return
        assert proc_alive(), "the training process ended early"
        time.sleep(0.05)
    raise AssertionError("no training step logged in time")


def test_sigterm_checkpoints_exits_0_second_run_refused_then_resume(tmp_path):
    name = "term"
    run = tmp_path / name
    long = helpers.tiny_data(tmp_path, name, max_steps=100_000, epochs=1000, epochs_decay=0, checkpoint_every=2)
    toml = helpers.write_toml(tmp_path / "tiny.toml", long)
    env = dict(os.environ, COLUMNS="200", **ONE_THREAD)
    a = subprocess.Popen([sys.executable, "-m", "imtrans", "run", str(toml), "--no-progress"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_train_line(run, lambda: a.poll() is None)
        while not killer.has_checkpoint(run):  # so that the second run gets past "no checkpoint" to the lock
            assert a.poll() is None
            time.sleep(0.05)
        # a second process on the same run directory is refused, naming the owner's pid
        b = run_cli("run", str(toml), "--resume", str(run), "--no-progress", env=ONE_THREAD, timeout=120)
        assert b.returncode == 1 and "Traceback" not in b.stderr
        assert f"pid {a.pid}" in b.stderr and "in use" in b.stderr, b.stderr
        assert a.poll() is None  # the first one is untouched
        a.send_signal(signal.SIGTERM)
        out, err = a.communicate(timeout=60)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
    assert a.returncode == 0, err
    assert "stopped by SIGTERM" in out and "Traceback" not in err
    st = ckpt.load_state(run)
    assert st["step"] > 0
    assert not (run / LOCK_NAME).exists()
    last = max(json.loads(l)["step"] for l in (run / "metrics.jsonl").read_text().splitlines() if '"train"' in l)
    assert st["step"] == last  # the checkpoint holds the last step that ran
    # --resume continues from there
    short = helpers.tiny_data(tmp_path, name, max_steps=st["step"] + 2, epochs=1000, epochs_decay=0)
    helpers.write_toml(toml, short)
    r = run_cli("run", str(toml), "--resume", str(run), "--no-progress", env=ONE_THREAD, timeout=120)
    assert r.returncode == 0, r.stderr
    assert ckpt.load_state(run)["step"] == st["step"] + 2


def test_sigint_checkpoints_and_returns(tmp_path):
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["killer"])
    run = tmp_path / "int"
    p = ctx.Process(target=killer.child, args=(str(tmp_path), "int", None, 0, 100_000))
    p.start()
    try:
        wait_for_train_line(run, p.is_alive)
        os.kill(p.pid, signal.SIGINT)
        p.join(60)
    finally:
        if p.is_alive():
            p.kill()
            p.join()
    assert p.exitcode == 0
    assert ckpt.load_state(run)["step"] > 0
    assert not (run / LOCK_NAME).exists()


def test_stale_lock_is_taken_over_live_one_refused(tmp_path):
    data = helpers.tiny_data(tmp_path, "stale", max_steps=1)
    run = tmp_path / "stale"
    run.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (run / LOCK_NAME).write_text(f"{dead.pid} {socket.gethostname()}\n")
    res = Trainer(recipe_from_dict(data), progress=False).fit()
    assert res.steps == 1 and not (run / LOCK_NAME).exists()
    # a half-written (empty) lock file is stale too
    (run / LOCK_NAME).write_text("")
    with RunLock(run):
        assert (run / LOCK_NAME).read_text().split()[0] == str(os.getpid())
    # a live process and a lock from another host are refused
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        (run / LOCK_NAME).write_text(f"{live.pid} {socket.gethostname()}\n")
        with pytest.raises(ImtransError, match=f"pid {live.pid}"):
            RunLock(run).acquire()
    finally:
        live.kill()
        live.wait()
    (run / LOCK_NAME).write_text("1 some-other-host\n")
    with pytest.raises(ImtransError, match="on host some-other-host"):
        RunLock(run).acquire()


def test_ctrl_c_to_the_process_group_with_dataloader_workers(tmp_path):
    """Ctrl-C in a terminal signals the whole process group, DataLoader workers included."""
    name = "pg"
    run = tmp_path / name
    d = helpers.tiny_data(tmp_path, name, max_steps=100_000, epochs=1000, epochs_decay=0, checkpoint_every=2)
    d["data"]["workers"] = 2
    toml = helpers.write_toml(tmp_path / "pg.toml", d)
    env = dict(os.environ, COLUMNS="200", **ONE_THREAD)
    p = subprocess.Popen([sys.executable, "-m", "imtrans", "run", str(toml), "--no-progress"], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_for_train_line(run, lambda: p.poll() is None)
        os.killpg(p.pid, signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 0, err
    assert "stopped by SIGINT" in out and "Traceback" not in err
    assert ckpt.load_state(run)["step"] > 0
