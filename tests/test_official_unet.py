"""Official pix2pix generators (unet_256, batch norm, dropout): import-weights gives the official forward, bit for bit.

The reference is a functional forward written from the official
``UnetSkipConnectionBlock`` structure that reads the *official* state_dict keys
directly, so it shares no code with our module.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from imtrans import registry
from imtrans.build import build_net_from_meta
from imtrans.engine.checkpoint import read_meta
from imtrans.nets.official import imtrans_to_official

PARAMS = {"ngf": 4, "num_downs": 8, "norm": "batch", "dropout": True}  # unet_256 layout, narrow for speed


def _conv(x, sd, key, transposed=False):
    fn = F.conv_transpose2d if transposed else F.conv2d
    return fn(x, sd[key + ".weight"], sd.get(key + ".bias"), stride=2, padding=1)


def _bn(x, sd, key, train):
    return F.batch_norm(x, sd[key + ".running_mean"].clone(), sd[key + ".running_var"].clone(),
                        sd[key + ".weight"], sd[key + ".bias"], train, 0.1, 1e-5)


def official_forward(x, sd, num_downs, train):
    """The official U-Net forward on official keys: model.model.<i> per level, submodule at .1 / .3."""

    def level(h, p, depth):
        if depth == 0:  # outermost: downconv, submodule, relu, upconv, tanh
            inner = level(_conv(h, sd, p + "0"), p + "1.model.", 1)
            return torch.tanh(_conv(F.relu(inner), sd, p + "3", transposed=True))
        d = _conv(F.leaky_relu(h, 0.2), sd, p + "1")
        if depth == num_downs - 1:  # innermost: relu, downconv, relu, upconv, upnorm
            return torch.cat([h, _bn(_conv(F.relu(d), sd, p + "3", transposed=True), sd, p + "4", train)], 1)
        inner = level(_bn(d, sd, p + "2", train), p + "3.model.", depth + 1)
        up = _bn(_conv(F.relu(inner), sd, p + "5", transposed=True), sd, p + "6", train)
        if 1 <= num_downs - 1 - depth <= num_downs - 5:  # the ngf*8 middle levels carry dropout 0.5
            up = F.dropout(up, 0.5, train)
        return torch.cat([h, up], 1)

    return level(x, "model.model.", 0)


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    torch.manual_seed(0)
    G = registry.build("generator", "unet", **PARAMS)
    with torch.no_grad():  # move the running statistics away from their initial 0/1
        for _ in range(3):
            G(torch.rand(2, 3, 256, 256) * 2 - 1)
    sd = imtrans_to_official("unet", G.state_dict())
    path = tmp_path_factory.mktemp("w") / "facades_label2photo.pth"
    torch.save(sd, path)
    return path, sd


def test_imported_unet_256_matches_the_official_forward(official, tmp_path):
    from imtrans.nets.official import import_weights_file

    pth, sd = official
    assert "model.model.1.model.3.model.3.model.3.model.3.model.3.model.3.model.1.weight" in sd  # 8 levels deep
    out = import_weights_file(pth, "unet", dict(PARAMS), tmp_path / "G.safetensors")
    meta = read_meta(out)
    assert meta["translators"] == {"a2b": "G"} and meta["nets"]["G"]["spec"]["norm"] == "batch"
    G = build_net_from_meta(out, "G")
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        G.eval()
        assert torch.equal(G(x), official_forward(x, sd, 8, train=False))  # --eval: running stats, no dropout
        G.train()  # official test default: batch statistics and dropout
        torch.manual_seed(5)
        ours = G(x)
        torch.manual_seed(5)
        ref = official_forward(x, sd, 8, train=True)
    assert torch.equal(ours, ref)
    assert not torch.equal(ours, official_forward(x, sd, 8, train=False))


def test_unet_import_through_the_cli(official, tmp_path):
    from imtrans.cli import main

    pth, _ = official
    out = tmp_path / "G.safetensors"
    args = ["import-weights", str(pth), "--part", "unet", "-o", str(out)]
    for k, v in PARAMS.items():
        args += ["--set", f"{k}={str(v).lower() if isinstance(v, bool) else v}"]
    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 0 and read_meta(out)["nets"]["G"]["spec"]["dropout"] is True
    # weights trained without dropout have the same keys; with the wrong depth they do not fit
    with pytest.raises(SystemExit) as e:
        main(["import-weights", str(pth), "--part", "unet", "--set", "ngf=4", "--set", "norm=batch",
              "--set", "num_downs=7", "-o", str(tmp_path / "bad.safetensors")])
    assert e.value.code == 1 and not (tmp_path / "bad.safetensors").exists()
