"""pix2pix end to end: aligned data through the trainer, paired metrics, translate, bad data, the quickstart learns."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from imtrans import load_translator
from imtrans.engine.checkpoint import read_meta
from imtrans.engine.trainer import Trainer
from imtrans.errors import ImtransError
from imtrans.recipe import load_recipe, recipe_from_dict

from conftest import ROOT


@pytest.fixture(autouse=True)
def one_thread():
    """Networks this small gain nothing from a second thread, and on a busy machine they lose a lot."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def write_pairs(folder, n, w=64, h=32, seed=0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        left = rng.integers(0, 256, (h, w // 2, 3), dtype=np.uint8)
        Image.fromarray(np.concatenate([left, 255 - left], 1)).save(folder / f"{i:03d}.png")


def tiny(tmp_path, **data):
    return recipe_from_dict({
        "scheme": {"name": "pix2pix"},
        "data": {"root": str(tmp_path / "facades"), "workers": 0, "direction": "BtoA",
                 "augment": {"name": "resize_and_crop", "load_size": 36, "crop_size": 32}, **data},
        "model": {"generator": {"name": "unet", "ngf": 4, "num_downs": 5, "norm": "batch", "dropout": True},
                  "discriminator": {"name": "patchgan", "in_channels": 6, "ndf": 4, "n_layers": 1, "norm": "batch"}},
        "losses": {"gan": {"name": "gan", "mode": "vanilla"}},
        "train": {"precision": "fp32", "epochs": 1, "epochs_decay": 1, "log_every": 1, "eval_images": 4},
        "output": {"root": str(tmp_path / "runs"), "name": "p2p"},
    })


def test_aligned_run_writes_paired_metrics_and_translates(tmp_path, caplog):
    write_pairs(tmp_path / "facades" / "train", 3)
    Image.new("RGB", (63, 32)).save(tmp_path / "facades" / "train" / "zz_odd.png")  # skipped, named, counted
    write_pairs(tmp_path / "facades" / "val", 2, seed=1)
    res = Trainer(tiny(tmp_path), progress=False).fit()
    assert res.steps == 8 and res.skipped_images == 1
    assert any("zz_odd.png" in r.getMessage() and "odd width" in r.getMessage() for r in caplog.records)
    for key in ("gt_l1_a2b", "psnr_a2b", "ssim_a2b", "copy_l1_a2b", "copy_psnr_a2b", "copy_ssim_a2b"):
        assert key in res.eval_before and key in res.eval_after
    # halves are 255 - each other: copying the input is far off, and that baseline does not move with training
    assert res.eval_after["copy_l1_a2b"] > 0.3
    assert res.eval_after["copy_l1_a2b"] == res.eval_before["copy_l1_a2b"]
    records = [json.loads(line) for line in (res.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(r["kind"] == "data" and r["files"] == {"pairs": ["zz_odd.png"]} for r in records)
    assert {"D_fake", "D_real", "G_GAN", "G_L1"} <= set(next(r for r in records if r["kind"] == "train")["losses"])
    meta = read_meta(res.run_dir)
    assert meta["scheme"] == "pix2pix" and meta["translators"] == {"a2b": "G"}
    assert 'direction = "BtoA"' in meta["recipe"]
    assert (res.run_dir / "samples").is_dir() and list((res.run_dir / "samples").glob("*.png"))
    out = load_translator(res.run_dir, device="cpu", precision="fp32")(Image.new("RGB", (40, 24), (9, 99, 199)))
    assert out.size == (40, 24)


def test_all_bad_pairs_stop_with_one_sentence(tmp_path):
    (tmp_path / "facades" / "train").mkdir(parents=True)
    Image.new("RGB", (65, 32)).save(tmp_path / "facades" / "train" / "odd.png")
    with pytest.raises(ImtransError, match=r"^none of the 1 pairs .* can be used .*; fix or replace the files$"):
        Trainer(tiny(tmp_path), progress=False).fit()


def test_paired_data_refuses_a_second_domain(tmp_path):
    write_pairs(tmp_path / "facades" / "train", 1)
    r = tiny(tmp_path, b={"name": "folder", "path": str(tmp_path)})
    with pytest.raises(ImtransError, match="remove data.b"):
        Trainer(r, progress=False).fit()


def test_missing_paired_data_names_the_download(tmp_path):
    r = tiny(tmp_path, dataset="facades")
    with pytest.raises(ImtransError, match=r"imtrans data download facades --kind pix2pix"):
        Trainer(r, progress=False).fit()


@pytest.mark.slow
def test_pix2pix_quickstart_beats_the_copy_baseline(tmp_path):
    """A slice of the quickstart already brings G(labels) far closer to the photos than the labels are."""
    r = load_recipe(ROOT / "recipes" / "pix2pix_quickstart.toml",
                    ["train.max_steps=300", "train.precision=fp32", f"output.root={tmp_path}", "train.eval_images=32"])
    res = Trainer(r, progress=False).fit()
    before, after = res.eval_before, res.eval_after
    assert after["gt_l1_a2b"] < 0.5 * after["copy_l1_a2b"], after
    assert after["gt_l1_a2b"] < 0.7 * before["gt_l1_a2b"], (before, after)
    assert after["psnr_a2b"] > after["copy_psnr_a2b"] + 6, after
