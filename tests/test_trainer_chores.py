"""The trainer's chores: sampling leaves no trace, resume with a changed schedule, finished runs,
stop requests, snapshot contents, progress output on terminals and in log files."""

import io
import json
import os
import signal

import torch
from rich.console import Console

from imtrans import registry
from imtrans.engine import checkpoint as ckpt
from imtrans.engine.trainer import Trainer
from imtrans.recipe import recipe_from_dict

from conftest import tiny_recipe_data


def recipe(tmp_path, name, model=None, **train):
    data = tiny_recipe_data(tmp_path, name, **{"sample_every": 0, "save_every_epochs": 0, **train})
    if model:
        data["model"]["generator"].update(model)
    return recipe_from_dict(data)


def records(run_dir, kind):
    recs = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in recs if r["kind"] == kind]


def test_sampling_changes_no_training_state():
    """Batch-norm running statistics and the RNG stream are the same before and after sampling."""
    r = recipe_from_dict(tiny_recipe_data("/nonexistent", "x"))
    r.model.generator = r.model.generator.model_copy(update={"norm": "batch", "dropout": True})
    scheme = registry.build_spec("scheme", r.scheme.as_dict(), r)
    scheme.train()
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    bn = [m for m in scheme.nets["G"].modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bn, "the test needs a batch-norm generator"
    before = {k: v.clone() for k, v in scheme.state_dict().items()}
    rng = torch.get_rng_state()
    scheme.samples(a, b)
    assert torch.equal(torch.get_rng_state(), rng)
    for k, v in scheme.state_dict().items():
        assert torch.equal(v, before[k]), k
    scheme.sample_rows(a, b)  # the raw method does move them: the guard is what keeps them
    assert int(bn[0].num_batches_tracked) > int(before[[k for k in before if k.endswith("num_batches_tracked")][0]])


def test_resume_with_longer_schedule_recomputes_the_lr_at_once(tmp_path):
    # 1 + 2 epochs of 3 steps: the linear rule ends at lr 2e-4 * (1 - 2/3) after epoch 3
    Trainer(recipe(tmp_path, "run"), progress=False).fit()
    last = records(tmp_path / "run", "train")[-1]
    assert last["step"] == 9
    out = io.StringIO()
    res = Trainer(recipe(tmp_path, "run", epochs=4), resume=True, progress=False,
                  console=Console(file=out, width=200)).fit()
    assert res.steps == 18  # 4 + 2 epochs of 3 steps
    resumed = [r for r in records(tmp_path / "run", "train") if r["step"] > 9]
    # official linear rule at epoch e (0-based): 1 - max(0, e + 1 - epochs) / (epochs_decay + 1)
    expect = {e: 2e-4 * (1 - max(0, e + 1 - 4) / 3) for e in range(6)}
    for r in resumed:
        assert abs(r["lr"] - expect[r["epoch"]]) < 1e-12, r
    assert resumed[0]["lr"] == expect[3] > 0
    assert "train.epochs 1 → 4" in out.getvalue()


def test_resuming_a_finished_run_trains_nothing_and_adds_no_evaluation(tmp_path):
    Trainer(recipe(tmp_path, "done", max_steps=3), progress=False).fit()
    evals = records(tmp_path / "done", "eval")
    out = io.StringIO()
    res = Trainer(recipe(tmp_path, "done", max_steps=3), resume=True, progress=False,
                  console=Console(file=out, width=200)).fit()
    assert res.steps == 3 and res.eval_after == {}
    assert records(tmp_path / "done", "eval") == evals
    assert "already finished at step 3" in out.getvalue()


def test_stop_request_saves_and_skips_the_final_evaluation(tmp_path):
    def interrupt(rec):
        if rec["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)

    res = Trainer(recipe(tmp_path, "stop", max_steps=6), progress=False, on_log=interrupt).fit()
    assert res.stopped == "stopped by SIGINT" and res.steps == 2 and res.eval_after == {}
    assert ckpt.load_state(tmp_path / "stop")["step"] == 2
    assert [r for r in records(tmp_path / "stop", "eval") if r.get("final")] == []


def test_snapshots_hold_weights_only_unless_asked(tmp_path):
    Trainer(recipe(tmp_path, "lean", save_every_epochs=1, max_steps=3), progress=False).fit()
    snap = tmp_path / "lean" / "checkpoints" / "epoch_0001"
    assert (snap / ckpt.WEIGHTS).is_file() and not (snap / ckpt.STATE).exists()
    assert (tmp_path / "lean" / "checkpoints" / "latest" / ckpt.STATE).is_file()
    Trainer(recipe(tmp_path, "full", save_every_epochs=1, max_steps=3, snapshot_state=True), progress=False).fit()
    assert (tmp_path / "full" / "checkpoints" / "epoch_0001" / ckpt.STATE).is_file()


def test_log_file_gets_plain_lines_with_step_speed_and_eta(tmp_path):
    out = io.StringIO()  # not a terminal: what nohup or SLURM would capture
    Trainer(recipe(tmp_path, "plain", max_steps=4, log_every=2), progress=True,
            console=Console(file=out, width=80)).fit()
    lines = [line for line in out.getvalue().splitlines() if line.startswith("step ")]
    assert [line.split()[1] for line in lines] == ["2/4", "4/4"]
    for line in lines:
        assert " it/s " in line and " ETA " in line and " lr " in line and "cycle_a=" in line


def test_terminal_bar_keeps_count_speed_and_eta_at_80_columns(tmp_path):
    out = io.StringIO()
    Trainer(recipe(tmp_path, "bar", max_steps=4, log_every=1), progress=True,
            console=Console(file=out, width=80, force_terminal=True)).fit()
    final = out.getvalue().split("\r")[-1]
    first = [line for line in final.splitlines() if "epoch" in line][-1]
    assert "4/4" in first and "it/s" in first and "ETA" in first
    assert "G_gan_b=" in final  # the losses have a line of their own


def test_missing_held_out_split_is_said_once(tmp_path):
    from PIL import Image

    for side in ("A", "B"):
        (tmp_path / "set" / f"train{side}").mkdir(parents=True)
        for i in range(3):
            Image.new("RGB", (40, 40), (40 * i, 90, 200)).save(tmp_path / "set" / f"train{side}" / f"{i}.png")
    data = tiny_recipe_data(tmp_path, "noheld", max_steps=1, sample_every=0, save_every_epochs=0)
    del data["data"]["a"], data["data"]["b"]
    data["data"]["root"] = str(tmp_path / "set")
    out = io.StringIO()
    Trainer(recipe_from_dict(data), progress=False, console=Console(file=out, width=300)).fit()
    notes = [r["text"] for r in records(tmp_path / "noheld", "note")]
    assert len([n for n in notes if "no held-out split" in n]) == 1
    assert out.getvalue().count("no held-out split") == 1
    Trainer(recipe(tmp_path, "held", max_steps=1), progress=False, console=Console(file=io.StringIO())).fit()
    held = [r["text"] for r in records(tmp_path / "held", "note")]
    assert not [n for n in held if "held-out" in n]  # synthetic domains have a test split


def test_last_step_is_evaluated_once(tmp_path):
    Trainer(recipe(tmp_path, "once", max_steps=4, eval_every=2), progress=False).fit()
    steps = [(r["step"], bool(r.get("final"))) for r in records(tmp_path / "once", "eval")]
    assert steps == [(0, False), (2, False), (4, True)]


def test_sample_grids_carry_the_schemes_column_labels(tmp_path):
    from PIL import Image

    Trainer(recipe(tmp_path, "grid", max_steps=2, sample_every=2), progress=False).fit()
    png = Image.open(tmp_path / "grid" / "samples" / "step_0000002.png")
    text = " ".join(str(v) for v in png.info.values())
    assert "F(G(A)): reconstructed" in text


def test_a_resumed_run_keeps_the_best_checkpoint_unless_it_does_better(tmp_path):
    """``checkpoints/best`` survives a resume: its score comes back, and only a lower one replaces it."""
    from imtrans.engine.checkpointing import CheckpointManager, Position
    from imtrans.engine.distributed import DistInfo

    r = recipe(tmp_path, "best", max_steps=2)
    Trainer(r, progress=False).fit()
    scheme = registry.build_spec("scheme", r.scheme.as_dict(), r)
    scheme.setup({"a": torch.zeros(2, 3, 32, 32), "b": torch.zeros(2, 3, 32, 32)})
    first = CheckpointManager(tmp_path / "best", r, DistInfo())
    assert first.consider_best(scheme, Position(2, 0, 2), 5.0)
    again = CheckpointManager(tmp_path / "best", r, DistInfo())
    again.resume(scheme)
    assert again.best_score == 5.0
    assert not again.consider_best(scheme, Position(3, 0, 3), 6.0)  # worse: the step-2 best is kept
    assert ckpt.read_meta(tmp_path / "best" / "checkpoints" / "best")["step"] == 2
    assert again.consider_best(scheme, Position(4, 0, 4), 4.0)
