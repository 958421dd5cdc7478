"""Discriminators: exact parameter counts, receptive field, shapes, multiscale, spectral norm."""

import inspect
import typing

import pytest
import torch

from imtrans.errors import ImtransError
from imtrans.nets import DISCRIMINATORS
from imtrans.nets.discriminators import (
    MultiscaleDiscriminator,
    PatchGANDiscriminator,
    PixelGANDiscriminator,
)


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_registered_names():
    assert set(DISCRIMINATORS) == {"patchgan", "pixelgan", "multiscale"}


def test_patchgan_param_counts_match_official():
    assert n_params(PatchGANDiscriminator(in_channels=3, ndf=64, norm="instance")) == 2_764_737
    assert n_params(PatchGANDiscriminator(in_channels=6, ndf=64, norm="batch")) == 2_768_705


def test_patchgan_default_norm_is_instance():
    assert inspect.signature(PatchGANDiscriminator).parameters["norm"].default == "instance"


def test_pixelgan_param_count_matches_official():
    assert n_params(PixelGANDiscriminator(ndf=64)) == 8_705
    assert list(PixelGANDiscriminator(ndf=4).state_dict())[0] == "net.0.weight"


def _receptive_field(d: torch.nn.Module, size: int) -> tuple[int, int]:
    x = torch.zeros(1, 3, size, size, dtype=torch.float64, requires_grad=True)
    y = d.double()(x)
    cy, cx = y.shape[-2] // 2, y.shape[-1] // 2
    y[0, 0, cy, cx].backward()
    nz = x.grad[0].abs().sum(0).nonzero()
    return (int(nz[:, 0].max() - nz[:, 0].min() + 1), int(nz[:, 1].max() - nz[:, 1].min() + 1))


@pytest.mark.parametrize("n_layers,rf", [(1, 16), (2, 34), (3, 70)])
def test_patchgan_receptive_field(n_layers, rf):
    torch.manual_seed(0)
    # norm='none': instance norm would couple every pixel through its statistics.
    d = PatchGANDiscriminator(ndf=4, n_layers=n_layers, norm="none", init="normal", init_gain=0.5)
    assert _receptive_field(d, 160) == (rf, rf)


@pytest.mark.parametrize("h,w,out", [(64, 64, (6, 6)), (64, 48, (6, 4)), (128, 96, (14, 10))])
def test_patchgan_shapes(h, w, out):
    d = PatchGANDiscriminator(ndf=8)
    y = d(torch.randn(2, 3, h, w))
    assert y.shape == (2, 1, *out)
    assert (d.output_size(h), d.output_size(w)) == out


def test_patchgan_too_small_is_clear():
    with pytest.raises(ImtransError, match="empty output for a 16x16 image"):
        PatchGANDiscriminator(ndf=4)(torch.randn(1, 3, 16, 16))


def test_pixelgan_shape():
    assert PixelGANDiscriminator(in_channels=6, ndf=8)(torch.randn(2, 6, 32, 48)).shape == (2, 1, 32, 48)


def test_multiscale_returns_pyramid():
    d = MultiscaleDiscriminator(ndf=4, num_scales=3)
    outs = d(torch.randn(2, 3, 128, 96))
    assert isinstance(outs, list) and len(outs) == 3
    assert [tuple(o.shape[-2:]) for o in outs] == [(14, 10), (6, 4), (2, 1)]
    assert n_params(d) == 3 * n_params(PatchGANDiscriminator(ndf=4))


@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
def test_spectral_norm_everywhere(name):
    """Every conv's effective weight has largest singular value 1, whatever the raw weight's scale."""
    torch.manual_seed(0)
    d = DISCRIMINATORS[name](ndf=4, spectral_norm=True)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(torch.nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    with torch.no_grad():  # raw weights far from norm 1 (the N(0, 0.02) init is ~0.2): only the division fixes them
        for m in convs:
            m.parametrizations.weight.original.mul_(50.0)
    d.train()
    for _ in range(30):  # each training forward pass runs one power iteration
        out = d(torch.randn(1, 3, 128, 128))
    assert all(torch.isfinite(o).all() for o in (out if isinstance(out, list) else [out]))
    for m in convs:
        raw = torch.linalg.matrix_norm(m.parametrizations.weight.original.detach().flatten(1), ord=2)
        sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
        assert raw > 2 and abs(sigma.item() - 1.0) < 0.05, (raw.item(), sigma.item())


@pytest.mark.parametrize("name", sorted(DISCRIMINATORS))
def test_signature_is_fully_typed_with_defaults(name):
    cls = DISCRIMINATORS[name]
    hints = typing.get_type_hints(cls.__init__)
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        assert p.name in hints and p.default is not inspect.Parameter.empty, p.name
    assert inspect.getdoc(cls).splitlines()[0].strip()
