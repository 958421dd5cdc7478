"""`imtrans demo`: the page served on 127.0.0.1 and driven through Gradio's client API."""

from __future__ import annotations

import shutil
import socket
import subprocess

import numpy as np
import pytest
import torch
from PIL import Image

from imtrans import load_translator, registry
from imtrans.data.synthetic import SyntheticDomain
from imtrans.engine.checkpoint import save_checkpoint

gr = pytest.importorskip("gradio")
gradio_client = pytest.importorskip("gradio_client")

from imtrans.demo import DemoModel  # noqa: E402
from imtrans.demo.app import host_warning, launch  # noqa: E402
from imtrans.demo.model import heldout_examples  # noqa: E402

RECIPE = """
description = "tiny demo test model"
[data]
dataset = "horse2zebra"
[data.a]
name = "synthetic"
task = "stripes"
side = "a"
count = 8
size = 32
[data.b]
name = "synthetic"
task = "stripes"
side = "b"
count = 8
size = 32
"""

MAX_PIXELS = 100_000
MAX_MB = 0.25


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    torch.manual_seed(0)
    G = registry.build("generator", "resnet", ngf=4, n_blocks=1).eval()
    F = registry.build("generator", "resnet", ngf=4, n_blocks=1).eval()
    root = tmp_path_factory.mktemp("demo") / "run"
    meta = {"scheme": "cyclegan", "step": 7, "epoch": 1, "recipe": RECIPE,
            "nets": {n: {"kind": "generator", "spec": g.imtrans_part.spec} for n, g in (("G", G), ("F", F))},
            "translators": {"a2b": "G", "b2a": "F"}}
    save_checkpoint(root / "checkpoints" / "latest", {"G": G, "F": F}, meta, None)
    return root


@pytest.fixture(scope="module")
def served(run_dir):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    model = DemoModel(run_dir, device="cpu", precision="fp32", max_pixels=MAX_PIXELS, max_upload_mb=MAX_MB)
    demo = launch(model, host="127.0.0.1", port=port, block=False, quiet=True)
    url = f"http://127.0.0.1:{port}/"
    yield model, gradio_client.Client(url, verbose=False), url
    demo.close()


def _noise_png(path, w, h, seed=0):
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("direction", ["a2b", "b2a"])
def test_client_gets_the_same_pixels_as_load_translator(served, run_dir, tmp_path, direction):
    _model, client, _url = served
    src = _noise_png(tmp_path / "in.png", 70, 50, seed=1)
    out = client.predict(gradio_client.handle_file(str(src)), direction, api_name="/translate")
    ref = load_translator(run_dir, direction=direction, device="cpu", precision="fp32")(Image.open(src))
    got = Image.open(out)
    assert got.size == (70, 50) and got.mode == "RGB"
    assert np.array_equal(np.asarray(got), np.asarray(ref))


def test_oversized_uploads_get_a_readable_error(served, tmp_path):
    _model, client, _url = served
    # few bytes, many pixels: the decompression-bomb guard, not the file size, refuses it
    Image.new("RGB", (500, 400), (10, 200, 30)).save(tmp_path / "wide.png")
    with pytest.raises(Exception) as e:
        client.predict(gradio_client.handle_file(str(tmp_path / "wide.png")), "a2b", api_name="/translate")
    msg = str(e.value)
    assert "too large" in msg and "500x400" in msg and "--max-pixels" in msg and "Traceback" not in msg
    # not an image at all
    (tmp_path / "fake.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 20)
    with pytest.raises(Exception) as e:
        client.predict(gradio_client.handle_file(str(tmp_path / "fake.png")), "a2b", api_name="/translate")
    assert "cannot be read as an image" in str(e.value)


def test_file_size_guard(run_dir, tmp_path):
    m = DemoModel(run_dir, device="cpu", precision="fp32", max_pixels=MAX_PIXELS, max_upload_mb=MAX_MB)
    big = _noise_png(tmp_path / "noise.png", 300, 300)  # 90k pixels (allowed) but ~270 kB of noise (> 0.25 MB)
    with pytest.raises(Exception, match=r"upload is too large \(0\.26 MB, limit 0\.25 MB\)"):
        m.translate_file(big, "a2b")


def test_page_shows_model_facts_and_heldout_examples(served, tmp_path):
    model, _client, url = served
    import urllib.request

    config = urllib.request.urlopen(url + "config", timeout=30).read().decode()
    for fact in ("cyclegan", "**step** 7", "resnet", "synthetic stripes task", "horse2zebra", "horse → zebra"):
        assert fact in config, fact
    assert "pretrained=" not in config  # an empty setting said "pretrained=)"
    ex = heldout_examples(model.meta, model.directions, tmp_path, n=2)
    assert [e.direction for e in ex] == ["a2b", "a2b", "b2a", "b2a"]
    want = SyntheticDomain("test", task="stripes", side="b", count=8, size=32).load(1)
    assert np.array_equal(np.asarray(Image.open(ex[3].path)), np.asarray(want))


def test_launch_prints_its_address_not_gradios_share_hint(run_dir, capfd):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    model = DemoModel(run_dir, device="cpu", precision="fp32")
    demo = launch(model, host="127.0.0.1", port=port, block=False, examples=[])
    try:
        out, err = capfd.readouterr()
        assert "share=True" not in out + err  # imtrans demo has no such option
        assert f"http://127.0.0.1:{port}" in err
    finally:
        demo.close()


def test_host_warning():
    assert host_warning("127.0.0.1") is None and host_warning("localhost") is None
    assert "no authentication" in host_warning("0.0.0.0")


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
def test_headless_screenshot_is_not_blank(served, tmp_path):
    _model, _client, url = served
    shot = tmp_path / "page.png"
    subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--window-size=1000,700", "--virtual-time-budget=10000", f"--screenshot={shot}", url],
        capture_output=True, timeout=120, check=False,
    )
    arr = np.asarray(Image.open(shot).convert("L"), dtype=np.float32)
    assert arr.shape == (700, 1000)
    # rendered widgets, text and the example image, not a blank or single-colour page
    assert arr.std() > 10 and len(np.unique(arr)) > 50
