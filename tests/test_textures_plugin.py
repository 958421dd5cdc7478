"""The imtrans-textures plugin: the ``textures`` domain and its use in a recipe."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from conftest import ROOT

TEX_SRC = ROOT / "plugins" / "imtrans-textures"


@pytest.fixture(scope="module")
def textures_plugin():
    """The textures plugin registered: installed (CI) or, failing that, loaded from the source tree."""
    from imtrans import plugins, registry

    added = False
    if "textures" not in registry.names("domain"):
        if str(TEX_SRC) not in sys.path:
            sys.path.insert(0, str(TEX_SRC))
            added = True
        import imtrans_textures.plugin

        plugins.load_plugins(objects={"textures": imtrans_textures.plugin}, reload=True)
    yield
    plugins.load_plugins(reload=True)
    if added:
        sys.path.remove(str(TEX_SRC))


def test_domain_contract_and_reproducibility(textures_plugin):
    from imtrans import registry

    dom = registry.build("domain", "textures", "train", count=6, size=24, seed=3)
    assert len(dom) == 6
    imgs = [dom.load(i) for i in range(6)]
    assert all(im.mode == "RGB" and im.size == (24, 24) for im in imgs)
    assert [dom.name(i) for i in range(3)] == ["train/checker_00000.png", "train/waves_00001.png", "train/noise_00002.png"]
    again = registry.build("domain", "textures", "train", count=6, size=24, seed=3)
    assert all(np.array_equal(np.asarray(a), np.asarray(again.load(i))) for i, a in enumerate(imgs))
    test = registry.build("domain", "textures", "test", count=6, size=24, seed=3)
    other_seed = registry.build("domain", "textures", "train", count=6, size=24, seed=4)
    for d in (test, other_seed):
        assert not np.array_equal(np.asarray(d.load(1)), np.asarray(imgs[1]))
    for i in range(6):  # every image shows a pattern, not a flat colour
        assert np.asarray(imgs[i]).astype(float).std() > 5
    waves = registry.build("domain", "textures", "train", pattern="waves", count=2)
    assert waves.name(1) == "train/waves_00001.png" and not hasattr(waves, "target")


def test_domain_errors(textures_plugin):
    from imtrans import registry
    from imtrans.errors import ImtransError
    from imtrans.registry import PartParamsError

    with pytest.raises(ImtransError, match="split"):
        registry.build("domain", "textures", "val")
    with pytest.raises(ImtransError, match="count"):
        registry.build("domain", "textures", "train", count=0)
    with pytest.raises(PartParamsError, match="pattern"):
        registry.build("domain", "textures", "train", pattern="stripes")
    with pytest.raises(IndexError):
        registry.build("domain", "textures", "train", count=2).load(2)


def test_textures_as_domain_b_in_a_recipe(tmp_path, textures_plugin):
    from imtrans.engine.trainer import Trainer
    from imtrans.recipe import load_recipe

    r = load_recipe(ROOT / "recipes" / "quickstart.toml", [
        "data.a.count=4", "data.a.size=32",
        'data.b={name="textures", pattern="waves", count=4, size=32}',
        'model.generator={name="resnet", ngf=8, n_blocks=2}',
        "model.discriminator.ndf=8",
        "data.workers=0", "train.max_steps=2", "train.sample_every=0", "train.eval_images=2",
        f"output.root={json.dumps(str(tmp_path))}",
    ])
    res = Trainer(r, progress=False, handle_signals=False).fit()
    assert res.steps == 2
    # test_b is a textures domain: no ground truth, so only a2b is evaluated
    assert set(res.eval_after) == {"gt_l1_a2b", "copy_l1_a2b"}
