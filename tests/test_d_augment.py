"""Discriminator augmentation (``[model.d_augment]``): every D input, real and fake, differentiably.

Tiny networks at 32 px; each test takes a few seconds at most.
"""

from __future__ import annotations

import copy
import sys

import pytest
import torch

from imtrans import hookimpl, registry
from imtrans.d_augment import ADA, DiffAugment
from imtrans.errors import RecipeError
from imtrans.recipe import recipe_from_dict

from conftest import ROOT, parts_plugin, run_cli, tiny_recipe_data

CUT_SRC = ROOT / "plugins" / "imtrans-cut"


def cyclegan(tmp_path, d_augment=None, **train):
    data = tiny_recipe_data(tmp_path, "daug", **train)
    if d_augment is not None:
        data["model"]["d_augment"] = d_augment
    return recipe_from_dict(data)


def scheme_of(recipe):
    torch.manual_seed(0)
    return registry.build_spec("scheme", recipe.scheme.as_dict(), recipe)


def batch(n=2, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(n, 3, size, size, generator=g) * 2 - 1 for k in ("a", "b")}


def plugin_of(name, factory):
    """A test plugin registering ``factory`` as the d_augment ``name``."""
    return parts_plugin("register_d_augmentations", {name: factory})


# -- gradients reach G through the augmentation ----------------------------------------------

@pytest.mark.parametrize("spec", [{"name": "diffaugment"}, {"name": "ada", "p": 1.0}])
def test_fake_gradient_reaches_g_through_the_augmentation(tmp_path, spec):
    s = scheme_of(cyclegan(tmp_path, spec))
    assert set(s.d_augment) == {"D_A", "D_B"}
    G, D_B = s.nets["G"], s.nets["D_B"]
    fake = G(batch()["a"])
    seen = s.augment_d("D_B", fake)
    assert seen.shape == fake.shape and (seen - fake).abs().mean() > 1e-2  # it really changes D's input
    s.gan(D_B(seen), True, for_discriminator=False).backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0


def test_no_d_augment_is_the_identity(tmp_path):
    s = scheme_of(cyclegan(tmp_path))
    x = batch()["a"]
    assert len(s.d_augment) == 0 and s.augment_d("D_B", x) is x
    assert "d_augment" not in s.training_state()


# -- reals and fakes: the same transform distribution -------------------------------------------

class RecordingDiffAugment(DiffAugment):
    """DiffAugment that keeps each call's input and output (registered as a test plugin's part)."""

    calls: list = []

    def forward(self, x):
        out = super().forward(x)
        type(self).calls.append((x.detach().clone(), out.detach().clone()))
        return out


def _shifts(x: torch.Tensor, out: torch.Tensor, s: int) -> list[int]:
    """The integer translation (dy, dx) of each sample that maps ``x`` onto ``out`` exactly (zeros filling in)."""
    h, w = x.shape[-2:]
    padded = torch.nn.functional.pad(x, [s, s, s, s])
    cands = [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)]
    err = torch.stack([(out - padded[:, :, s - dy:s - dy + h, s - dx:s - dx + w]).abs().amax(dim=(1, 2, 3))
                       for dy, dx in cands], 1)
    best = err.argmin(1)
    assert float(err.min(1).values.max()) < 1e-6  # every sample a pure shift, found exactly
    return [v for i in best.tolist() for v in cands[i]]


def test_reals_and_fakes_get_the_same_translation_distribution(tmp_path, fresh_plugins):
    fresh_plugins.load_plugins(objects={"rec": plugin_of("rec", RecordingDiffAugment)}, reload=True)
    s = scheme_of(cyclegan(tmp_path, {"name": "rec", "policy": "translation"}))
    RecordingDiffAugment.calls = []
    reals = []
    for i in range(6):
        b = batch(4, seed=i)
        reals += [b["a"], b["b"]]
        if i == 0:
            s.setup(b)
        s.train_step(b)
    real_shifts, fake_shifts = [], []
    for x, out in RecordingDiffAugment.calls:
        is_real = any(x.shape == r.shape and torch.equal(x, r) for r in reals)
        (real_shifts if is_real else fake_shifts).extend(_shifts(x, out, 4))
    # per step and discriminator: one real batch, two fake batches (D's pool, G's term)
    assert len(real_shifts) == 6 * 2 * 4 * 2 and len(fake_shifts) == 2 * len(real_shifts)
    expected = 4 * 5 / 9  # E|t| for t uniform on the integers -4..4 (ratio 1/8 of 32 px)
    for shifts in (real_shifts, fake_shifts):
        t = torch.tensor(shifts, dtype=torch.float32)
        assert t.abs().max() == 4 and abs(float(t.abs().mean()) - expected) < 0.5
        assert abs(float(t.mean())) < 0.5
    gap = abs(torch.tensor(real_shifts).float().abs().mean() - torch.tensor(fake_shifts).float().abs().mean())
    assert gap < 0.5


def test_diffaugment_sizes_round_half_up_as_the_papers_code():
    """100 px at ratio 1/8 is 12.5 px: the paper's code shifts up to 13 (int(12.5 + 0.5)), and cuts 50."""
    from imtrans.d_augment import DiffAugment

    torch.manual_seed(0)
    x = (torch.arange(100, dtype=torch.float32) + 1).view(1, 1, 100, 1).expand(400, 1, 100, 1).contiguous()
    shift = 51 - DiffAugment(policy="translation")(x)[:, 0, 50, 0]  # row 50 shows source row 50 - shift
    assert int(shift.abs().max()) == 13  # 27 equally likely shifts, 400 draws: +-13 appear (P miss < 1e-13)
    cut = DiffAugment(policy="cutout", cutout=0.125)(torch.ones(400, 1, 100, 100))
    widest = int((cut[:, 0] == 0).any(dim=1).sum(dim=1).max())  # zeroed columns of the widest cutout
    assert widest == 13


def test_diffaugment_policies_and_pairs():
    torch.manual_seed(0)
    half = torch.rand(64, 3, 16, 16) * 2 - 1
    y = DiffAugment("color")(torch.cat([half, half], 1))
    # one colour draw per sample for both halves of a pix2pix pair, each half's own means
    assert not torch.allclose(y[:, :3], half, atol=1e-3)
    assert torch.allclose(y[:, :3], y[:, 3:], atol=1e-6)
    z = DiffAugment("cutout")(torch.ones(256, 3, 16, 16))
    zeroed = (z == 0).float().mean(dim=(1, 2, 3))
    assert zeroed.max() == pytest.approx(0.25) and zeroed.min() > 0  # an 8x8 hole, sometimes cut by the edge
    with pytest.raises(Exception, match="unknown part 'flip'"):
        DiffAugment("color,flip")


def test_ada_colour_is_the_same_for_both_halves_of_a_pair():
    torch.manual_seed(0)
    half = torch.rand(16, 3, 12, 12) * 2 - 1
    out = ADA(p=1.0, ops="brightness,contrast,hue,saturation")(torch.cat([half, half], 1))
    assert not torch.allclose(out[:, :3], half, atol=1e-3)
    assert torch.allclose(out[:, :3], out[:, 3:], atol=1e-6)
    geo = ADA(p=1.0, ops="xflip,rotate90,translation,scale,rotate")(torch.cat([half, half], 1))
    assert torch.allclose(geo[:, :3], geo[:, 3:], atol=1e-6)  # one tensor: both halves move together


# -- ADA's feedback ---------------------------------------------------------------------------------

def test_ada_p_rises_when_d_overfits_and_falls_when_it_does_not():
    ada = ADA(interval=4, speed_kimg=500)
    step = 8 * 4 / 500_000  # batch * interval / (speed_kimg * 1000): 0 -> 1 in 500k images
    ps = []
    for _ in range(40):
        ada.update(torch.full((8, 1, 4, 4), 2.0))  # D sure every real is real: r_t = 1 > 0.6
        ps.append(float(ada.p))
    assert ps[2] == 0 and ps[3] == pytest.approx(step) and ps[-1] == pytest.approx(10 * step)
    assert ps == sorted(ps) and float(ada.rt) == 1.0
    for _ in range(8):
        ada.update([torch.full((8, 1, 4, 4), -1.0), torch.full((8, 1, 2, 2), 1.0)])  # r_t = -0.6 < 0.6
    assert float(ada.p) == pytest.approx(8 * step) and float(ada.rt) == pytest.approx(-0.6)
    for _ in range(400):
        ada.update(torch.full((8, 1), -1.0))
    assert float(ada.p) == 0  # clipped at 0
    fixed = ADA(p=0.3, adaptive=False)
    fixed.update(torch.ones(8, 1))
    assert float(fixed.p) == pytest.approx(0.3)


def test_the_scheme_centres_lsgan_outputs_for_ada(tmp_path):
    """LSGAN's D says "real" above 0.5, not above 0: r_t must count 0.45 as fake (else p only rises)."""
    s = scheme_of(cyclegan(tmp_path, {"name": "ada", "interval": 1, "speed_kimg": 0.001}))
    assert s.gan.mode == "lsgan"
    s.update_d_augment("D_B", torch.full((1, 1, 4, 4), 0.55))
    assert float(s.d_augment["D_B"].p) == pytest.approx(1.0) and float(s.d_augment["D_B"].rt) == 1.0
    s.update_d_augment("D_B", [torch.full((1, 1, 4, 4), 0.45)])
    assert float(s.d_augment["D_B"].p) == 0 and float(s.d_augment["D_B"].rt) == -1.0
    assert float(s.d_augment["D_A"].p) == 0  # each discriminator has its own


def test_ada_resume_restores_p_exactly(tmp_path):
    from imtrans.engine import checkpoint as ckpt
    from imtrans.engine.trainer import Trainer

    spec = {"name": "ada", "p": 0.5, "interval": 1, "speed_kimg": 0.01}  # p moves 0.2 per step here

    def recipe(name, steps):  # no epoch end before the last step: nothing but training and one checkpoint
        data = tiny_recipe_data(tmp_path, name, max_steps=steps, steps_per_epoch=6, sample_every=0,
                                save_every_epochs=0)
        data["model"]["d_augment"] = spec
        return recipe_from_dict(data)

    Trainer(recipe("full", 3), progress=False, handle_signals=False).fit()
    Trainer(recipe("split", 1), progress=False, handle_signals=False).fit()
    mid = ckpt.load_state(tmp_path / "split")["d_augment"]
    Trainer(recipe("split", 3), resume=True, progress=False, handle_signals=False).fit()
    full, split = ckpt.load_state(tmp_path / "full"), ckpt.load_state(tmp_path / "split")
    for d in ("D_A", "D_B"):
        assert float(mid[d]["p"]) != 0.5  # it moved before the interruption
        for k in ("p", "rt", "acc", "steps"):
            assert torch.equal(full["d_augment"][d][k], split["d_augment"][d][k]), (d, k)
    wf, ws = ckpt.load_weights(tmp_path / "full"), ckpt.load_weights(tmp_path / "split")
    for k in wf:
        assert torch.allclose(wf[k], ws[k], atol=1e-6, rtol=0), k


# -- the wrong kind of augmentation is refused at check ------------------------------------------------

def test_a_data_preset_as_d_augment_and_the_reverse_are_refused(tmp_path):
    data = tiny_recipe_data(tmp_path, "x")
    data["model"]["d_augment"] = {"name": "resize_and_crop"}
    with pytest.raises(RecipeError) as e:
        recipe_from_dict(data)
    msg = str(e.value)
    assert "`model.d_augment` names 'resize_and_crop', a data augmentation preset" in msg
    assert "`imtrans list d_augment`" in msg and "data.augment" in msg and "\n" not in msg
    data = tiny_recipe_data(tmp_path, "x")
    data["data"]["augment"] = {"name": "diffaugment"}
    with pytest.raises(RecipeError, match=r"`data.augment` names 'diffaugment', a discriminator augmentation.*"
                                          r"`imtrans list augmentation`.*model.d_augment"):
        recipe_from_dict(data)


def test_check_cli_refuses_the_wrong_kind_and_lists_the_kind(tmp_path):
    import tomli_w

    data = tiny_recipe_data(tmp_path, "x")
    data["model"]["d_augment"] = {"name": "crop"}
    path = tmp_path / "r.toml"
    path.write_text(tomli_w.dumps(data))
    proc = run_cli("check", str(path))
    assert proc.returncode == 1 and "`model.d_augment` names 'crop'" in proc.stderr, proc.stderr
    assert {e.name for e in registry.describe("d_augment")} >= {"diffaugment", "ada"}  # `imtrans list d_augment`


def test_check_builds_the_d_augment_and_its_own_checks(tmp_path):
    from imtrans.check import build_parts
    from imtrans.errors import ImtransError

    built = build_parts(cyclegan(tmp_path, {"name": "diffaugment", "policy": "translation"}))
    assert isinstance(built["d_augment"], DiffAugment)
    with pytest.raises(ImtransError, match="unknown part 'zoom'"):
        build_parts(cyclegan(tmp_path, {"name": "diffaugment", "policy": "zoom"}))
    with pytest.raises(RecipeError, match="target"):
        cyclegan(tmp_path, {"name": "ada", "target": 2})


def test_check_refuses_a_scheme_that_never_applies_it(tmp_path, fresh_plugins):
    from imtrans.check import build_parts
    from imtrans.errors import ImtransError
    from imtrans.schemes.base import Scheme

    class Plain(Scheme):
        """A plugin scheme written before discriminator augmentation existed."""

    @hookimpl
    def register_schemes(register):
        register("plain", Plain)

    import types

    fresh_plugins.load_plugins(objects={"plain": types.SimpleNamespace(register_schemes=register_schemes)},
                               reload=True)
    data = tiny_recipe_data(tmp_path, "x")
    data["scheme"] = {"name": "plain"}
    assert "d_augment" not in build_parts(recipe_from_dict(data))
    data["model"]["d_augment"] = {"name": "diffaugment"}
    with pytest.raises(ImtransError, match=r"scheme 'plain' does not apply \[model.d_augment\].*remove"):
        build_parts(recipe_from_dict(data))
    assert "p=?" in repr(build_parts(cyclegan(tmp_path, {"name": "ada"}))["d_augment"])  # built on meta


# -- every scheme applies it to every D input ---------------------------------------------------------

class Spy(torch.nn.Module):
    """A d_augment that counts its calls and the channel counts it saw (a test plugin's part)."""

    seen: list = []

    def forward(self, x):
        type(self).seen.append((x.shape[1], x.requires_grad))
        return x * 0.5  # a visible change, differentiable

    def update(self, real_logits):
        type(self).seen.append(("update", tuple(real_logits.shape)))


@pytest.fixture
def spy_plugin(fresh_plugins):
    objects = {"spy": plugin_of("spy", Spy)}
    added = False
    if str(CUT_SRC) not in sys.path:
        sys.path.insert(0, str(CUT_SRC))
        added = True
    import imtrans_cut.plugin

    if "patchnce" not in registry.names("loss"):
        objects["cut"] = imtrans_cut.plugin
    fresh_plugins.load_plugins(objects=objects, reload=True)
    Spy.seen = []
    yield
    if added:
        sys.path.remove(str(CUT_SRC))


def _run_two_steps(s):
    b = batch(2)
    s.setup(b)
    Spy.seen = []
    s.train_step(b)
    first = list(Spy.seen)
    s.train_step(b)
    assert Spy.seen == first * 2
    return first


def test_pix2pix_augments_the_stacked_pair_real_and_fake(spy_plugin):
    data = {
        "scheme": {"name": "pix2pix"},
        "model": {"generator": {"name": "unet", "ngf": 4, "num_downs": 5},
                  "discriminator": {"name": "patchgan", "in_channels": 6, "ndf": 4, "n_layers": 2},
                  "d_augment": {"name": "spy"}},
        "train": {"precision": "fp32"},
    }
    seen = _run_two_steps(scheme_of(recipe_from_dict(data)))
    # D step: fake pair (no grad: G's output detached), real pair; feedback; G step: fake pair with grad
    assert seen == [(6, False), (6, False), ("update", (2, 1, 6, 6)), (6, True)]


def test_cyclegan_augments_every_input_of_both_discriminators(tmp_path, spy_plugin):
    seen = _run_two_steps(scheme_of(cyclegan(tmp_path, {"name": "spy"})))
    assert seen[:2] == [(3, True), (3, True)]  # G's adversarial terms, D_B then D_A
    assert seen[2:6] == [(3, False)] * 4  # real and pool fake for D_B, then for D_A
    assert [x[0] for x in seen[6:]] == ["update", "update"]


def test_cut_augments_every_input_of_its_discriminator(tmp_path, spy_plugin):
    data = tiny_recipe_data(tmp_path, "cut")
    data["scheme"] = {"name": "cut", "mode": "fastcut"}
    data["losses"] = {"nce": {"name": "patchnce", "num_patches": 16, "nc": 16}}
    data["model"]["d_augment"] = {"name": "spy"}
    seen = _run_two_steps(scheme_of(recipe_from_dict(copy.deepcopy(data))))
    assert seen[:2] == [(3, False), (3, False)] and seen[2][0] == "update" and seen[3] == (3, True)
    assert len(seen) == 4
