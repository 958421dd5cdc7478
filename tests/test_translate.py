"""Batch translation: any mode/size, broken files, tiling, resume, safe output paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from imtrans import load_translator, registry
from imtrans.engine.checkpoint import save_checkpoint
from imtrans.errors import ImtransError
from imtrans.translate import Translator


def tiny_gen(seed: int = 0, **kw):
    """A random tiny resnet whose output is far from its input and from a flat image.

    The last convolution's weights are scaled up: at the default init the
    output is a faint grey, which would let a translator that drops or
    misplaces the network's work (identity, seams, wrong crop) pass.
    """
    torch.manual_seed(seed)
    G = registry.build("generator", "resnet", ngf=4, n_blocks=1, **kw).eval()
    with torch.no_grad():
        G.model[-2].weight.mul_(4)
    return G


def oracle(G, rgb: np.ndarray) -> np.ndarray:
    """What G makes of an ``[H, W, 3]`` uint8 image, computed without the Translator.

    Written from the documented contract: [-1, 1] scaling, reflect padding at
    the bottom/right to a multiple of 4, crop back, round to uint8.
    """
    h, w = rgb.shape[:2]
    x = torch.from_numpy(rgb.astype(np.float32) / 127.5 - 1).permute(2, 0, 1)[None]
    x = torch.nn.functional.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect")
    with torch.no_grad():
        y = G(x)[0, :, :h, :w]
    return ((y.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()


def assert_translated(got: np.ndarray, rgb: np.ndarray, G, name: str = "") -> None:
    """``got`` is G's translation of ``rgb`` (within 1 level of rounding), and far from a copy."""
    want = oracle(G, rgb)
    assert got.shape == want.shape, name
    assert np.abs(got.astype(int) - want).max() <= 1, name
    assert np.abs(want.astype(int) - rgb).mean() > 20, f"{name}: the generator output is too close to its input"
    assert want.std() > 20, f"{name}: the generator output is nearly flat"


@pytest.fixture
def run_dir(tmp_path):
    G, F = tiny_gen(0), tiny_gen(1)
    meta = {"nets": {n: {"kind": "generator", "spec": g.imtrans_part.spec} for n, g in (("G", G), ("F", F))},
            "translators": {"a2b": "G", "b2a": "F"}}
    save_checkpoint(tmp_path / "run" / "checkpoints" / "latest", {"G": G, "F": F}, meta, None)
    return tmp_path / "run"


def _rng_img(shape, seed=0, dtype=np.uint8, hi=256):
    return np.random.default_rng(seed).integers(0, hi, shape).astype(dtype)


@pytest.fixture
def mixed_folder(tmp_path):
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    good = {
        "rgb.jpg": Image.fromarray(_rng_img((40, 52, 3), 1)),
        "sub/gray.png": Image.fromarray(_rng_img((33, 47), 2), mode="L"),
        "rgba.png": Image.fromarray(_rng_img((32, 36, 4), 3), mode="RGBA"),
        "pal.png": Image.fromarray(_rng_img((45, 30, 3), 4)).convert("P"),
        "deep.png": Image.fromarray(_rng_img((30, 41), 5, np.uint16, 65536)).convert("I;16"),
        "same1.png": Image.fromarray(_rng_img((40, 52, 3), 6)),
    }
    for name, im in good.items():
        im.save(src / name)
    (src / "zero.jpg").write_bytes(b"")
    (src / "notes.png").write_text("this is not an image")
    data = (src / "rgb.jpg").read_bytes()
    (src / "sub" / "trunc.jpg").write_bytes(data[: len(data) // 3])
    return src, good, {"zero.jpg", "notes.png", "sub/trunc.jpg"}


def _expected_rgb(path) -> np.ndarray:
    """The 8-bit RGB picture the network should see, by the documented rules, with plain PIL/numpy."""
    im = Image.open(path)
    if im.mode == "I;16" or im.mode == "I":
        return np.repeat(np.rint(np.asarray(im, dtype=np.float64) / 257).astype(np.uint8)[..., None], 3, axis=2)
    if im.mode == "RGBA":  # composited on white
        return np.asarray(Image.alpha_composite(Image.new("RGBA", im.size, (255,) * 4), im).convert("RGB"))
    return np.asarray(im.convert("RGB"))


def test_folder_mixed_modes_and_broken_files(run_dir, mixed_folder, tmp_path):
    src, good, broken = mixed_folder
    t = load_translator(run_dir, direction="a2b", device="cpu", precision="fp32", batch_size=2)
    rep = t.translate_folder(src, tmp_path / "out")
    assert len(rep.ok) == len(good), rep.failed
    G = tiny_gen(0)  # the run's a2b generator, rebuilt independently of the checkpoint
    for name, im in good.items():
        out = Image.open((tmp_path / "out" / name).with_suffix(".png"))
        assert out.size == im.size, name
        assert_translated(np.asarray(out.convert("RGB")), _expected_rgb(src / name), G, name)
    # alpha re-attached, unchanged
    out = Image.open(tmp_path / "out" / "rgba.png")
    assert out.mode == "RGBA"
    assert np.array_equal(np.asarray(out)[..., 3], np.asarray(good["rgba.png"])[..., 3])
    failed = {p.relative_to(src).as_posix(): reason for p, reason in rep.failed}
    assert set(failed) == broken
    assert "empty" in failed["zero.jpg"]
    assert "not an image" in failed["notes.png"]
    assert "truncated" in failed["sub/trunc.jpg"]
    # no temp files left behind
    assert not [p for p in (tmp_path / "out").rglob(".*")]


def test_cli_exit_code_and_skip_existing(run_dir, mixed_folder, tmp_path, capsys):
    from imtrans.cli import main

    src, good, broken = mixed_folder
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as e:
        main(["translate", str(run_dir), str(src), "-o", str(out), "--no-progress", "--precision", "fp32",
              "--format", "jpg", "--suffix", "_x"])
    assert e.value.code == 1
    text = capsys.readouterr()
    assert "notes.png" in text.out + text.err and "zero.jpg" in text.out + text.err
    assert (out / "sub" / "gray_x.jpg").is_file()
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")}
    assert len(mtimes) == len(good)

    # resume: the good files are all skipped, nothing is rewritten
    t = load_translator(run_dir, device="cpu", precision="fp32")
    rep = t.translate_folder(src, out, format="jpg", suffix="_x", skip_existing=True)
    assert rep.ok == [] and len(rep.skipped) == len(good)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.jpg")} == mtimes

    # only good files: exit 0
    with pytest.raises(SystemExit) as e:
        main(["translate", str(run_dir), str(src / "rgb.jpg"), "-o", str(tmp_path / "o2"), "--no-progress",
              "--direction", "b2a"])
    assert e.value.code == 0
    assert (tmp_path / "o2" / "rgb.png").is_file()


@pytest.mark.parametrize("suffix", ["/../../../escaped", "../escaped", "_a/b", "..\\escaped"])
def test_suffix_that_is_not_a_file_name_is_refused(run_dir, mixed_folder, tmp_path, capsys, suffix):
    from imtrans.cli import main

    src, _, _ = mixed_folder
    t = load_translator(run_dir, device="cpu", precision="fp32")
    with pytest.raises(ImtransError, match="--suffix"):
        t.translate_folder(src, tmp_path / "out", suffix=suffix)
    assert not (tmp_path / "out").exists() and not list(tmp_path.rglob("*escaped*"))
    with pytest.raises(SystemExit) as e:
        main(["translate", str(run_dir), str(src), "-o", str(tmp_path / "out"), "--suffix", suffix, "--no-progress"])
    assert e.value.code == 1
    assert "not part of a file name" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_output_outside_the_folder_is_refused(tmp_path):
    from pathlib import Path

    from imtrans.translate.io import output_path

    with pytest.raises(ImtransError, match="outside the output folder"):
        output_path(tmp_path / "out", Path("../../x.jpg"), "", "png")
    assert output_path(tmp_path / "out", Path("a/x.jpg"), "_z", "png") == (tmp_path / "out" / "a" / "x_z.png").resolve()


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_tiled_matches_whole_image(norm):
    # Receptive-field radius of resnet(ngf=4, n_blocks=1) is ~23 px; tiles of 96 px with
    # 48 px overlap put the zero-weight margin (12 px) plus the cosine rise over it, and
    # instance-norm statistics are taken from the whole image (it fits norm_stats_size),
    # so the only differences are the far tail of the receptive field: we allow 2 of 255
    # levels anywhere (1 for rounding) and a tiny mean.
    G = tiny_gen(3, norm=norm)
    if norm == "batch":
        # Running statistics measured on images like the test's, so that eval-mode batch norm
        # normalises (with the init's tiny weights and unit statistics the output is flat grey).
        bns = [m for m in G.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
        G.train()
        with torch.no_grad():
            G(torch.rand(4, 3, 128, 148, generator=torch.Generator().manual_seed(8)) * 2 - 1)
        G.eval()
    t = Translator(G, device="cpu", precision="fp32", tile=96, overlap=48)
    img = Image.fromarray(_rng_img((20, 25, 3), 7)).resize((150, 130), Image.Resampling.BICUBIC)
    whole = np.asarray(t(img, tiled=False))
    assert_translated(whole, np.asarray(img), G)  # the whole-image path is the network, not a copy
    tiled = np.asarray(t(img, tiled=True)).astype(int)
    assert tiled.shape == (130, 150, 3)
    d = np.abs(oracle(G, np.asarray(img)).astype(int) - tiled)
    assert d.max() <= 2 and d.mean() < 0.05


def test_tiles_used_automatically_and_size_option(tmp_path):
    G = tiny_gen(4)
    t = Translator(G, device="cpu", precision="fp32", tile=64, overlap=32, size=48)
    img = Image.fromarray(_rng_img((50, 90, 3), 8))
    out = t(img)
    assert out.size == (86, 48)  # short side resized to 48
    t2 = Translator(G, device="cpu", precision="fp32", tile=64, overlap=32)
    calls = []
    orig = t2.translate_tiled
    t2.translate_tiled = lambda x: calls.append(x.shape) or orig(x)
    big = Image.fromarray(_rng_img((70, 130, 3), 9))
    assert t2(big).size == (130, 70) and calls
    assert t2(Image.fromarray(_rng_img((30, 30, 3), 9))).size == (30, 30) and len(calls) == 1


def test_api_odd_and_tiny_sizes_and_precision():
    t = Translator(tiny_gen(5), device="cpu", precision="bf16")
    for size in [(1, 1), (3, 7), (17, 9)]:
        img = Image.fromarray(_rng_img((size[1], size[0], 3), 10))
        assert t(img).size == size
    pal = Image.fromarray(_rng_img((20, 28, 3), 11)).convert("P")
    assert t(pal).size == (28, 20)
    rgba = Image.fromarray(_rng_img((20, 28, 4), 12), mode="RGBA")
    out = t(rgba)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], np.asarray(rgba)[..., 3])


def test_direction_errors(run_dir, tmp_path):
    with pytest.raises(ImtransError, match="direction"):
        load_translator(run_dir, direction="x2y", device="cpu")
    with pytest.raises(ImtransError):
        load_translator(tmp_path / "nope", device="cpu")


def test_glob_and_file_inputs(run_dir, mixed_folder, tmp_path):
    src, _, _ = mixed_folder
    t = load_translator(run_dir, device="cpu", precision="fp32")
    rep = t.translate_folder([str(src / "sub" / "*.png"), src / "rgb.jpg"], tmp_path / "o", format="webp")
    assert sorted(p.name for _, p in rep.ok) == ["gray.webp", "rgb.webp"] and not rep.failed


def test_palette_images_translate_like_their_rgb(tmp_path):
    # Palette (P) images, opaque and with a transparent entry, through the API and the folder path:
    # the network sees the palette colours (composited on white where transparent), alpha comes back.
    G = tiny_gen(6)
    t = Translator(G, device="cpu", precision="fp32")
    rgb = Image.fromarray(_rng_img((24, 28, 3), 13))
    opaque = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    clear = opaque.copy()
    clear.info["transparency"] = 0
    (tmp_path / "in").mkdir()
    opaque.save(tmp_path / "in" / "opaque.png")
    clear.save(tmp_path / "in" / "clear.png", transparency=0)
    assert Image.open(tmp_path / "in" / "clear.png").mode == "P"

    seen_opaque = np.asarray(opaque.convert("RGB"))
    rgba = clear.convert("RGBA")
    assert 0 < (np.asarray(rgba)[..., 3] == 0).sum() < 24 * 28  # some pixels transparent, not all
    seen_clear = np.asarray(Image.alpha_composite(Image.new("RGBA", rgba.size, (255,) * 4), rgba).convert("RGB"))

    assert_translated(np.asarray(t(opaque)), seen_opaque, G, "opaque palette, API")
    out = t(clear)
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], np.asarray(rgba)[..., 3])
    assert_translated(np.asarray(out.convert("RGB")), seen_clear, G, "transparent palette, API")

    rep = t.translate_folder(tmp_path / "in", tmp_path / "out")
    assert len(rep.ok) == 2 and not rep.failed
    assert_translated(np.asarray(Image.open(tmp_path / "out" / "opaque.png")), seen_opaque, G, "opaque palette, folder")
    out = Image.open(tmp_path / "out" / "clear.png")
    assert out.mode == "RGBA" and np.array_equal(np.asarray(out)[..., 3], np.asarray(rgba)[..., 3])
    assert_translated(np.asarray(out.convert("RGB")), seen_clear, G, "transparent palette, folder")
