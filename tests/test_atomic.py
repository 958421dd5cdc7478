"""Atomic writes: outputs get the permissions a plain open() gives (the umask), not mkstemp's 0600."""

from __future__ import annotations

import os
import stat

import numpy as np
import pytest
import torch
from PIL import Image

from imtrans import registry
from imtrans.atomic import atomic_write_bytes, atomic_write_text
from imtrans.engine.checkpoint import WEIGHTS, save_checkpoint


@pytest.fixture(params=[0o022, 0o027, 0o002])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def plain_open_mode(tmp_path) -> int:
    """The oracle: what open() gives a new file under the current umask."""
    ref = tmp_path / "reference"
    with open(ref, "w") as f:
        f.write("x")
    m = mode(ref)
    ref.unlink()
    return m


def test_atomic_writes_respect_the_umask(tmp_path, umask):
    want = plain_open_mode(tmp_path)
    atomic_write_bytes(tmp_path / "a.bin", b"\x00\x01")
    atomic_write_text(tmp_path / "sub" / "b.txt", "hello")
    assert mode(tmp_path / "a.bin") == want == 0o666 & ~umask
    assert mode(tmp_path / "sub" / "b.txt") == want
    assert (tmp_path / "sub" / "b.txt").read_text() == "hello"
    # replacing a file keeps the rule, and leaves no temp file behind
    atomic_write_bytes(tmp_path / "a.bin", b"new")
    assert (tmp_path / "a.bin").read_bytes() == b"new" and mode(tmp_path / "a.bin") == want
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "sub"]


def test_temp_target_commits_with_the_umask_mode_or_leaves_nothing(tmp_path, umask):
    from imtrans.atomic import TempTarget

    want = plain_open_mode(tmp_path)
    (tmp_path / "v.mp4").write_bytes(b"old")
    t = TempTarget(tmp_path / "v.mp4", suffix=".tmp.mp4")
    assert t.path.name.endswith(".tmp.mp4") and t.path.parent == tmp_path
    t.path.write_bytes(b"new")
    assert (tmp_path / "v.mp4").read_bytes() == b"old"  # nothing is replaced before commit
    t.commit()
    assert (tmp_path / "v.mp4").read_bytes() == b"new" and mode(tmp_path / "v.mp4") == want
    gone = TempTarget(tmp_path / "w.gif")
    gone.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.mp4"]


def test_failed_write_leaves_the_old_file(tmp_path):
    atomic_write_bytes(tmp_path / "a.bin", b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "a.bin", object())  # type: ignore[arg-type]
    assert (tmp_path / "a.bin").read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.bin"]


def test_checkpoint_and_translated_images_respect_the_umask(tmp_path, umask):
    from imtrans.translate import Translator

    torch.manual_seed(0)
    G = registry.build("generator", "resnet", ngf=4, n_blocks=1).eval()
    meta = {"nets": {"G": {"kind": "generator", "spec": G.imtrans_part.spec}}, "translators": {"a2b": "G"}}
    dest = save_checkpoint(tmp_path / "ck" / "latest", {"G": G}, meta, {"step": torch.tensor(3)})
    want = plain_open_mode(tmp_path)
    os.mkdir(tmp_path / "refdir")
    assert mode(dest) == mode(tmp_path / "refdir") == 0o777 & ~umask
    assert mode(dest / WEIGHTS) == want and mode(dest / "state.safetensors") == want

    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((12, 16, 3), np.uint8)).save(tmp_path / "in" / "a.png")
    rep = Translator(G, device="cpu", precision="fp32").translate_folder(tmp_path / "in", tmp_path / "out", format="jpg")
    assert [mode(dst) for _, dst in rep.ok] == [want]
