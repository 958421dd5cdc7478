"""The imtrans-cut plugin: PatchNCE against the official definition, the cut scheme, recipes.

Everything runs at 32 px with tiny networks (ngf 8, 2 residual blocks).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from conftest import ROOT, run_cli

CUT_SRC = ROOT / "plugins" / "imtrans-cut"
CUT_RECIPES = CUT_SRC / "imtrans_cut" / "recipes"  # shipped with the plugin (imtrans_cut:NAME)

TINY = [
    "model.generator.ngf=8",
    "model.generator.n_blocks=2",
    "model.discriminator.ndf=8",
    "model.discriminator.n_layers=2",
    'data.augment={name="none"}',
    "data.workers=0",
    "data.batch_size=1",  # the quickstart's batches of 4 would make the 4-image epoch one step
    "train.epochs=1",
    "train.epochs_decay=0",
    "train.max_steps=2",
    "train.sample_every=0",
    "train.save_every_epochs=0",
    "train.eval_images=2",
]


@pytest.fixture(scope="module")
def cut_plugin():
    """The cut plugin registered: installed (CI) or, failing that, loaded from the source tree."""
    from imtrans import plugins, registry

    added = False
    if "patchnce" not in registry.names("loss"):
        if str(CUT_SRC) not in sys.path:
            sys.path.insert(0, str(CUT_SRC))
            added = True
        import imtrans_cut.plugin

        plugins.load_plugins(objects={"cut": imtrans_cut.plugin}, reload=True)
    yield
    plugins.load_plugins(reload=True)
    if added:
        sys.path.remove(str(CUT_SRC))


def tiny_generator(**kw):
    from imtrans import registry

    return registry.build("generator", "resnet", ngf=8, n_blocks=2, **kw)


def images(n: int, seed: int) -> torch.Tensor:
    from imtrans.data.synthetic import SyntheticDomain
    from imtrans.data.imageio import pil_to_uint8_tensor

    dom = SyntheticDomain("train", side="a", count=n + seed, size=32)
    x = torch.stack([pil_to_uint8_tensor(dom.load(seed + i)) for i in range(n)]).float()
    return x / 127.5 - 1.0


# -- installation ---------------------------------------------------------------------

def test_plugins_are_listed_by_the_cli():
    proc = run_cli("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    infos = {i["name"]: i for i in json.loads(proc.stdout)}
    for name in ("cut", "textures"):
        assert name in infos, f"plugin '{name}' missing: pip install -e plugins/imtrans-{name}"
        assert infos[name]["error"] is None
        assert infos[name]["source"] == "entry point"
    assert infos["cut"]["parts"] == {"loss": ["patchnce"], "scheme": ["cut"]}
    assert infos["cut"]["distribution"] == "imtrans-cut"
    assert infos["textures"]["parts"] == {"domain": ["textures"]}


# -- PatchNCE ---------------------------------------------------------------------------

def reference_patchnce(q: torch.Tensor, k: torch.Tensor, batch: int, T: float) -> torch.Tensor:
    """The official PatchNCELoss written out plainly, one query at a time."""
    q = q.view(batch, -1, q.shape[1])
    k = k.view(batch, -1, k.shape[1])
    losses = []
    for b in range(batch):
        for j in range(q.shape[1]):
            logits = [q[b, j] @ k[b, j]]
            logits += [q[b, j] @ k[b, m] if m != j else torch.tensor(-10.0) for m in range(q.shape[1])]
            logits = torch.stack(logits) / T
            losses.append(-torch.log_softmax(logits, 0)[0])
    return torch.stack(losses).mean()


def test_nce_matches_the_official_definition(cut_plugin):
    from imtrans import registry

    loss = registry.build("loss", "patchnce", temperature=0.07)
    g = torch.Generator().manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(2 * 5, 4, generator=g), dim=1)
    k = torch.nn.functional.normalize(torch.randn(2 * 5, 4, generator=g), dim=1)
    assert torch.allclose(loss.nce(q, k, 2), reference_patchnce(q, k, 2, 0.07), atol=1e-5)


def test_patchnce_lower_for_matching_than_for_other_images(cut_plugin):
    from imtrans import registry

    G = tiny_generator()
    loss = registry.build("loss", "patchnce", num_patches=32, layers=[0, 4, 8, 10])
    src, other = images(2, 0), images(2, 5)
    with torch.no_grad():  # restored on the way out, also when an assertion fails
        torch.manual_seed(0)
        same = loss(src, src, G)
        torch.manual_seed(0)
        shuffled = loss(src, other, G)
    # a positive identical to its query beats every negative; another image's patch does not
    assert float(same) < 0.5 * float(shuffled), (float(same), float(shuffled))
    # shuffling the output's patches within the image breaks the correspondence too
    perm = torch.randperm(32 * 32, generator=torch.Generator().manual_seed(1))
    scrambled = src.flatten(2)[:, :, perm].view_as(src)
    torch.manual_seed(0)
    with torch.no_grad():
        assert float(same) < float(loss(src, scrambled, G))


def test_patchnce_heads_lazy_negatives_per_image_and_source_constant(cut_plugin):
    from imtrans import registry

    G = tiny_generator()
    loss = registry.build("loss", "patchnce", num_patches=16, nc=32, layers=[0, 4, 8])
    assert len(loss.heads) == 0 and not loss.ready  # built on the first batch
    x1, x2 = images(1, 0), images(1, 1)
    out = G(torch.cat([x2, x1]))
    loss(x1, out[:1], G)
    assert loss.ready and [h[0].in_features for h in loss.heads] == [3, 16, 32]  # layer 0 is the padded image
    assert all(h[2].out_features == 32 for h in loss.heads)
    assert sum(p.numel() for p in loss.parameters()) > 0  # what the scheme optimises
    torch.manual_seed(3)  # (after the heads exist: building them draws random numbers too)
    both = loss(torch.cat([x1, x2]), out, G)
    # negatives come only from the same image: the batch loss is the mean of per-image losses
    # (same patch positions: one draw per layer is shared by the batch, as official)
    torch.manual_seed(3)
    l1 = loss(x1, out[:1], G)
    torch.manual_seed(3)
    l2 = loss(x2, out[1:], G)
    assert torch.allclose(both, 0.5 * (l1 + l2), atol=1e-5)
    # the source side is the fixed target: no gradient reaches src
    src = images(1, 2).requires_grad_(True)
    fake = G(images(1, 3)).detach().requires_grad_(True)
    loss(src, fake, G).backward()
    assert src.grad is None and fake.grad is not None and fake.grad.abs().sum() > 0


def test_patchnce_errors_and_unet(cut_plugin):
    from imtrans import registry
    from imtrans.errors import ImtransError

    with pytest.raises(ImtransError, match="num_patches"):
        registry.build("loss", "patchnce", num_patches=0)
    loss = registry.build("loss", "patchnce", num_patches=8, nc=16, layers=[0, 99])
    with pytest.raises(ImtransError, match="layer"):
        loss(images(1, 0), images(1, 1), tiny_generator())
    with pytest.raises(ImtransError, match="encode"):
        registry.build("loss", "patchnce")(images(1, 0), images(1, 1), torch.nn.Identity())
    unet = registry.build("generator", "unet", ngf=8, num_downs=5)
    u = registry.build("loss", "patchnce", num_patches=8, nc=16, layers=[0, 1, 2])
    assert torch.isfinite(u(images(1, 0), unet(images(1, 0)), unet))


# -- the cut scheme ---------------------------------------------------------------------

def cut_recipe(tmp_path: Path, name: str, extra: list[str] = ()):
    from imtrans.recipe import load_recipe

    return load_recipe(CUT_RECIPES / name, [
        *TINY,
        'data.a={name="synthetic", side="a", count=4, size=32}',
        # textures have no ground-truth counterpart, so only a2b is evaluated
        'data.b={name="textures", count=4, size=32}',
        "losses.nce.num_patches=16",
        "losses.nce.nc=16",
        f"output.root={json.dumps(str(tmp_path))}",
        *extra,
    ])


@pytest.mark.parametrize("recipe,keys", [
    ("cut_horse2zebra.toml", {"G_GAN", "NCE", "NCE_Y", "D_real", "D_fake"}),
    ("fastcut_horse2zebra.toml", {"G_GAN", "NCE", "D_real", "D_fake"}),
])
def test_cut_recipes_train_a_few_steps(tmp_path, cut_plugin, recipe, keys):
    from imtrans.engine import checkpoint as ckpt
    from imtrans.engine.trainer import Trainer

    r = cut_recipe(tmp_path, recipe)
    res = Trainer(r, progress=False, handle_signals=False).fit()
    assert res.steps == 2
    recs = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    train = [x for x in recs if x["kind"] == "train"]
    assert keys <= set(train[-1]["losses"]) and ("NCE_Y" in keys) == ("NCE_Y" in train[-1]["losses"])
    assert all(v == v for v in train[-1]["losses"].values())  # finite (NaN != NaN)
    legend = [x["losses"] for x in recs if x["kind"] == "legend"]
    assert legend and set(train[-1]["losses"]) <= set(legend[-1])  # the report page explains every name
    meta = ckpt.read_meta(res.run_dir / "checkpoints" / "latest")
    assert set(meta["nets"]) == {"G", "D", "F"} and meta["translators"] == {"a2b": "G"}
    assert "gt_l1_a2b" in res.eval_after
    if recipe.startswith("fastcut"):
        # resume: the heads ("F") and the flip RNG come back from the checkpoint
        more = cut_recipe(tmp_path, recipe, ["train.max_steps=3"])
        assert Trainer(more, resume=True, progress=False, handle_signals=False).fit().steps == 3


def test_cut_checkpoints_an_extra_terms_own_parameters(tmp_path, cut_plugin):
    """An extra generator term with parameters (here a second PatchNCE, its heads) is trained with G,
    so the checkpoint keeps it and a resume restores it (it was optimised but never saved)."""
    from imtrans.engine import checkpoint as ckpt
    from imtrans.engine.trainer import Trainer

    extra = ['losses.keep={name="patchnce", nc=16, num_patches=16}']
    res = Trainer(cut_recipe(tmp_path, "fastcut_horse2zebra.toml", extra), progress=False, handle_signals=False).fit()
    meta = ckpt.read_meta(res.run_dir / "checkpoints" / "latest")
    assert set(meta["nets"]) == {"G", "D", "F", "loss_keep"}
    # the resume loads every network's keys strictly, the heads included
    more = Trainer(cut_recipe(tmp_path, "fastcut_horse2zebra.toml", [*extra, "train.max_steps=3"]), resume=True,
                   progress=False, handle_signals=False)
    assert more.fit().steps == 3


def test_cut_scheme_modes_and_heads_are_optimised(tmp_path, cut_plugin):
    from imtrans import registry
    from imtrans.errors import ImtransError

    r = cut_recipe(tmp_path, "fastcut_horse2zebra.toml")
    s = registry.build_spec("scheme", r.scheme.as_dict(), r)
    assert (s.lambda_NCE, s.nce_idt, s.flip_equivariance) == (10.0, False, True)
    batch = {"a": images(1, 0), "b": images(1, 1)}
    s.setup(batch)
    heads = list(s.nce.parameters())
    assert heads and {id(p) for p in heads} <= {id(p) for g in s.optimizers()["G"].param_groups for p in g["params"]}
    before = [p.detach().clone() for p in heads]
    s.train_step(batch)
    assert any(not torch.equal(a, b) for a, b in zip(before, heads))
    with torch.no_grad():
        assert s.translator("a2b")(batch["a"]).shape == batch["a"].shape
    with pytest.raises(ImtransError, match="b2a"):
        s.translator("b2a")
    rows = s.sample_rows(batch["a"], batch["b"])
    assert len(rows) == 2 and all(len(row) == 2 for row in rows)
    st = s.extra_state()
    s.load_extra_state(st)

    r2 = cut_recipe(tmp_path, "cut_horse2zebra.toml", ["scheme.lambda_NCE=2.0", "scheme.flip_equivariance=true"])
    s2 = registry.build_spec("scheme", r2.scheme.as_dict(), r2)
    assert (s2.lambda_NCE, s2.nce_idt, s2.flip_equivariance) == (2.0, True, True)
    r3 = cut_recipe(tmp_path, "cut_horse2zebra.toml", ['losses.cycle={name="cycle"}'])
    with pytest.raises(ImtransError, match="losses.cycle"):
        registry.build_spec("scheme", r3.scheme.as_dict(), r3)


def test_patchnce_inside_cyclegan(tmp_path, cut_plugin):
    from imtrans import registry
    from imtrans.engine.trainer import Trainer
    from imtrans.recipe import load_recipe

    r = load_recipe(CUT_RECIPES / "cyclegan_patchnce_quickstart.toml", [
        *TINY,
        "data.a.count=4", "data.a.size=32", "data.b.count=4", "data.b.size=32",
        "losses.nce.nc=16", "losses.nce.num_patches=16",
        f"output.root={json.dumps(str(tmp_path))}",
    ])
    assert r.losses["nce"].name == "patchnce" and r.losses["nce"].params["num_patches"] == 16
    s = registry.build_spec("scheme", r.scheme.as_dict(), r)
    batch = {"a": images(1, 0), "b": images(1, 1)}
    s.setup(batch)
    heads = list(s.extra["nce"].parameters())
    assert heads and {id(p) for p in heads} <= {id(p) for g in s.optimizers()["G"].param_groups for p in g["params"]}
    assert "nce" in s.train_step(batch)
    res = Trainer(r, progress=False, handle_signals=False).fit()
    assert res.steps == 2
    legend = [json.loads(x) for x in (res.run_dir / "metrics.jsonl").read_text().splitlines() if '"legend"' in x]
    assert legend[-1]["losses"]["nce"] == "extra generator term [losses.nce] (patchnce), weighted"
