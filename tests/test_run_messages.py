"""What a person watching a training run sees: where it runs, its progress on a busy machine, each evaluation."""

from __future__ import annotations

import io

import tomli_w
from rich.console import Console

from imtrans.engine import runlog
from imtrans.engine.runlog import RunLogger, bar_speed

from conftest import run_cli, tiny_recipe_data


def test_bar_speed_counts_every_step_done_since_the_start():
    assert bar_speed(0, 5.0, 10) == ("- it/s", "-:--:--")
    assert bar_speed(3, 1.5, 10) == ("2.00 it/s", "0:00:05")
    # a step a minute (a busy machine): still a speed and an ETA, in seconds per step
    assert bar_speed(2, 120.0, 99) == ("60.0 s/it", "1:39:00")


def test_progress_bar_shows_eta_when_steps_are_slower_than_rich_averages(tmp_path, monkeypatch):
    now = [0.0]
    monkeypatch.setattr(runlog.time, "perf_counter", lambda: now[0])
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    log = RunLogger(tmp_path, console, total=100, start_step=0, n_epochs=1)
    for step in (1, 2, 3):
        now[0] += 60.0  # a step a minute
        log.train(step, 0, 2e-4, {"G_gan_b": 1.0}, images=1)
    log.close()
    text = out.getvalue()
    assert "60.0 s/it" in text and "ETA 1:37:00" in text, text[-600:]


def test_run_says_where_it_runs_and_prints_each_evaluation(tmp_path):
    p = tmp_path / "r.toml"
    p.write_text(tomli_w.dumps(tiny_recipe_data(tmp_path, "msg", max_steps=3, eval_every=3, sample_every=0)))
    r = run_cli("run", str(p), "--no-progress")
    assert r.returncode == 0, r.stderr[-2000:]
    err = " ".join(r.stderr.split())  # rich may fold long lines
    assert "training cyclegan on cpu" in err and "at fp32 (PyTorch): 3 steps" in err, err[-1500:]
    assert "evaluation at step 3" in err
