"""Official weights: round trip through the official layout, prefixes, stale instance-norm stats, clear errors."""

import pytest
import torch

from imtrans.errors import ImtransError
from imtrans.nets import DISCRIMINATORS, GENERATORS
from imtrans.nets.official import (
    convert_official,
    imtrans_to_official,
    load_official_pth,
    official_to_imtrans,
)

CASES = [
    ("resnet", dict(ngf=8, n_blocks=2), (1, 3, 32, 48)),
    ("resnet", dict(ngf=8, n_blocks=2, dropout=True), (1, 3, 32, 32)),
    ("unet", dict(ngf=8, norm="batch", num_downs=5), (2, 3, 32, 64)),
    ("patchgan", dict(ndf=8), (1, 3, 64, 64)),
    ("patchgan", dict(in_channels=6, ndf=8, norm="batch"), (2, 6, 64, 48)),
    ("pixelgan", dict(ndf=8), (1, 3, 16, 16)),
]


def _build(part, params, seed):
    torch.manual_seed(seed)
    return {**GENERATORS, **DISCRIMINATORS}[part](**params).eval()


def _stale_instance_stats(official: dict, part: str) -> dict:
    """Add the buffers old official checkpoints carry for InstanceNorm(track_running_stats=True)."""
    sd = dict(official)
    if part == "resnet":
        sd["model.2.running_mean"] = torch.zeros(8)
        sd["model.2.running_var"] = torch.ones(8)
        sd["model.2.num_batches_tracked"] = torch.tensor(7)
    if part == "patchgan" and "model.3.weight" not in sd:  # instance-norm patchgan
        sd["model.3.running_mean"] = torch.zeros(16)
    return sd


@pytest.mark.parametrize("part,params,shape", CASES)
@pytest.mark.parametrize("dataparallel", [False, True])
def test_round_trip_is_bitwise(tmp_path, part, params, shape, dataparallel):
    ours = _build(part, params, seed=1)
    official = _stale_instance_stats(imtrans_to_official(part, ours.state_dict()), part)
    if dataparallel:
        official = {"module." + k: v for k, v in official.items()}
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(official, path)

    loaded, sd = convert_official(path, part, params)
    fresh = _build(part, params, seed=2)  # a differently initialised module
    x = torch.randn(*shape)
    assert not torch.equal(fresh(x), ours(x))
    fresh.load_state_dict(sd)
    loaded.eval()
    assert torch.equal(loaded(x), ours(x))
    assert torch.equal(fresh(x), ours(x))
    assert set(sd) == set(ours.state_dict())


def test_official_keys_are_the_official_names():
    g = _build("resnet", dict(ngf=8, n_blocks=9), seed=0)
    off = imtrans_to_official("resnet", g.state_dict())
    assert "model.1.weight" in off and "model.10.conv_block.1.weight" in off and "model.26.weight" in off
    u = _build("unet", dict(ngf=8, norm="batch", num_downs=5), seed=0)
    assert "model.model.1.model.3.model.3.model.3.model.1.weight" in imtrans_to_official("unet", u.state_dict())
    assert list(imtrans_to_official("pixelgan", _build("pixelgan", {}, 0).state_dict()))[0] == "net.0.weight"


def test_instance_stats_dropped_without_module_batch_stats_kept():
    sd = {
        "module.model.1.weight": torch.zeros(1),
        "module.model.2.running_mean": torch.zeros(1),  # instance norm (no affine weight)
        "module.model.5.weight": torch.zeros(1),
        "module.model.5.running_mean": torch.zeros(1),  # batch norm (has weight)
    }
    assert set(official_to_imtrans("resnet", sd)) == {"model.1.weight", "model.5.weight", "model.5.running_mean"}


def test_mismatched_file_names_the_key(tmp_path):
    g = _build("resnet", dict(ngf=8, n_blocks=2), seed=0)
    path = tmp_path / "g.pth"
    torch.save(imtrans_to_official("resnet", g.state_dict()), path)
    with pytest.raises(ImtransError, match=r"missing key 'model\.12\.conv_block\.1\.weight' \(shape \[32, 32, 3, 3\]\)"):
        convert_official(path, "resnet", dict(ngf=8, n_blocks=3))
    with pytest.raises(ImtransError, match=r"key 'model\.1\.weight' has shape \[8, 3, 7, 7\] in the file but \[16, 3, 7, 7\]"):
        convert_official(path, "resnet", dict(ngf=16, n_blocks=2))
    extra = imtrans_to_official("resnet", g.state_dict())
    extra["model.99.weight"] = torch.zeros(2, 2)
    torch.save(extra, path)
    with pytest.raises(ImtransError, match=r"unexpected key 'model\.99\.weight' \(shape \[2, 2\]\)"):
        convert_official(path, "resnet", dict(ngf=8, n_blocks=2))


def test_bad_files_are_imtrans_errors(tmp_path):
    with pytest.raises(ImtransError, match="does not exist"):
        load_official_pth(tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ImtransError, match="could not read"):
        load_official_pth(junk)
    # A pickle that needs code to load is refused by weights_only=True.
    evil = tmp_path / "evil.pth"
    torch.save({"opt": torch.optim.SGD}, evil)
    with pytest.raises(ImtransError, match="could not read"):
        load_official_pth(evil)
    notdict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], notdict)
    with pytest.raises(ImtransError, match="does not hold a state dict"):
        load_official_pth(notdict)
    wrapped = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"a": torch.ones(1)}}, wrapped)
    assert set(load_official_pth(wrapped)) == {"a"}


def test_parts_without_official_layout(tmp_path):
    with pytest.raises(ImtransError, match="no official weights layout"):
        convert_official(tmp_path / "x.pth", "timm_unet", {})
    with pytest.raises(ImtransError, match="spectrally normalised"):
        imtrans_to_official("patchgan", _build("patchgan", dict(ndf=4, spectral_norm=True), 0).state_dict())


def test_bad_params_are_reported_like_the_registry(tmp_path):
    with pytest.raises(ImtransError, match="does not accept parameter 'ngff'"):
        convert_official(tmp_path / "x.pth", "resnet", dict(ngff=8))
