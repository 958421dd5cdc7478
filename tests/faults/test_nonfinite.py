"""A NaN/Inf loss stops the run naming step and term and keeps the last good checkpoint;
``--skip-nonfinite N`` skips up to N bad batches with finite weights."""

from __future__ import annotations

import json

import pytest
import torch

import helpers
from helpers import ONE_THREAD, one_torch_thread  # noqa: F401  (autouse fixture)
from imtrans.engine import checkpoint as ckpt
from imtrans.engine.trainer import NonFiniteLossError, Trainer
from imtrans.recipe import recipe_from_dict


@pytest.fixture
def nan_plugin(fresh_plugins):
    fresh_plugins.load_plugins(objects={"faults": helpers}, reload=True)
    yield fresh_plugins


def nan_recipe(tmp_path, name, steps="3", value="nan", **train):
    data = helpers.tiny_data(tmp_path, name, **train)
    data["losses"] = {"poison": {"name": "nan_at_step", "steps": steps, "value": value}}
    return recipe_from_dict(data)


def all_finite(path) -> bool:
    return all(torch.isfinite(v).all() for v in ckpt.load_weights(path).values() if v.is_floating_point())


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_nonfinite_loss_stops_and_keeps_last_good_checkpoint(tmp_path, nan_plugin, value):
    r = nan_recipe(tmp_path, "nan", steps="3", value=value, checkpoint_every=1, max_steps=6)
    with pytest.raises(NonFiniteLossError) as ei:
        Trainer(r, progress=False).fit()
    msg = str(ei.value)
    assert "'poison'" in msg and "at step 3" in msg and "(step 2) is kept" in msg, msg
    assert "\n" not in msg
    run = tmp_path / "nan"
    path = ckpt.resolve_checkpoint(run)
    assert ckpt.load_state(path)["step"] == 2  # the pre-NaN checkpoint, not the poisoned step 3
    assert all_finite(path)
    # it loads into a fresh run and training continues from step 2 (the poison is gone: steps="")
    r2 = nan_recipe(tmp_path, "nan", steps="", checkpoint_every=1, max_steps=4)
    res = Trainer(r2, resume=True, progress=False).fit()
    assert res.steps == 4 and all_finite(run)


def test_nan_between_checkpoints_is_caught_before_the_next_save(tmp_path, nan_plugin):
    # log_every=5 and checkpoint_every=2: the NaN at step 3 is only read back at step 4, before saving it
    r = nan_recipe(tmp_path, "late", steps="3", checkpoint_every=2, log_every=5, max_steps=8)
    with pytest.raises(NonFiniteLossError, match="at step 3"):
        Trainer(r, progress=False).fit()
    assert ckpt.load_state(tmp_path / "late")["step"] == 2
    assert all_finite(tmp_path / "late")


def test_skip_nonfinite_skips_bad_batches_and_finishes(tmp_path, nan_plugin):
    r = nan_recipe(tmp_path, "skip", steps="2,4", checkpoint_every=1, max_steps=6)
    res = Trainer(r, progress=False, skip_nonfinite=2).fit()
    assert res.steps == 6 and res.stopped == "finished"
    run = tmp_path / "skip"
    assert all_finite(run)
    recs = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    skipped = [x for x in recs if x["kind"] == "skipped"]
    assert [x["step"] for x in skipped] == [2, 4] and all("poison" in x["losses"] for x in skipped)
    train = [x for x in recs if x["kind"] == "train"]
    assert all(all(v == v and abs(v) != float("inf") for v in x["losses"].values()) for x in train)


def test_skip_nonfinite_budget_exhausted_stops(tmp_path, nan_plugin):
    r = nan_recipe(tmp_path, "budget", steps="2,3", checkpoint_every=1, max_steps=6)
    with pytest.raises(NonFiniteLossError, match=r"'poison' became non-finite at step 3 after 1 skipped"):
        Trainer(r, progress=False, skip_nonfinite=1).fit()
    assert all_finite(tmp_path / "budget")
    assert ckpt.load_state(tmp_path / "budget")["step"] == 1
