"""Generators: exact parameter counts, shapes, size errors, encode() and typed signatures."""

import typing

import pytest
import torch

from imtrans.errors import ImtransError
from imtrans.nets import GENERATORS
from imtrans.nets.generators import ResnetGenerator, TimmUnetGenerator, UnetGenerator
from imtrans.nets.init import init_weights


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_registered_names():
    assert set(GENERATORS) == {"resnet", "unet", "timm_unet"}


@pytest.mark.parametrize("n_blocks,count", [(9, 11_378_179), (6, 7_837_699)])
def test_resnet_param_count_matches_official(n_blocks, count):
    assert n_params(ResnetGenerator(ngf=64, norm="instance", n_blocks=n_blocks)) == count


@pytest.mark.parametrize("num_downs,count", [(8, 54_413_955), (7, 41_828_995)])
def test_unet_param_count_matches_official(num_downs, count):
    assert n_params(UnetGenerator(ngf=64, norm="batch", num_downs=num_downs)) == count


def test_resnet_keys_are_official_layout():
    keys = list(ResnetGenerator(ngf=8, n_blocks=2).state_dict())
    # Instance norm has no parameters; conv biases exist because norm is instance.
    assert keys[:4] == ["model.1.weight", "model.1.bias", "model.4.weight", "model.4.bias"]
    assert "model.10.conv_block.1.weight" in keys and "model.10.conv_block.5.weight" in keys
    assert not any("running" in k for k in keys)


def test_unet_keys_are_official_layout():
    keys = list(UnetGenerator(ngf=8, norm="batch", num_downs=5).state_dict())
    assert keys[0] == "model.model.0.weight"
    assert "model.model.1.model.2.running_mean" in keys  # downnorm of level 1


@pytest.mark.parametrize("h,w", [(32, 32), (32, 48), (64, 40)])
def test_resnet_shapes(h, w):
    g = ResnetGenerator(in_channels=3, out_channels=1, ngf=8, n_blocks=2)
    y = g(torch.randn(2, 3, h, w))
    assert y.shape == (2, 1, h, w)
    assert y.abs().max() <= 1.0  # tanh


@pytest.mark.parametrize("h,w", [(32, 32), (32, 64), (64, 96)])
def test_unet_shapes(h, w):
    g = UnetGenerator(in_channels=1, out_channels=3, ngf=8, norm="batch", num_downs=5, dropout=True)
    assert g.size_multiple == 32
    y = g(torch.randn(2, 1, h, w))
    assert y.shape == (2, 3, h, w)
    assert y.abs().max() <= 1.0


def test_resnet_bad_size_message():
    g = ResnetGenerator(ngf=8, n_blocks=1)
    with pytest.raises(ImtransError, match=r"resnet generator needs height and width divisible by 4.*got 30x64"):
        g(torch.randn(1, 3, 30, 64))
    with pytest.raises(ImtransError, match="at least 8"):
        g.check_input_size(4, 4)


def test_unet_bad_size_message():
    g = UnetGenerator(ngf=8, norm="batch", num_downs=5)
    with pytest.raises(ImtransError, match=r"unet generator needs height and width divisible by 32; got 48x40"):
        g(torch.randn(1, 3, 48, 40))


def test_size_multiple_attributes():
    assert ResnetGenerator(ngf=8, n_blocks=1).size_multiple == 4
    assert UnetGenerator(ngf=8, num_downs=6).size_multiple == 64


def test_resnet_encode_matches_sequential_indices():
    torch.manual_seed(0)
    g = ResnetGenerator(ngf=8, n_blocks=9).eval()
    x = torch.randn(1, 3, 32, 32)
    feats = g.encode(x, [0, 4, 8, 12, 16])
    # Reference: run the sequential by hand; index i is the output of model[i].
    ref, f = {}, x
    for i, layer in enumerate(g.model):
        f = layer(f)
        ref[i] = f
    for i, t in zip([0, 4, 8, 12, 16], feats):
        assert torch.equal(t, ref[i])
    assert feats[0].shape == (1, 3, 38, 38)  # index 0 = reflect-padded input
    assert feats[1].shape == (1, 16, 16, 16)
    # Order follows the request; the last index of the model is the output.
    last = len(g.model) - 1
    out = g.encode(x, [last, 1])
    assert torch.equal(out[0], g(x)) and out[1].shape == (1, 8, 32, 32)
    with pytest.raises(ImtransError, match="layer indices"):
        g.encode(x, [last + 1])


def test_resnet_encode_stops_early():
    g = ResnetGenerator(ngf=8, n_blocks=2)
    calls = []
    g.model[-1].register_forward_hook(lambda *a: calls.append(1))
    g.encode(torch.randn(1, 3, 16, 16), [4])
    assert calls == []


def test_residual_unet_draws_only_the_change():
    torch.manual_seed(0)
    plain = UnetGenerator(ngf=4, num_downs=5)
    res = UnetGenerator(ngf=4, num_downs=5, residual=True)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        assert torch.equal(res(x), x)  # a fresh residual U-Net starts as an exact copy
        assert not torch.equal(plain(x), x)
    res.load_state_dict(plain.state_dict())  # same layers: official weights still load
    with torch.no_grad():
        assert torch.allclose(res(x), (x + 2 * plain(x)).clamp(-1, 1))
        last = res.model.model[-2]  # the outermost ConvTranspose2d, before tanh
        last.weight.zero_()
        last.bias.zero_()
        assert torch.equal(res(x), x)  # a zero change passes the input through exactly
        last.bias.fill_(5.0)
        assert torch.equal(res(x), torch.ones_like(x))  # x + ~2 is clamped to the image range
    with pytest.raises(ImtransError, match="in_channels == out_channels"):
        UnetGenerator(in_channels=1, out_channels=3, ngf=4, num_downs=5, residual=True)


def test_unet_encode_levels():
    g = UnetGenerator(ngf=8, norm="batch", num_downs=6).eval()
    feats = g.encode(torch.randn(1, 3, 64, 64), [0, 1, 5])
    assert [tuple(f.shape) for f in feats] == [(1, 8, 32, 32), (1, 16, 16, 16), (1, 64, 1, 1)]


@pytest.mark.parametrize("encoder", ["resnet18", "mobilenetv3_large_100"])
def test_timm_unet(encoder):
    g = TimmUnetGenerator(in_channels=1, out_channels=2, ngf=8, encoder=encoder, norm="batch")
    assert g.size_multiple == 32
    y = g(torch.randn(2, 1, 64, 96))
    assert y.shape == (2, 2, 64, 96) and y.abs().max() <= 1.0
    feats = g.encode(torch.randn(1, 1, 64, 64), [0, g.num_stages - 1])
    assert feats[0].shape[-1] == 32 and feats[1].shape[-1] == 2
    with pytest.raises(ImtransError, match="divisible by 32"):
        g(torch.randn(1, 1, 64, 48))


def test_timm_unet_rgb_forward_and_encoder_not_in_decoder_init():
    g = TimmUnetGenerator(ngf=8)
    assert "_mean" not in g.state_dict()  # renormalisation constants are not weights
    assert g(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_timm_unet_pretrained_errors(monkeypatch, tmp_path):
    import timm

    with pytest.raises(ImtransError, match="pretrained_file .* does not exist"):
        TimmUnetGenerator(encoder="resnet18", pretrained_file=str(tmp_path / "nope.safetensors"))

    def offline(*a, **k):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(ImtransError) as e:
        TimmUnetGenerator(encoder="resnet18", pretrained=True)
    assert "pretrained_file=" in str(e.value) and "HF_HUB_OFFLINE" in str(e.value)


def test_timm_unet_pretrained_file_is_loaded(tmp_path):
    import timm
    from safetensors.torch import save_file

    src = timm.create_model("resnet18", pretrained=False)
    torch.nn.init.constant_(src.conv1.weight, 0.125)
    f = tmp_path / "r18.safetensors"
    save_file({k: v.contiguous() for k, v in src.state_dict().items()}, str(f))
    g = TimmUnetGenerator(encoder="resnet18", ngf=8, pretrained_file=str(f))
    assert torch.all(g.encoder.conv1.weight == 0.125)


def test_timm_unet_unknown_encoder():
    with pytest.raises(ImtransError, match="not a timm model"):
        TimmUnetGenerator(encoder="resnet18x")


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_signature_is_fully_typed_with_defaults(name):
    import inspect

    cls = GENERATORS[name]
    hints = typing.get_type_hints(cls.__init__)
    for p in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        assert p.name in hints, p.name
        assert p.default is not inspect.Parameter.empty, p.name
    assert inspect.getdoc(cls).splitlines()[0].strip()
    assert typing.get_args(hints["norm"]) == ("instance", "batch", "none")


def test_registry_param_model_builds_generator():
    from imtrans.errors import ImtransError as E
    from imtrans.registry import Registry

    reg = Registry("generator")
    for k, v in GENERATORS.items():
        reg.register(k, v, plugin="test")
    g = reg.build("resnet", ngf=8, n_blocks=1)
    assert g.imtrans_part.spec["ngf"] == 8 and g.imtrans_part.spec["norm"] == "instance"
    with pytest.raises(E, match="norm"):
        reg.build("resnet", norm="layer")


def _init_oracle(init: str, w: torch.Tensor, gain: float) -> None:
    """The official rule for one weight, checked from its statistics (fan_in = in * k * k)."""
    fan_in, fan_out = w.shape[1] * w[0, 0].numel(), w.shape[0] * w[0, 0].numel()
    flat = w.flatten(1)
    if init == "orthogonal":  # rows (out channels) orthonormal, scaled by the gain
        eye = torch.eye(flat.shape[0])
        assert torch.allclose(flat @ flat.T, gain**2 * eye, atol=1e-4 * gain**2 * flat.shape[1]), init
        return
    std = {"normal": gain, "xavier": gain * (2.0 / (fan_in + fan_out)) ** 0.5, "kaiming": (2.0 / fan_in) ** 0.5}[init]
    assert abs(w.mean().item()) < 0.05 * std, init
    assert abs(w.std().item() / std - 1) < 0.05, (init, w.std().item(), std)


@pytest.mark.parametrize("init", ["normal", "xavier", "kaiming", "orthogonal"])
def test_init_weights(init):
    """Conv, transposed conv and linear weights follow the official rule; every bias and BatchNorm shift is 0."""
    torch.manual_seed(0)
    gain = 0.05  # not the default: a rule that ignores the gain fails
    net = torch.nn.Sequential(torch.nn.Conv2d(16, 48, 5), torch.nn.BatchNorm2d(48),
                              torch.nn.ConvTranspose2d(48, 24, 4), torch.nn.Linear(300, 200))
    with torch.no_grad():  # start from values no rule produces, so each check can fail
        for p in net.parameters():
            p.fill_(3.0)
    init_weights(net, init, gain)
    conv, bn, tconv, lin = net
    for w in (conv.weight, lin.weight):
        _init_oracle(init, w.detach(), gain)
    for m in (conv, tconv, lin):
        assert torch.all(m.bias == 0), type(m).__name__
    assert not torch.all(tconv.weight == 3.0)
    assert torch.all(bn.bias == 0) and abs(bn.weight.mean().item() - 1.0) < 0.05
    assert 0.5 * gain < bn.weight.std().item() < 1.5 * gain


def test_generators_initialise_every_layer():
    """The generators apply init_weights: biases of an instance-norm U-Net are 0, weights ~N(0, init_gain)."""
    torch.manual_seed(0)
    g = UnetGenerator(ngf=8, norm="instance", num_downs=5, init="normal", init_gain=0.03)
    convs = [m for m in g.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert convs and all(m.bias is not None and torch.all(m.bias == 0) for m in convs)
    w = torch.cat([m.weight.flatten() for m in convs])
    assert abs(w.std().item() / 0.03 - 1) < 0.05
    bn = UnetGenerator(ngf=8, norm="batch", num_downs=5, init="normal").model.model[1].model[2]
    assert isinstance(bn, torch.nn.BatchNorm2d) and torch.all(bn.bias == 0) and bn.weight.std().item() > 0


def test_init_weights_rejects_unknown():
    with pytest.raises(ImtransError, match="unknown init"):
        init_weights(torch.nn.Conv2d(1, 1, 1), "uniform")
