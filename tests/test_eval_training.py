"""FID/KID during training: metrics.jsonl, index.html, checkpoints/best, TensorBoard, skipped without weights."""

import json

import pytest
import torch
import torch.nn.functional as F

from conftest import parts_plugin, tiny_recipe_data
from imtrans import registry
from imtrans.engine.checkpoint import read_meta
from imtrans.engine.trainer import Trainer
from imtrans.eval import FeatureExtractor
from imtrans.recipe import recipe_from_dict


class ColourStats(FeatureExtractor):
    """Per-channel mean and spread of a 16 px thumbnail (a tiny plug-in extractor for tests)."""

    dim = 6

    def __init__(self) -> None:
        super().__init__("none", "bilinear-16")

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        return F.interpolate(image.float()[None] / 255, size=(16, 16), mode="bilinear", align_corners=False)[0]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1)


@pytest.fixture
def colour_stats(fresh_plugins):
    """The extractor added the way a plugin adds one (through its hook); the plugins are reloaded after."""
    plugin = parts_plugin("register_feature_extractors", {"colour_stats": ColourStats})
    fresh_plugins.load_plugins(objects={"test_eval_plugin": plugin}, reload=True)
    yield


@pytest.fixture(autouse=True)
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("IMTRANS_HOME", str(tmp_path / "home"))


def _recipe(tmp_path, name, **train):
    data = tiny_recipe_data(tmp_path, name, **{"sample_every": 0, "save_every_epochs": 0, **train})
    for side, count in (("test_a", 5), ("test_b", 4)):
        data["data"][side] = {"name": "synthetic", "task": "stripes", "side": side[-1], "count": count, "size": 40}
    return recipe_from_dict(data)


def _evals(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == "eval"]


@pytest.mark.slow
def test_fid_and_kid_are_logged_plotted_and_pick_the_best_checkpoint(tmp_path, colour_stats):
    res = Trainer(_recipe(tmp_path, "fid", eval_features={"name": "colour_stats"}), progress=False).fit()
    evals = _evals(res.run_dir)
    assert len(evals) >= 3  # before training, at epoch ends, final
    for r in evals:
        for k in ("fid_a2b", "fid_b2a", "kid_a2b", "kid_std_b2a", "gt_l1_a2b"):
            assert k in r["metrics"], k
        assert r["metrics"]["fid_a2b"] > 0
    best = read_meta(res.run_dir / "checkpoints" / "best")
    assert best["best_score"] == pytest.approx(min(r["metrics"]["fid_a2b"] for r in evals))
    page = (res.run_dir / "index.html").read_text()
    assert "fid_a2b" in page and "FID a2b (lower is better)" in page  # the FID panel beside the losses


@pytest.mark.slow
def test_without_weights_fid_is_skipped_with_one_note(tmp_path):
    import io

    from rich.console import Console

    buf = io.StringIO()
    res = Trainer(_recipe(tmp_path, "nofid"), progress=False, console=Console(file=buf, width=200)).fit()
    text = buf.getvalue()
    assert text.count("FID/KID skipped") == 1 and "put it at" in text
    evals = _evals(res.run_dir)
    assert evals and all("gt_l1_a2b" in r["metrics"] and "fid_a2b" not in r["metrics"] for r in evals)
    assert not (res.run_dir / "checkpoints" / "best").exists()


@pytest.mark.slow
def test_tensorboard_gets_the_fid_curve(tmp_path, colour_stats):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    r = _recipe(tmp_path, "tb", eval_features={"name": "colour_stats"}, max_steps=3)
    r.output.tensorboard = True
    res = Trainer(r, progress=False).fit()
    acc = EventAccumulator(str(res.run_dir / "tensorboard"))
    acc.Reload()
    assert "eval/fid_a2b" in acc.Tags()["scalars"]


def test_recipe_checks_the_feature_extractor_spec(tmp_path):
    from imtrans.errors import RecipeError

    data = tiny_recipe_data(tmp_path, "x", eval_features={"name": "inception_v3_fid", "resize": "bicubic"})
    with pytest.raises(RecipeError, match="resize"):
        recipe_from_dict(data)


def test_paired_runs_get_fid_of_g_against_the_real_targets(tmp_path, colour_stats):
    """pix2pix: next to L1/PSNR/SSIM, FID/KID of G(held-out inputs) against the held-out targets as a set,
    and `best` follows fid_a2b.  The oracle: the first evaluation's FID equals the FID computed by hand
    from the same extractor over the same images."""
    from imtrans.eval import fid_kid_for_run
    from imtrans.translate import Translator

    r = recipe_from_dict({
        "scheme": {"name": "pix2pix"},
        "data": {"a": {"name": "synthetic_paired", "count": 6, "size": 32}, "workers": 0, "batch_size": 2,
                 "augment": {"name": "none", "flip": False}},
        "model": {"generator": {"name": "unet", "ngf": 4, "num_downs": 5},
                  "discriminator": {"name": "patchgan", "in_channels": 6, "ndf": 4, "n_layers": 1}},
        "train": {"precision": "fp32", "epochs": 1, "epochs_decay": 1, "eval_images": 4, "sample_every": 0,
                  "save_every_epochs": 0, "eval_features": {"name": "colour_stats"}},
        "output": {"root": str(tmp_path), "name": "p2p"},
    })
    res = Trainer(r, progress=False).fit()
    evals = _evals(res.run_dir)
    for e in evals:
        assert {"gt_l1_a2b", "psnr_a2b", "fid_a2b", "kid_a2b"} <= set(e["metrics"]), e["metrics"]
        assert "fid_b2a" not in e["metrics"]  # a paired run translates one way
    best = read_meta(res.run_dir / "checkpoints" / "best")
    assert best["best_score"] == pytest.approx(min(e["metrics"]["fid_a2b"] for e in evals))
    # by hand, from the final weights translated as `imtrans translate` does by default (the pix2pix
    # test protocol, recorded in the checkpoint): the same number as the final evaluation
    from imtrans.data.paired import PairSide

    t = Translator.from_checkpoint(res.run_dir / "checkpoints" / "latest", "a2b", device="cpu", precision="fp32")
    assert t.norm_mode == "train"
    test = registry.build("domain", "synthetic_paired", "test", count=6, size=32)
    ref = fid_kid_for_run(t.translate_batch, PairSide(test, "a", "AtoB"),
                          PairSide(test, "b", "AtoB"), registry.build("feature_extractor", "colour_stats"))
    assert evals[-1]["metrics"]["fid_a2b"] == pytest.approx(ref["fid"], rel=1e-4)
