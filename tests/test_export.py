"""Export round trips: TorchScript always, ONNX when onnx/onnxruntime are installed."""

from __future__ import annotations

import builtins

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
    meta = {"nets": {"G": {"kind": "generator", "spec": G._imtrans_spec}}, "translators": {"a2b": "G"}}
    save_checkpoint(tmp_path / "ck", {"G": G}, meta, None)
    return tmp_path / "ck", G


def _x(h, w, seed=5):
    return torch.rand(2, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_torchscript_round_trip_dynamic_size(ckpt, tmp_path, capsys):
    from imtrans.cli import main

    path, G = ckpt
    out = tmp_path / "g.pt"
    with pytest.raises(SystemExit) as e:
        main(["export", str(path), "--format", "torchscript", "-o", str(out)])
    assert e.value.code == 0
    assert "max abs difference" in capsys.readouterr().out
    m = torch.jit.load(str(out))
    for h, w in [(32, 48), (52, 36)]:
        x = _x(h, w)
        with torch.inference_mode():
            assert torch.allclose(m(x), G(x), atol=1e-5)


def test_onnx_round_trip(ckpt, tmp_path):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    _, G = ckpt
    res = export_model(G, tmp_path / "g.onnx", "onnx")
    assert res.max_abs_diff < 1e-4
    sess = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    x = _x(40, 56)
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
    with pytest.raises(ImtransError, match="torchscript"):
        export_model(ckpt[1], tmp_path / "g.x", "tflite")
