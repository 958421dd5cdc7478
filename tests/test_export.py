"""Export round trips: TorchScript always, ONNX when onnx/onnxruntime are installed."""

from __future__ import annotations

import builtins
import os
import stat
import warnings

import pytest
import torch

from imtrans import registry
from imtrans.engine.checkpoint import save_checkpoint
from imtrans.errors import ImtransError
from imtrans.translate.export import export_model


@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    G = registry.build("generator", "resnet", ngf=4, n_blocks=1).eval()
    meta = {"nets": {"G": {"kind": "generator", "spec": G.imtrans_part.spec}}, "translators": {"a2b": "G"}}
    save_checkpoint(tmp_path / "ck", {"G": G}, meta, None)
    return tmp_path / "ck", G


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _x(h, w, seed=5):
    return torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


@pytest.mark.slow  # torch.export of even this tiny network takes ~20 s on 2 cores
def test_pt2_round_trip_dynamic_size(ckpt, tmp_path, capsys):
    from imtrans.cli import main

    path, G = ckpt
    out = tmp_path / "g.pt2"
    with warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)  # no deprecated API on the way (torch.jit warns)
        with pytest.raises(SystemExit) as e:
            main(["export", str(path), "--format", "pt2", "-o", str(out)])
    assert e.value.code == 0
    assert "max abs difference" in capsys.readouterr().out
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~_umask()  # like any file open() creates
    m = torch.export.load(str(out)).module()
    for h, w in [(32, 48), (52, 36)]:
        x = _x(h, w)
        with torch.inference_mode():
            assert torch.allclose(m(x), G(x), atol=1e-5)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_torchscript_is_refused_with_the_alternatives(ckpt, tmp_path):
    with pytest.raises(ImtransError, match="pt2.*onnx"):
        export_model(ckpt[1], tmp_path / "g.pt", "torchscript")
    assert not (tmp_path / "g.pt").exists()


@pytest.mark.slow  # the dynamo exporter takes ~30 s for this tiny network on 2 cores
def test_onnx_round_trip(ckpt, tmp_path):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    _, G = ckpt
    res = export_model(G, tmp_path / "g.onnx", "onnx")
    assert res.max_abs_diff < 1e-4
    assert stat.S_IMODE((tmp_path / "g.onnx").stat().st_mode) == 0o666 & ~_umask()
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    for h, w in [(40, 56), (64, 28)]:
        x = _x(h, w)
        got = torch.from_numpy(sess.run(None, {"image": x.numpy()})[0])
        with torch.inference_mode():
            assert (got - G(x)).abs().max() < 1e-4


def test_onnx_missing_names_extra(ckpt, tmp_path, monkeypatch):
    _, G = ckpt
    real = builtins.__import__

    def fake(name, *a, **k):
        if name.startswith("onnx"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", fake)
    with pytest.raises(ImtransError, match=r"imtrans\[export\]"):
        export_model(G, tmp_path / "g.onnx", "onnx")
    assert not (tmp_path / "g.onnx").exists()


def test_unknown_format(ckpt, tmp_path):
    with pytest.raises(ImtransError, match="onnx, pt2"):
        export_model(ckpt[1], tmp_path / "g.x", "tflite")


@pytest.mark.parametrize("fmt", ["onnx", "safetensors"])
def test_an_existing_folder_as_output_is_one_sentence_before_any_work(ckpt, tmp_path, fmt):
    from conftest import run_cli

    (tmp_path / f"out.{fmt}").mkdir()  # a folder that even ends like the format's file
    proc = run_cli("export", str(ckpt[0]), "-o", str(tmp_path / f"out.{fmt}"))
    assert proc.returncode == 1 and proc.stderr.strip().splitlines() == [
        f"error: -o {tmp_path / f'out.{fmt}'} is a folder; give the file to write, e.g. -o "
        f"{tmp_path / f'out.{fmt}' / f'model.{fmt}'}"]
