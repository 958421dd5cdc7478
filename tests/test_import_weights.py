"""import-weights: official .pth -> imtrans .safetensors that `imtrans translate` loads directly."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imtrans import load_translator, registry
from imtrans.engine.checkpoint import read_meta
from imtrans.errors import ImtransError
from imtrans.nets.official import imtrans_to_official
from imtrans.translate.tiling import pad_to_multiple, to_u8, to_unit


@pytest.fixture
def official_pth(tmp_path):
    torch.manual_seed(0)
    G = registry.build("generator", "resnet", ngf=4, n_blocks=2).eval()
    sd = {"module." + k: v for k, v in imtrans_to_official("resnet", G.state_dict()).items()}  # DataParallel-style
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(sd, path)
    return path, G


def test_import_then_translate_matches_original(official_pth, tmp_path):
    from imtrans.cli import main

    pth, G = official_pth
    out = tmp_path / "G.safetensors"
    with pytest.raises(SystemExit) as e:
        main(["import-weights", str(pth), "--part", "resnet", "--set", "ngf=4", "--set", "n_blocks=2",
              "--role", "generator", "-o", str(out)])
    assert e.value.code == 0
    meta = read_meta(out)
    assert meta["translators"] == {"a2b": "G"} and meta["nets"]["G"]["spec"]["name"] == "resnet"

    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 45, 3), dtype=np.uint8))
    got = np.asarray(load_translator(out, device="cpu", precision="fp32")(img))
    x = torch.from_numpy(np.asarray(img).transpose(2, 0, 1).copy())
    xp, h, w = pad_to_multiple(to_unit(x[None]), G.size_multiple, G.min_size)
    with torch.inference_mode():
        ref = to_u8(G(xp)[..., :h, :w])[0].permute(1, 2, 0).numpy()
    assert np.array_equal(got, ref)

    # and through the CLI
    (tmp_path / "in").mkdir()
    img.save(tmp_path / "in" / "a.png")
    with pytest.raises(SystemExit) as e:
        main(["translate", str(out), str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--no-progress", "--precision", "fp32"])
    assert e.value.code == 0
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o" / "a.png")), ref)


def test_discriminator_has_no_translators(tmp_path):
    from imtrans.nets.official import import_official_weights

    torch.manual_seed(0)
    D = registry.build("discriminator", "patchgan", ndf=4, n_layers=2)
    torch.save(imtrans_to_official("patchgan", D.state_dict()), tmp_path / "D.pth")
    out = import_official_weights(tmp_path / "D.pth", "patchgan", {"ndf": 4, "n_layers": 2}, tmp_path / "D.safetensors",
                              role="discriminator")
    meta = read_meta(out)
    assert "translators" not in meta and meta["nets"]["D"]["kind"] == "discriminator"
    with pytest.raises(ImtransError, match="discriminator"):
        load_translator(out, device="cpu")


def test_mismatched_file_is_reported(official_pth, tmp_path, capsys):
    from imtrans.cli import main

    pth, _ = official_pth
    with pytest.raises(SystemExit) as e:
        main(["import-weights", str(pth), "--part", "resnet", "--set", "ngf=4", "--set", "n_blocks=9",
              "-o", str(tmp_path / "G.safetensors")])
    assert e.value.code == 1
    assert "does not fit resnet" in capsys.readouterr().err
    assert not (tmp_path / "G.safetensors").exists()


@pytest.mark.parametrize("kind", ["text", "truncated", "objects", "zip"])
def test_not_a_state_dict_never_suggests_unsafe_loading(tmp_path, capsys, kind):
    import zipfile

    from imtrans.cli import main

    f = tmp_path / "weights.bin"
    if kind == "text":
        f.write_text("not weights at all")
    elif kind == "truncated":
        torch.save({"w": torch.zeros(8)}, f)
        f.write_bytes(f.read_bytes()[:100])
    elif kind == "objects":  # a pickle of something other than tensors: weights_only refuses it
        torch.save({"opt": torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)}, f)
    else:
        with zipfile.ZipFile(f, "w") as z:
            z.writestr("a.txt", "hello")
    with pytest.raises(SystemExit) as e:
        main(["import-weights", str(f), "--part", "resnet", "-o", str(tmp_path / "G.safetensors")])
    assert e.value.code == 1
    err = capsys.readouterr().err
    assert "weights.bin" in err and "not a state dict" in err
    assert "weights_only" not in err and "Re-running" not in err and "will likely succeed" not in err
    assert not (tmp_path / "G.safetensors").exists()


def test_import_writes_the_checkpoint_weights_format(official_pth, tmp_path):
    # One writer: the imported file is byte-for-byte what save_weights writes for the same tensors and metadata.
    from imtrans.engine.checkpoint import load_weights, save_weights
    from imtrans.nets.official import import_official_weights

    pth, G = official_pth
    out = import_official_weights(pth, "resnet", {"ngf": 4, "n_blocks": 2}, tmp_path / "G.safetensors")
    meta = read_meta(out)
    ref = save_weights(tmp_path / "ref.safetensors", {"G": G}, {k: v for k, v in meta.items() if k != "format"})
    assert out.read_bytes() == ref.read_bytes()
    assert set(load_weights(out, "G")) == set(G.state_dict())
