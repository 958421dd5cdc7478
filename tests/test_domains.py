"""Folder and layout domains, and their registration through the registry."""

import pytest
from PIL import Image

from imtrans.data import DOMAINS, FolderDomain
from imtrans.errors import ImtransError


def _img(path, color=(10, 20, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 4), color).save(path)


def test_folder_lists_loads_and_names(tmp_path):
    _img(tmp_path / "b.png")
    _img(tmp_path / "sub" / "a.jpg")
    d = DOMAINS["folder"]("train", path=str(tmp_path))
    assert len(d) == 2 and [d.name(i) for i in range(2)] == ["b.png", "sub/a.jpg"]
    assert d.load(0).mode == "RGB" and d.load(0).getpixel((0, 0)) == (10, 20, 30)
    assert len(DOMAINS["folder"]("train", path=str(tmp_path), recursive=False)) == 1


def test_folder_errors(tmp_path):
    with pytest.raises(ImtransError, match="does not exist"):
        DOMAINS["folder"]("train", path=str(tmp_path / "nope"))
    with pytest.raises(ImtransError, match="no images"):
        DOMAINS["folder"]("train", path=str(tmp_path))


@pytest.mark.parametrize("spelling", ["trainA", "train_A", "train_a"])
def test_layout_spellings(tmp_path, spelling):
    _img(tmp_path / spelling / "x.png")
    d = DOMAINS["layout"]("train", root=str(tmp_path), side="a")
    assert isinstance(d, FolderDomain) and len(d) == 1


def test_layout_missing_names_folder_and_download(tmp_path):
    root = tmp_path / "horse2zebra"
    with pytest.raises(ImtransError) as e:
        DOMAINS["layout"]("test", root=str(root), side="b", dataset="horse2zebra")
    msg = str(e.value)
    assert "testB" in msg and f"imtrans data download horse2zebra --root {tmp_path.as_posix()}" in msg


def test_registry_builds_domains(tmp_path):
    from imtrans import registry

    try:
        reg = registry.get_registry("domain")
    except Exception as e:  # other parts of the package may still be in progress
        pytest.skip(f"plugins not loadable yet: {e}")
    if "synthetic" not in reg:
        pytest.skip("built-in domains not registered")
    d = reg.build("synthetic", "test", count=3, size=16)
    assert len(d) == 3 and d._imtrans_spec["task"] == "stripes"
    with pytest.raises(ImtransError):
        reg.build("synthetic", "train", task="zebra")
