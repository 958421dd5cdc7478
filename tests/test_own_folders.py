"""The README's one line for training on two folders of one's own works as printed, and `imtrans check`
says what it found in each folder (counts, sizes, unreadable files)."""

from __future__ import annotations

import json
import re
import shlex

import numpy as np
from PIL import Image

from conftest import ROOT, run_cli

# keep the README's command, made tiny: 32 px, a small generator, one step, no FID network
TINY = ["--set", "train.max_steps=1", "--set", "train.precision=fp32", "--set", "train.device=cpu",
        "--set", "data.augment.load_size=32", "--set", "data.augment.crop_size=32", "--set", "data.workers=0",
        "--set", "model.generator.ngf=4", "--set", "model.generator.n_blocks=1", "--set", "model.discriminator.ndf=4",
        "--set", "train.eval_fid=false", "--set", "train.eval_images=2"]


def readme_command() -> list[str]:
    text = (ROOT / "README.md").read_text()
    lines = [line for line in text.splitlines() if line.startswith("imtrans run ") and "data.a.path=" in line]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])


def make_folders(tmp_path):
    rng = np.random.default_rng(0)
    for side, n, size in (("horses", 5, (48, 40)), ("zebras", 4, (40, 40))):
        d = tmp_path / side
        d.mkdir()
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(d / f"{i}.png")
    Image.fromarray(np.zeros((60, 50, 3), np.uint8)).save(tmp_path / "zebras" / "big.jpg")
    (tmp_path / "zebras" / "broken.jpg").write_bytes(b"not a jpeg")


def test_the_readme_command_for_two_folders_trains(tmp_path):
    make_folders(tmp_path)
    cmd = readme_command()
    assert cmd[:3] == ["imtrans", "run", "recipes/cyclegan_base.toml"]
    args = [cmd[1], str(ROOT / cmd[2]), *cmd[3:], "--set", f"output.root={tmp_path / 'runs'}"]
    check = run_cli("check", *args[1:], cwd=tmp_path)
    assert check.returncode == 0, check.stderr
    assert "data.a: 5 images in horses, 48x40 px" in check.stderr
    assert ("data.b: 6 images in zebras, 2 sizes from 40x40 to 50x60 px (most: 40x40, 4 images); "
            "1 unreadable (training skips them): broken.jpg") in check.stderr
    assert "data.test_a: the same folder as data.a" in check.stderr
    r = run_cli(*args, *TINY, "--no-progress", cwd=tmp_path, env={"OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr
    run = tmp_path / "runs" / "horses2zebras"
    recs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in recs if x["kind"] == "train"] == [1]
    assert re.search(r"finished after 1 steps", r.stdout)
