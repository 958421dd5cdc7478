"""The pix2pix scheme: official part sizes, one step against a hand-computed reference, test-time modes."""

import copy

import pytest
import torch
import torch.nn.functional as F

from imtrans import registry
from imtrans.errors import ImtransError
from imtrans.recipe import recipe_from_dict

TINY = {
    "scheme": {"name": "pix2pix"},
    "model": {
        "generator": {"name": "unet", "ngf": 4, "num_downs": 5, "norm": "batch", "dropout": False},
        "discriminator": {"name": "patchgan", "in_channels": 6, "ndf": 4, "n_layers": 2, "norm": "batch"},
    },
    "losses": {"gan": {"name": "gan", "mode": "vanilla"}},
    "train": {"precision": "fp32"},
}


def build(over=None):
    torch.manual_seed(0)
    r = recipe_from_dict({**TINY, **(over or {})})
    return registry.build_spec("scheme", r.scheme.as_dict(), r)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_official_parameter_counts():
    # official define_G('unet_256', norm='batch', use_dropout=True) and define_D(6, 64, 'basic', norm='batch')
    g = registry.build("generator", "unet", num_downs=8, ngf=64, norm="batch", dropout=True)
    d = registry.build("discriminator", "patchgan", in_channels=6, ndf=64, n_layers=3, norm="batch")
    assert n_params(g) == 54_413_955
    assert n_params(d) == 2_768_705
    assert sum(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in g.modules()) == 3  # num_downs - 5


def test_one_step_losses_match_hand_computed_reference():
    s = build()
    torch.manual_seed(1)
    a, b = torch.rand(2, 3, 32, 32) * 2 - 1, torch.rand(2, 3, 32, 32) * 2 - 1
    s.setup({"a": a, "b": b})
    G0, D0 = copy.deepcopy(s.nets["G"]), copy.deepcopy(s.nets["D"])
    bce = F.binary_cross_entropy_with_logits

    losses = s.train_step({"a": a, "b": b})

    # D step: 0.5 * (fake + real) on (input, output) stacks, from the weights before the step
    fb = G0(a)
    fake_ab, real_ab = torch.cat([a, fb.detach()], 1), torch.cat([a, b], 1)
    pf, pr = D0(fake_ab), D0(real_ab)
    d_fake, d_real = bce(pf, torch.zeros_like(pf)), bce(pr, torch.ones_like(pr))
    (0.5 * (d_fake + d_real)).backward()
    # one Adam step from zero moments moves every weight by lr * g / (|g| + eps)
    lr, eps = 2e-4, 1e-8
    D1 = copy.deepcopy(D0)
    with torch.no_grad():
        for p, p0 in zip(D1.parameters(), D0.parameters()):
            p.copy_(p0 - lr * p0.grad / (p0.grad.abs() + eps))
    for p, q in zip(D1.parameters(), s.nets["D"].parameters()):
        assert torch.allclose(p, q, atol=1e-7)
    # G step: against the *updated* D, GAN + 100 * L1
    with torch.no_grad():
        pg = D1(torch.cat([a, fb], 1))
        ref = {
            "D_fake": d_fake.detach(), "D_real": d_real.detach(),
            "G_GAN": bce(pg, torch.ones_like(pg)),
            "G_L1": 100.0 * (fb - b).abs().mean(),
        }
        ref["G_total"] = ref["G_GAN"] + ref["G_L1"]
    assert set(losses) == set(ref)
    for k, v in ref.items():
        assert float(losses[k]) == pytest.approx(float(v), rel=1e-5, abs=1e-6), k
    # the G loss with the old D differs: the order matters and is tested
    with torch.no_grad():
        old = bce(D0(torch.cat([a, fb], 1)), torch.ones_like(pg))
    assert float(old) != pytest.approx(float(ref["G_GAN"]), rel=1e-6)
    assert any(not torch.equal(p, q) for p, q in zip(G0.parameters(), s.nets["G"].parameters()))
    assert all(p.requires_grad for p in s.nets["D"].parameters())


def test_lambda_from_l1_loss_weight_and_parameter():
    assert build().lambda_L1 == 100.0
    assert build({"losses": {"l1": {"name": "l1", "weight": 7.0}}}).lambda_L1 == 7.0
    assert build({"scheme": {"name": "pix2pix", "lambda_L1": 3.0}}).lambda_L1 == 3.0
    assert build().gan.mode == "vanilla"
    assert build({"losses": {}}).gan.mode == "vanilla"  # official --gan_mode vanilla without a [losses.gan]


def test_wrong_discriminator_channels_and_unknown_terms_are_one_sentence():
    bad = copy.deepcopy(TINY)
    bad["model"]["discriminator"]["in_channels"] = 3
    with pytest.raises(ImtransError, match=r"model\.discriminator\.in_channels = 6"):
        build({"model": bad["model"]})
    with pytest.raises(ImtransError, match=r"losses\.cycle is not a pix2pix term"):
        build({"losses": {"cycle": {"name": "cycle"}}})


@pytest.mark.parametrize("mode", ["train", "eval"])
def test_sampling_changes_no_training_state(mode):
    over = copy.deepcopy(TINY)
    over["model"]["generator"]["dropout"] = True
    over["model"]["generator"]["num_downs"] = 6
    over["scheme"] = {"name": "pix2pix", "test_mode": mode}
    s = build(over)
    a = torch.rand(2, 3, 64, 64) * 2 - 1
    s.setup({"a": a, "b": a})
    s.train_step({"a": a, "b": a})
    G = s.nets["G"]
    buffers = {k: v.clone() for k, v in G.named_buffers()}
    rng = torch.get_rng_state()
    first = s.sample_rows(a, a)[0][1]
    again = s.sample_rows(a, a)[0][1]
    assert torch.equal(first, again)  # fixed-seed dropout: reproducible samples
    assert G.training and torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(v, buffers[k]) for k, v in G.named_buffers())  # num_batches_tracked too
    with torch.no_grad():
        G.eval()
        evald = G(a)
        G.train()
    # train mode normalises with the batch's statistics: not what eval mode gives
    assert torch.equal(first, evald) == (mode == "eval")
