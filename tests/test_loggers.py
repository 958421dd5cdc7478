"""Metric loggers are parts: TensorBoard built in (read back from its event file), plugins through
``register_loggers``, and a logger that fails is said once and never stops training."""

from __future__ import annotations

import json
import types
import warnings

import pytest

from imtrans import hookimpl, registry
from imtrans.engine.loggers import LoggerWarning
from imtrans.engine.trainer import Trainer
from imtrans.errors import RecipeError
from imtrans.recipe import recipe_from_dict

from conftest import tiny_recipe_data


def recipe(tmp_path, name, loggers=None, **output):
    d = tiny_recipe_data(tmp_path, name, max_steps=4, sample_every=0, save_every_epochs=0, eval_fid=False)
    d["output"].update(output)
    if loggers is not None:
        d["output"]["loggers"] = loggers
    return recipe_from_dict(d)


def records(run, kind):
    return [r for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines()) if r["kind"] == kind]


def test_tensorboard_logger_writes_what_metrics_jsonl_has(tmp_path):
    pytest.importorskip("tensorboard")  # in the dev extra; a plain install may lack it
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = Trainer(recipe(tmp_path, "tb", loggers={"tensorboard": {}}), progress=False).fit()
    acc = EventAccumulator(str(res.run_dir / "tensorboard"))
    acc.Reload()
    train = records(res.run_dir, "train")
    for key in train[0]["losses"]:
        events = acc.Scalars(f"loss/{key}")
        assert [e.step for e in events] == [r["step"] for r in train]
        assert [e.value for e in events] == pytest.approx([r["losses"][key] for r in train], rel=1e-6)
    assert [e.value for e in acc.Scalars("lr")] == pytest.approx([r["lr"] for r in train])
    evals = records(res.run_dir, "eval")
    assert [e.step for e in acc.Scalars("eval/gt_l1_a2b")] == [r["step"] for r in evals] == [0, 3, 4]
    # the old switch is the same logger
    res2 = Trainer(recipe(tmp_path, "tb2", tensorboard=True), progress=False).fit()
    assert list((res2.run_dir / "tensorboard").glob("events.out.tfevents.*"))


class Flaky:
    """A logger whose server goes away at step 2 (and whose close fails too)."""

    seen: list = []

    def __init__(self, run_dir, fail_at: int = 2):
        self.fail_at = fail_at

    def log_train(self, step, epoch, lr, losses):
        if step >= self.fail_at:
            raise OSError(28, "No space left on device")
        Flaky.seen.append(step)

    def log_eval(self, step, epoch, metrics):
        pass

    def close(self):
        raise ConnectionError("server down")


@hookimpl
def _register_loggers(register):
    register("flaky", Flaky)


def test_a_failing_logger_warns_once_and_training_goes_on(tmp_path, fresh_plugins):
    plugin = types.SimpleNamespace(register_loggers=_register_loggers)
    fresh_plugins.load_plugins(objects={"flaky_plugin": plugin}, reload=True)
    assert "flaky" in registry.names("logger") and "tensorboard" in registry.names("logger")
    Flaky.seen = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = Trainer(recipe(tmp_path, "flaky", loggers={"remote": {"name": "flaky"}}), progress=False).fit()
    assert res.steps == 4 and res.stopped == "finished"
    said = [w for w in caught if issubclass(w.category, LoggerWarning)]
    assert len(said) == 1 and "logger 'remote' failed in log_train (OSError" in str(said[0].message)
    assert Flaky.seen == [1]  # switched off after its failure: not called again, not even close()
    assert [r["step"] for r in records(res.run_dir, "train")] == [1, 2, 3, 4]  # every number is still kept
    assert any("logger 'remote' failed" in r["text"] for r in records(res.run_dir, "note"))


def test_loggers_are_checked_with_the_recipe_and_listed(tmp_path):
    with pytest.raises(RecipeError, match=r"output\.loggers\.tb.*unknown logger 'tensorbord'.*did you mean"):
        recipe(tmp_path, "bad", loggers={"tb": {"name": "tensorbord"}})
    with pytest.raises(RecipeError, match=r"output\.loggers\.tensorboard"):
        recipe(tmp_path, "bad", loggers={"tensorboard": {"flush_secs": 3}})
    assert [e.name for e in registry.describe("logger")] == ["tensorboard"]
