"""The pix2pix test protocol (batch statistics of each image, dropout on, seeded) as the default everywhere.

The reference is the functional forward of tests/test_official_unet.py, written from the official
``UnetSkipConnectionBlock`` on the official state_dict keys: it shares no code with our network or
with :mod:`imtrans.nets.norm_mode`.
"""

from __future__ import annotations

import copy

import pytest
import torch
from PIL import Image

from imtrans import load_translator, registry
from imtrans.errors import ImtransError
from imtrans.nets.official import imtrans_to_official
from imtrans.translate.tiling import to_u8
from imtrans.zoo.catalogue import PRETRAINED, Pretrained
from imtrans.zoo.convert import convert

from test_official_unet import PARAMS, official_forward


@pytest.fixture(scope="module")
def zoo_file(tmp_path_factory):
    """A zoo pix2pix file (metadata ``scheme = pix2pix``) made by the zoo's own converter, and its official keys."""
    torch.manual_seed(0)
    G = registry.build("generator", "unet", **PARAMS)
    with torch.no_grad():  # running statistics away from 0/1, so eval and train mode differ
        for _ in range(3):
            G(torch.rand(2, 3, 256, 256) * 2 - 1)
    sd = imtrans_to_official("unet", G.state_dict())
    d = tmp_path_factory.mktemp("zoo")
    torch.save(sd, d / "facades_label2photo.pth")
    entry = Pretrained(urls=("http://127.0.0.1/facades_label2photo.pth",), architecture={"name": "unet", **PARAMS},
                       source="label maps", target="facade photos", scheme="pix2pix")
    out = d / "pix2pix_tiny.safetensors"
    out.write_bytes(convert("pix2pix_tiny", entry, d / "facades_label2photo.pth", entry.urls[0]))
    return out, sd


def _image(seed: int, size: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (3, size, size), dtype=torch.uint8, generator=g)


def _official_u8(img: torch.Tensor, sd, train: bool, seed: int = 0) -> torch.Tensor:
    x = img.float().unsqueeze(0) / 127.5 - 1
    torch.manual_seed(seed)
    with torch.no_grad():
        return to_u8(official_forward(x, sd, 8, train=train))[0].permute(1, 2, 0)


def test_zoo_pix2pix_model_runs_the_official_test_forward_by_default(zoo_file):
    path, sd = zoo_file
    t = load_translator(path, device="cpu", precision="fp32")
    img = _image(1)
    ours = torch.from_numpy(t.translate_batch([img])[0])
    # the official test.py without --eval, batch 1: batch statistics of the image, dropout with the same seed
    assert torch.equal(ours, _official_u8(img, sd, train=True))
    assert not torch.equal(ours, _official_u8(img, sd, train=False))
    assert t.norm_mode == "train" and t.backend_name == "torch"
    ev = load_translator(path, device="cpu", precision="fp32", norm_mode="eval")
    assert ev.norm_mode == "eval"
    assert torch.equal(torch.from_numpy(ev.translate_batch([img])[0]), _official_u8(img, sd, train=False))


def test_dropout_is_on_and_reproducible_under_a_seed(zoo_file):
    path, _ = zoo_file
    img = _image(2)
    a = load_translator(path, device="cpu", precision="fp32").translate_batch([img])[0]
    again = load_translator(path, device="cpu", precision="fp32").translate_batch([img])[0]
    other = load_translator(path, device="cpu", precision="fp32", seed=1).translate_batch([img])[0]
    assert (a == again).all()  # seeded: the same on every call
    assert (a != other).mean() > 0.05  # only the dropout masks depend on the seed: dropout is active


def test_batching_and_order_do_not_change_an_image(zoo_file):
    path, _ = zoo_file
    imgs = [_image(s) for s in (3, 4, 5)]
    one = load_translator(path, device="cpu", precision="fp32", batch_size=1)
    three = load_translator(path, device="cpu", precision="fp32", batch_size=3)
    alone = [one.translate_batch([x])[0] for x in imgs]
    together = three.translate_batch(imgs[::-1])[::-1]
    for x, y in zip(alone, together):
        assert (x == y).all()
    assert one.norm_mode == three.norm_mode == "train"  # the protocol whose statistics could depend on the batch
    state = {k: v.clone() for k, v in three.net.state_dict().items()}
    three.translate_batch(imgs)
    assert all(torch.equal(v, state[k]) for k, v in three.net.state_dict().items())  # running stats untouched


def test_onnx_backend_cannot_run_the_protocol(zoo_file):
    path, _ = zoo_file
    with pytest.raises(ImtransError, match=r"--norm-mode train.*--backend torch"):
        load_translator(path, device="cpu", precision="fp32", backend="onnxruntime")
    with pytest.raises(ImtransError, match="--norm-mode 'batch' is not one of auto, train, eval"):
        load_translator(path, device="cpu", norm_mode="batch")


def test_tiles_use_whole_image_batch_statistics(zoo_file):
    path, _ = zoo_file
    t = load_translator(path, device="cpu", precision="fp32", tile=256, overlap=64)
    img = _image(6, 512)
    first = t.translate_tensor(img, tiled=True)
    torch.manual_seed(123)  # the global stream does not reach the seeded dropout of tiles or of the statistics pass
    assert (first == t.translate_tensor(img, tiled=True)).all()
    no_drop = copy.deepcopy(t.net)
    for m in no_drop.modules():
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    t.net = no_drop
    dark_bright = _image(6, 512) // 4
    dark_bright[:, :, 256:] += 190  # a dark and a bright half: one tile's own statistics are far from the image's
    whole = torch.from_numpy(t.translate_tensor(dark_bright, tiled=False)).float()
    tiled = torch.from_numpy(t.translate_tensor(dark_bright, tiled=True)).float()
    t._instance_norm = False  # what tiles would give with their own batch statistics
    per_tile = torch.from_numpy(t.translate_tensor(dark_bright, tiled=True)).float()
    # statistics of the whole image (exact here: 512 px <= norm_stats_size) for every tile; what remains
    # is the border effect of the tiles, as with instance norm (measured 1.7 vs 4.3 grey levels)
    assert (whole - tiled).abs().mean() < 0.6 * (whole - per_tile).abs().mean()
    assert t.norm_mode == "train"


def test_every_zoo_pix2pix_entry_is_marked_pix2pix():
    from imtrans.nets.norm_mode import published_norm_mode

    entries = {n: e for n, e in PRETRAINED.items() if n.startswith("pix2pix_")}
    assert entries and all(e.scheme == "pix2pix" for e in entries.values())
    assert published_norm_mode({"scheme": "pix2pix"}) == "train"


@pytest.mark.parametrize("meta,want", [
    ({"scheme": "pix2pix"}, "train"),  # zoo files and runs from before test_mode was recorded
    ({"scheme": "pix2pix", "recipe": '[scheme]\nname = "pix2pix"\ntest_mode = "eval"\n'}, "eval"),
    ({"scheme": "pix2pix", "test_mode": "eval"}, "eval"),
    ({"scheme": "cyclegan"}, "eval"),
    ({}, "eval"),  # a hand-imported file: nothing says how it was trained
])
def test_published_norm_mode_from_metadata(meta, want):
    from imtrans.nets.norm_mode import published_norm_mode

    assert published_norm_mode(meta) == want


def test_cli_translate_says_which_protocol_and_takes_norm_mode(zoo_file, tmp_path, capsys):
    from imtrans.cli import main

    path, _ = zoo_file
    Image.fromarray(_image(7).permute(1, 2, 0).numpy()).save(tmp_path / "in.png")
    outs = {}
    for mode in ("auto", "eval"):
        with pytest.raises(SystemExit) as e:
            main(["translate", str(path), str(tmp_path / "in.png"), "-o", str(tmp_path / mode),
                  "--norm-mode", mode, "--precision", "fp32", "--no-progress"])
        assert e.value.code in (0, None)
        text = capsys.readouterr()
        assert ("pix2pix test protocol" if mode == "auto" else "eval mode") in text.err
        outs[mode] = (tmp_path / mode / "in.png").read_bytes()
    assert outs["auto"] != outs["eval"]


def _tiny_pix2pix(tmp_path):
    """A pix2pix scheme (batch norm, dropout), its augmentation and held-out synthetic pairs."""
    from imtrans.engine.data import build_paired
    from imtrans.recipe import recipe_from_dict

    r = recipe_from_dict({
        "scheme": {"name": "pix2pix"},
        "data": {"a": {"name": "synthetic_paired", "count": 6, "size": 32}, "workers": 0,
                 "augment": {"name": "none", "flip": False}},
        "model": {"generator": {"name": "unet", "ngf": 4, "num_downs": 5, "norm": "batch", "dropout": True},
                  "discriminator": {"name": "patchgan", "in_channels": 6, "ndf": 4, "n_layers": 1}},
        "train": {"precision": "fp32"},
        "output": {"root": str(tmp_path), "name": "p2p"},
    })
    torch.manual_seed(0)
    scheme = registry.build_spec("scheme", r.scheme.as_dict(), r)
    augment = registry.build_spec("augmentation", r.data.augment.as_dict())
    _, domains = build_paired(r, augment.prepare)
    a = torch.rand(2, 3, 32, 32) * 2 - 1
    scheme.setup({"a": a, "b": a})
    scheme.train_step({"a": a, "b": a})  # running statistics away from 0/1
    return scheme, augment, domains


def test_paired_metrics_do_not_depend_on_the_evaluation_batch(tmp_path):
    from imtrans.engine.paired_eval import paired_metrics

    scheme, augment, domains = _tiny_pix2pix(tmp_path)
    cpu = torch.device("cpu")
    by8 = paired_metrics(scheme.test_forward, domains["test_a"], augment, cpu, n=6, batch=8)
    by1 = paired_metrics(scheme.test_forward, domains["test_a"], augment, cpu, n=6, batch=1)
    assert by8 == by1


def test_in_training_fid_translates_with_the_schemes_protocol(tmp_path, monkeypatch):
    """The FID that picks checkpoints/best sees the same G(x) as the paired metrics: batch statistics of
    the image, seeded dropout, the run's precision."""
    import imtrans.eval
    from imtrans.augment import to_model_range
    from imtrans.engine.evaluator import Evaluator

    scheme, augment, domains = _tiny_pix2pix(tmp_path)
    seen = {}

    def fake_fid(translate, src, dst, extractor, **kw):
        seen["translate"] = translate
        return {"fid": 0.0, "kid_mean": 0.0, "kid_std": 0.0}

    monkeypatch.setattr(imtrans.eval, "fid_kid_for_run", fake_fid)
    ev = Evaluator(domains, augment, torch.device("cpu"))
    ev._fid_kid(scheme, "a2b", domains["test_a"], domains["test_b"])
    imgs = [augment.prepare(domains["test_a"].load(i)) for i in range(3)]
    got = seen["translate"](imgs)
    want = to_u8(scheme.test_forward(to_model_range(torch.stack(imgs), torch.device("cpu"))))
    for g, w in zip(got, want):
        assert torch.equal(torch.from_numpy(g), w.permute(1, 2, 0))


def test_official_default_pix2pix_recipes_train_in_fp32():
    """The official code trains in fp32; recipes that claim its defaults must not pick bf16/fp16 by hardware."""
    from conftest import ROOT

    from imtrans.recipe import load_recipe

    names = sorted(p.name for p in (ROOT / "recipes").glob("pix2pix_*.toml") if p.name != "pix2pix_quickstart.toml")
    assert "pix2pix_base.toml" in names and "pix2pix_facades.toml" in names
    for name in names:
        assert load_recipe(ROOT / "recipes" / name).train.precision == "fp32", name
    # the offline quickstart is no official-defaults recipe and keeps the fast choice
    assert load_recipe(ROOT / "recipes" / "pix2pix_quickstart.toml").train.precision == "auto"
