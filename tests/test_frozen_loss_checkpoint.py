"""A loss's frozen network stays out of checkpoints and is rebuilt from its spec (issue #26 item 4)."""

import logging

import pytest
import torch
from torch import nn

from conftest import parts_plugin, tiny_recipe_data
from imtrans.engine import checkpoint as ckpt
from imtrans.engine.trainer import Trainer
from imtrans.errors import ImtransError
from imtrans.recipe import recipe_from_dict


class FrozenFeatures(nn.Module):
    """L1 between features of a fixed conv backbone (a tiny stand-in for a perceptual loss's timm backbone)."""

    default_weight = 1.0
    term_kind = "pixel"

    def __init__(self, width: int = 16, seed: int = 0):
        super().__init__()
        # built deterministically, as pretrained weights would be: the spec rebuilds it exactly
        g = torch.Generator().manual_seed(seed)
        self.backbone = nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                                      nn.Conv2d(width, width, 3, padding=1))
        with torch.no_grad():
            for p in self.backbone.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
        self.backbone.requires_grad_(False)
        self.scale = nn.Parameter(torch.ones(()))  # a trainable parameter of the loss: it is saved

    def forward(self, pred, target):
        return self.scale * (self.backbone(pred) - self.backbone(target)).abs().mean()


@pytest.fixture
def frozen_loss(fresh_plugins):
    plugin = parts_plugin("register_losses", {"frozen_features": FrozenFeatures})
    fresh_plugins.load_plugins(objects={"frozen_loss_plugin": plugin}, reload=True)


def _recipe(tmp_path, name, **train):
    data = tiny_recipe_data(tmp_path, name, **{"sample_every": 0, "save_every_epochs": 0, **train})
    data["losses"] = {"perc": {"name": "frozen_features", "weight": 0.5}}
    return recipe_from_dict(data)


def _losses(run_dir):
    import json

    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: r["losses"] for r in map(json.loads, lines) if r["kind"] == "train"}


def test_frozen_backbone_is_left_out_and_resume_is_exact(tmp_path, frozen_loss, monkeypatch, caplog):
    Trainer(_recipe(tmp_path, "full", max_steps=4), progress=False).fit()
    Trainer(_recipe(tmp_path, "split", max_steps=2), progress=False).fit()
    keys = ckpt.load_weights(tmp_path / "split").keys()
    assert "loss_perc.scale" in keys and "loss_perc.backbone.1.running_mean" in keys  # trainable and buffers kept
    assert not [k for k in keys if k.startswith("loss_perc.backbone.") and k.endswith((".weight", ".bias"))]
    info = ckpt.read_meta(tmp_path / "split")["nets"]["loss_perc"]
    assert info["frozen"]["tensors"] == 6 and len(info["frozen"]["sha256"]) == 64
    # a checkpoint from before the rule (the frozen tensors saved) is larger by them, and still resumes
    monkeypatch.setattr(ckpt, "frozen_keys", lambda net: set())
    Trainer(_recipe(tmp_path, "old", max_steps=2), progress=False).fit()
    monkeypatch.undo()
    old_keys = ckpt.load_weights(tmp_path / "old").keys()
    assert "loss_perc.backbone.0.weight" in old_keys and "frozen" not in ckpt.read_meta(tmp_path / "old")["nets"]["loss_perc"]
    frozen_bytes = 4 * (16 * 3 * 9 + 16 + 16 + 16 + 16 * 16 * 9 + 16)
    new_size, old_size = (ckpt.resolve_checkpoint(tmp_path / n) / ckpt.WEIGHTS for n in ("split", "old"))
    assert old_size.stat().st_size - new_size.stat().st_size >= frozen_bytes
    with caplog.at_level(logging.WARNING, logger="imtrans.train"):
        for name in ("split", "old"):
            Trainer(_recipe(tmp_path, name, max_steps=4), resume=True, progress=False).fit()
    assert "differ" not in caplog.text  # rebuilt exactly
    full = _losses(tmp_path / "full")
    for name in ("split", "old"):
        resumed = _losses(tmp_path / name)
        for step in (3, 4):  # the steps after the resume: the same losses as the uninterrupted run
            for k, v in full[step].items():
                assert resumed[step][k] == pytest.approx(v, rel=1e-5, abs=1e-7), (name, step, k)
    w_full, w_split = ckpt.load_weights(tmp_path / "full"), ckpt.load_weights(tmp_path / "split")
    assert w_full.keys() == w_split.keys()
    for k in w_full:
        assert torch.allclose(w_full[k], w_split[k], atol=1e-6, rtol=0), k


def test_translate_strict_loading_and_a_changed_frozen_part(tmp_path, frozen_loss, monkeypatch, caplog):
    from imtrans.translate import load_translator

    res = Trainer(_recipe(tmp_path, "run", max_steps=1), progress=False).fit()
    t = load_translator(res.run_dir, direction="a2b", device="cpu", backend="torch")
    assert t.translate_batch([torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)])[0].shape == (32, 32, 3)
    # everything but the frozen part is still loaded strictly
    loss = FrozenFeatures()
    loss.imtrans_part = _loss_record()
    weights = ckpt.load_weights(res.run_dir, "loss_perc")
    ckpt.load_into(loss, weights, "x", optional=ckpt.frozen_keys(loss))
    assert torch.equal(loss.scale, weights["scale"])
    del weights["scale"]
    with pytest.raises(ImtransError, match="scale"):
        ckpt.load_into(loss, weights, "x", optional=ckpt.frozen_keys(loss))
    # a frozen part rebuilt otherwise than the run was trained with is said on resume
    real_init = FrozenFeatures.__init__

    def other_weights(self, width=16, seed=0):
        real_init(self, width, seed + 1)  # e.g. the pretrained file changed since the run was made

    monkeypatch.setattr(FrozenFeatures, "__init__", other_weights)
    with caplog.at_level(logging.WARNING, logger="imtrans.train"):
        Trainer(_recipe(tmp_path, "run", max_steps=2), resume=True, progress=False).fit()
    assert "the frozen parameters of loss_perc, rebuilt from its spec, differ" in caplog.text


def _loss_record():
    from imtrans.registry import PartRecord

    return PartRecord("loss", "frozen_features", {"width": 16, "seed": 0})


def test_only_losses_leave_frozen_parameters_out():
    from imtrans.registry import PartRecord

    disc = nn.Conv2d(3, 1, 3)
    disc.imtrans_part = PartRecord("discriminator", "patchgan", {})
    disc.requires_grad_(False)  # as during the generator step
    assert ckpt.frozen_keys(disc) == set() and ckpt.saved_state(disc).keys() == disc.state_dict().keys()
    loss = FrozenFeatures()
    assert ckpt.frozen_keys(loss) == set()  # not built by the registry: nothing is known, all is saved
    loss.imtrans_part = _loss_record()
    assert ckpt.frozen_keys(loss) == {f"backbone.{i}.{p}" for i in (0, 1, 3) for p in ("weight", "bias")}
    loss.checkpoint_frozen = True  # a loss that wants its frozen part saved says so
    assert ckpt.frozen_keys(loss) == set()
