"""Losses: values, the direction each GAN mode pushes logits, lists, gradient penalty, pixel losses."""

import inspect
import typing

import pytest
import torch

from imtrans.losses import LOSSES, CycleLoss, GANLoss, IdentityLoss, L1Loss, L2Loss, gradient_penalty
from imtrans.nets.discriminators import PatchGANDiscriminator

MODES = ["lsgan", "vanilla", "hinge", "wgangp", "nonsaturating"]


def test_registered_names_and_default_weights():
    assert set(LOSSES) == {"gan", "cycle", "identity", "l1", "l2"}
    assert CycleLoss.default_weight == 10.0
    assert IdentityLoss.default_weight == 0.5
    assert GANLoss.default_weight == L1Loss.default_weight == L2Loss.default_weight == 1.0
    for cls in LOSSES.values():
        assert inspect.getdoc(cls).splitlines()[0].strip()
        typing.get_type_hints(cls.__init__)


def _steps(mode, real, for_d, n=5):
    torch.manual_seed(0)
    # Start between the lsgan targets 0 and 1 (and inside the hinge margins) so
    # every mode has a gradient and "towards the target" has one direction.
    logit = torch.nn.Parameter(0.5 + 0.05 * torch.randn(4, 1, 3, 3))
    start = logit.detach().mean().item()
    opt = torch.optim.SGD([logit], lr=0.1)
    loss_fn = GANLoss(mode)
    for _ in range(n):
        opt.zero_grad()
        loss_fn(logit, real, for_discriminator=for_d).backward()
        opt.step()
    return logit.detach().mean().item() - start


@pytest.mark.parametrize("mode", MODES)
def test_discriminator_real_raises_logits(mode):
    assert _steps(mode, True, True) > 0


@pytest.mark.parametrize("mode", MODES)
def test_discriminator_fake_lowers_logits(mode):
    assert _steps(mode, False, True) < 0


@pytest.mark.parametrize("mode", MODES)
def test_generator_raises_logits(mode):
    assert _steps(mode, True, False) > 0


def test_known_values():
    x = torch.tensor([[0.5, -1.0]])
    assert torch.isclose(GANLoss("lsgan")(x, True), torch.tensor((0.25 + 4.0) / 2))
    assert torch.isclose(GANLoss("lsgan")(x, False), torch.tensor((0.25 + 1.0) / 2))
    bce = torch.nn.functional.binary_cross_entropy_with_logits(x, torch.ones_like(x))
    assert torch.isclose(GANLoss("vanilla")(x, True), bce)
    assert torch.isclose(GANLoss("nonsaturating")(x, True), bce)
    assert torch.isclose(GANLoss("hinge")(x, True), torch.tensor((0.5 + 2.0) / 2))
    assert torch.isclose(GANLoss("hinge")(x, False), torch.tensor((1.5 + 0.0) / 2))
    assert torch.isclose(GANLoss("hinge")(x, True, for_discriminator=False), torch.tensor(0.25))
    assert torch.isclose(GANLoss("wgangp")(x, True), torch.tensor(0.25))
    assert torch.isclose(GANLoss("wgangp")(x, False), torch.tensor(-0.25))
    assert torch.isclose(GANLoss("lsgan", real_label=0.9)(torch.full((2,), 0.9), True), torch.tensor(0.0))


@pytest.mark.parametrize("mode", MODES)
def test_list_is_mean_over_scales(mode):
    a, b = torch.randn(2, 1, 6, 6), torch.randn(2, 1, 2, 2)
    loss = GANLoss(mode)
    expected = (loss(a, True) + loss(b, True)) / 2
    assert torch.isclose(loss([a, b], True), expected)
    # pix2pixHD-style nested lists: the last entry of each scale is the logit map.
    assert torch.isclose(loss([[torch.zeros(1), a], [b]], True), expected)


def test_gradient_penalty():
    torch.manual_seed(0)
    d = PatchGANDiscriminator(ndf=4, norm="none")
    real, fake = torch.randn(2, 3, 64, 64), torch.randn(2, 3, 64, 64)
    gp = gradient_penalty(d, real, fake, lambda_gp=10.0)
    assert gp.ndim == 0 and gp.item() > 0
    gp.backward()  # differentiable into D's parameters (create_graph=True)
    assert d.model[0].weight.grad is not None and d.model[0].weight.grad.abs().sum() > 0
    assert gradient_penalty(d, real, fake, lambda_gp=0.0).item() == 0.0

    # A linear critic D(x) = sum(w * x) has gradient w everywhere: penalty is exact.
    class Linear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.full((1, 3, 4, 4), 0.5))

        def forward(self, x):
            return (x * self.w).flatten(1).sum(1)

    gp = gradient_penalty(Linear(), torch.randn(3, 3, 4, 4), torch.randn(3, 3, 4, 4), lambda_gp=2.0, constant=1.0)
    # ||w|| = 0.5 * sqrt(48)
    assert torch.isclose(gp, torch.tensor(2.0 * (0.5 * 48**0.5 - 1.0) ** 2), rtol=1e-5)


def test_pixel_losses():
    p, t = torch.zeros(2, 3, 4, 4), torch.full((2, 3, 4, 4), 2.0)
    assert CycleLoss()(p, t).item() == 2.0
    assert IdentityLoss()(p, t).item() == 2.0
    assert L1Loss()(p, t).item() == 2.0
    assert L2Loss()(p, t).item() == 4.0
