"""Paired data: aligned layout and direction, two-folder matching, bad pairs, pair-safe augmentation."""

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from imtrans import registry
from imtrans.augment import ResizeAndCrop, to_model_range
from imtrans.data.paired import PairedDataset, PairSide, aligned, paired_folders
from imtrans.data.synthetic_paired import SyntheticPairs
from imtrans.errors import ImtransError


def solid(w, h, color):
    return Image.new("RGB", (w, h), color)


def write_aligned(path, w=32, h=16, left=(255, 0, 0), right=(0, 0, 255)):
    img = Image.new("RGB", (w, h), left)
    img.paste(solid(w - w // 2, h, right), (w // 2, 0))
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def test_aligned_layout_halves_and_direction(tmp_path):
    write_aligned(tmp_path / "facades" / "train" / "1.png")
    write_aligned(tmp_path / "facades" / "val" / "2.png", left=(0, 255, 0))
    src = registry.build("domain", "aligned", "train", root=str(tmp_path / "facades"))
    a, b = src.load_pair(0)
    assert a.size == b.size == (16, 16)
    assert a.getpixel((15, 8)) == (255, 0, 0) and b.getpixel((0, 8)) == (0, 0, 255)
    prep = lambda im: torch.from_numpy(np.array(im)).permute(2, 0, 1)  # noqa: E731
    item = PairedDataset(src, prep, direction="BtoA")[0]
    assert item["a"][2].min() == 255 and item["b"][0].min() == 255  # swapped: input is the blue (right) half
    test = aligned("test", str(tmp_path / "facades"))  # no test/: falls back to val/
    side = PairSide(test, "a", "AtoB")
    assert side.load(0).getpixel((0, 0)) == (0, 255, 0) and side.target(0).getpixel((0, 0)) == (0, 0, 255)


def test_missing_aligned_folder_names_the_download(tmp_path):
    with pytest.raises(ImtransError, match=r"imtrans data download maps --kind pix2pix"):
        aligned("train", str(tmp_path / "maps"), dataset="maps")


def test_bad_pairs_are_skipped_counted_and_named(tmp_path, caplog):
    write_aligned(tmp_path / "train" / "a_good.png")
    write_aligned(tmp_path / "train" / "b_odd.png", w=33)
    (tmp_path / "train" / "c_broken.png").write_bytes(b"not an image")
    write_aligned(tmp_path / "train" / "d_good.png")
    ds = PairedDataset(aligned("train", str(tmp_path)), lambda im: torch.zeros(1))
    with caplog.at_level(logging.WARNING, logger="imtrans.data"):
        items = [ds[i] for i in range(len(ds))]
    assert [it["a_index"] for it in items] == [0, 3, 3, 3]  # the next good pair stands in
    assert ds.skipped == 2
    assert ds.skipped_files() == {"pairs": ["b_odd.png", "c_broken.png"]}
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2 and "odd width" in warnings[0] and "c_broken.png" in warnings[1]


def test_all_bad_pairs_stop_with_one_sentence(tmp_path):
    write_aligned(tmp_path / "train" / "odd.png", w=31)
    ds = PairedDataset(aligned("train", str(tmp_path)), lambda im: torch.zeros(1))
    with pytest.raises(ImtransError, match=r"none of the 1 pairs .* can be used"):
        ds[0]


def test_two_folders_match_by_stem_and_report_unmatched(tmp_path, caplog):
    for rel, size in [("x.png", 8), ("sub/y.png", 8), ("only_a.png", 8), ("z.png", 8)]:
        (tmp_path / "A" / rel).parent.mkdir(parents=True, exist_ok=True)
        solid(size, size, (10, 20, 30)).save(tmp_path / "A" / rel)
    for rel, size in [("x.jpg", 8), ("sub/y.bmp", 8), ("only_b.png", 8), ("z.png", 12)]:
        (tmp_path / "B" / rel).parent.mkdir(parents=True, exist_ok=True)
        solid(size, size, (30, 20, 10)).save(tmp_path / "B" / rel)
    with caplog.at_level(logging.WARNING, logger="imtrans.data"):
        src = paired_folders("train", str(tmp_path / "A"), str(tmp_path / "B"))
    assert [src.name(i) for i in range(len(src))] == ["sub/y.png", "x.png", "z.png"]
    assert src.unmatched == ["only_a.png", "only_b.png"]
    assert len(caplog.records) == 1 and "only_a.png, only_b.png" in caplog.records[0].getMessage()
    ds = PairedDataset(src, lambda im: torch.zeros(1))
    assert ds[2]["a_index"] == 0 and ds.skipped_files() == {"pairs": ["z.png"]}  # halves of different sizes


def test_two_folders_without_any_match(tmp_path):
    (tmp_path / "A").mkdir()
    (tmp_path / "B").mkdir()
    solid(4, 4, (0, 0, 0)).save(tmp_path / "A" / "p.png")
    solid(4, 4, (0, 0, 0)).save(tmp_path / "B" / "q.png")
    with pytest.raises(ImtransError, match=r"no file in .* has a partner"):
        paired_folders("train", str(tmp_path / "A"), str(tmp_path / "B"))


def test_augmentation_keeps_pairs_aligned():
    """Random resize/crop/flip applied as augment(a, b): b stays a pixelwise function of a."""
    torch.manual_seed(0)
    aug = ResizeAndCrop(load_size=40, crop_size=32).train()
    a = (torch.rand(1, 3, 40, 40) * 2 - 1).repeat(16, 1, 1, 1)  # one image 16 times: outputs differ only by the draws
    b = -a.flip(1)  # a known pixelwise partner (negated, channels reversed)
    out_a, out_b = aug(a, b)
    assert out_a.shape == (16, 3, 32, 32)
    assert torch.equal(out_b, -out_a.flip(1))
    # the crops and flips really vary across the batch (otherwise the check proves nothing)
    assert len({x.flatten()[:8].tolist().__repr__() for x in out_a}) > 8
    # augmenting the halves one after the other would break the pairs
    sep_a, sep_b = aug(a), aug(b)
    assert not torch.equal(sep_b, -sep_a.flip(1))


def test_synthetic_pairs_through_the_dataset_stay_aligned():
    src = SyntheticPairs("train", count=3, size=32)
    aug = ResizeAndCrop(load_size=40, crop_size=32).train()
    ds = PairedDataset(src, aug.prepare)
    ref = PairedDataset(src, lambda im: torch.from_numpy(np.array(im.resize((40, 40), Image.Resampling.BICUBIC))).permute(2, 0, 1).contiguous())
    for i in range(3):
        item, r = ds[i], ref[i]
        assert torch.equal(item["a"], r["a"]) and torch.equal(item["b"], r["b"])
    # augment(a, b) draws exactly what augmenting the 6-channel stack draws: one crop and flip per pair
    torch.manual_seed(3)
    a = to_model_range(torch.stack([ds[i]["a"] for i in range(3)]))
    b = to_model_range(torch.stack([ds[i]["b"] for i in range(3)]))
    both = torch.cat([a, b], 1)
    oa, ob = aug(a, b)
    torch.manual_seed(3)
    ref_both = aug(both)
    assert torch.equal(torch.cat([oa, ob], 1), ref_both)
    assert SyntheticPairs("test", count=1, size=32).load_pair(0)[0].tobytes() != src.load_pair(0)[0].tobytes()


def test_check_knows_the_aligned_layout(tmp_path, capsys):
    """`imtrans check` on a correct aligned layout (ROOT/train only, like the facades download) raises no
    warning about trainA/trainB; a missing ROOT/train is named with the aligned layout's own message."""
    from conftest import ROOT

    from imtrans.cli import main

    for i in range(2):
        write_aligned(tmp_path / "facades" / "train" / f"{i}.png")
    recipe = str(ROOT / "recipes" / "pix2pix_facades.toml")
    with pytest.raises(SystemExit) as e:
        main(["check", recipe, "--set", f"data.root={tmp_path / 'facades'}"])
    assert e.value.code in (0, None)
    text = capsys.readouterr()
    assert "warning" not in text.err and "trainA" not in text.err + text.out
    assert "is valid" in text.out and "would stop" not in text.out
    with pytest.raises(SystemExit):
        main(["check", recipe, "--set", f"data.root={tmp_path / 'nowhere'}"])
    text = capsys.readouterr()
    assert "paired data folder" in text.err and "trainA" not in text.err and "would stop" in text.out
