"""Decoding policy of imtrans.data.imageio: modes, EXIF, failures, listing."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from imtrans.data.imageio import (
    IMAGE_EXTENSIONS,
    ImageDecodeError,
    list_images,
    open_rgb,
    pil_to_uint8_tensor,
    tensor_to_pil,
)
from imtrans.errors import ImtransError


def _save(img, path, **kw):
    img.save(path, **kw)
    return path


def test_rgb_roundtrip(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    p = _save(Image.fromarray(arr), tmp_path / "x.png")
    img = open_rgb(p)
    assert img.mode == "RGB" and img.size == (7, 5)
    assert np.array_equal(np.asarray(img), arr)


def test_rgba_composited_on_white(tmp_path):
    img = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    img.putpixel((0, 0), (0, 0, 255, 255))
    out = np.asarray(open_rgb(_save(img, tmp_path / "a.png")))
    assert tuple(out[1, 1]) == (255, 255, 255)
    assert tuple(out[0, 0]) == (0, 0, 255)


def test_palette_with_transparency_and_la(tmp_path):
    p = Image.new("P", (3, 3), 0)
    p.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    p.putpixel((1, 1), 1)
    p.info["transparency"] = 0
    out = np.asarray(open_rgb(_save(p, tmp_path / "p.png", transparency=0)))
    assert tuple(out[0, 0]) == (255, 255, 255) and tuple(out[1, 1]) == (10, 200, 30)
    la = Image.new("LA", (2, 2), (100, 255))
    assert tuple(np.asarray(open_rgb(_save(la, tmp_path / "la.png")))[0, 0]) == (100, 100, 100)


def test_grey_cmyk_and_16bit(tmp_path):
    assert open_rgb(_save(Image.new("L", (2, 2), 7), tmp_path / "l.png")).getpixel((0, 0)) == (7, 7, 7)
    cmyk = Image.new("CMYK", (2, 2), (0, 255, 255, 0))
    assert open_rgb(_save(cmyk, tmp_path / "c.tif")).getpixel((0, 0)) == (255, 0, 0)
    a16 = np.array([[0, 65535], [32896, 257]], dtype=np.uint16)
    img16 = Image.fromarray(a16)
    out = np.asarray(open_rgb(_save(img16, tmp_path / "g16.png")))[:, :, 0]
    assert out.tolist() == [[0, 255], [128, 1]]  # scaled by 1/257, not clipped


def test_float_image(tmp_path):
    f = Image.fromarray(np.array([[0.0, 1.0]], dtype=np.float32), mode="F")
    out = np.asarray(open_rgb(_save(f, tmp_path / "f.tif")))[:, :, 0]
    assert out.tolist() == [[0, 255]]


def test_exif_orientation(tmp_path):
    img = Image.new("RGB", (6, 2), (0, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    p = tmp_path / "o.jpg"
    img.save(p, exif=exif)
    assert open_rgb(p).size == (2, 6)


def test_failures_name_file_and_reason(tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(ImageDecodeError, match="empty.jpg.*zero bytes"):
        open_rgb(empty)
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"this is not an image at all")
    with pytest.raises(ImageDecodeError, match="junk.png.*not an image"):
        open_rgb(junk)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(ImageDecodeError, match="trunc.png.*truncated"):
        open_rgb(trunc)
    with pytest.raises(ImageDecodeError, match="does not exist"):
        open_rgb(tmp_path / "missing.png")
    big = _save(Image.new("RGB", (20, 20)), tmp_path / "big.png")
    with pytest.raises(ImageDecodeError, match="too large"):
        open_rgb(big, max_pixels=100)
    assert issubclass(ImageDecodeError, ImtransError)


def test_list_images_sorted_case_insensitive(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / ".hidden").mkdir()
    for n in ["b.PNG", "a.jpg", "sub/c.JpEg", "notes.txt", ".hidden/d.png", "._e.jpg"]:
        (tmp_path / n).write_bytes(b"x")
    rel = [p.relative_to(tmp_path).as_posix() for p in list_images(tmp_path)]
    assert rel == ["a.jpg", "b.PNG", "sub/c.JpEg"]
    assert [p.name for p in list_images(tmp_path, recursive=False)] == ["a.jpg", "b.PNG"]
    assert ".tiff" in IMAGE_EXTENSIONS


def test_tensor_conversions():
    img = Image.fromarray(np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3))
    t = pil_to_uint8_tensor(img)
    assert t.dtype == torch.uint8 and t.shape == (3, 2, 3)
    back = tensor_to_pil(t.float() / 127.5 - 1)
    assert np.array_equal(np.asarray(back), np.asarray(img))
    assert tensor_to_pil(torch.zeros(1, 1, 2, 2)).mode == "L"


def test_palette_without_transparency_becomes_rgb(tmp_path):
    from PIL import Image

    from imtrans.data.imageio import open_rgb

    p = tmp_path / "p.png"
    Image.new("RGB", (8, 6), (10, 200, 30)).convert("P", palette=Image.Palette.ADAPTIVE).save(p)
    img = open_rgb(p)
    assert img.mode == "RGB" and img.size == (8, 6)
    assert img.getpixel((0, 0)) == (10, 200, 30)
