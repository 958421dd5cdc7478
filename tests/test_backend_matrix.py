"""Every shipped generator configuration x every backend x odd sizes x every entry point equals eager PyTorch.

The configurations are read from the recipes themselves (``recipes/*.toml``, the plugins' shipped ones,
resolved through ``extends``) with tiny widths (``ngf = 4``) but the same depth,
normalisation, dropout and size constraints, plus ``timm_unet`` on timm's tiny
test encoder.  For each, the same uint8 inputs (64x64, 50x77, 300x200) go
through the folder pipeline, a GIF (frames to PNG), ``load_translator(...)(PIL)``
and the demo's model, with ``--backend torch``, ``onnxruntime`` (when installed)
and ``auto``.  The oracle is the eager fp32 :class:`Translator` on the same
network.  Tolerance: ONNX Runtime computes the same fp32 arithmetic in another
order (differences ~1e-6 of a [-1, 1] output), so at most one uint8 level from
rounding; a PyTorch path must be equal to the byte.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from imtrans import registry
from imtrans.engine.checkpoint import save_checkpoint
from imtrans.recipe_files import read_with_extends
from imtrans.translate import Translator, load_translator
from imtrans.translate import backends as B

ROOT = Path(__file__).resolve().parents[1]
SIZES = [(64, 64), (50, 77), (300, 200)]  # (h, w)
SHAPE_KEYS = ("name", "num_downs", "n_blocks", "norm", "dropout", "residual", "encoder", "padding")


def recipe_generators() -> list[dict]:
    """Distinct generator specs of the shipped recipes, shrunk to ngf 4 (depth and constraints kept)."""
    specs = {}
    for path in sorted((ROOT / "recipes").glob("*.toml")) + sorted((ROOT / "plugins").glob("*/*/recipes/*.toml")):
        model = read_with_extends(path).get("model", {})
        for key in ("generator", "generator_b"):
            spec = model.get(key)
            if spec:
                tiny = {k: v for k, v in spec.items() if k in SHAPE_KEYS}
                tiny["ngf"] = 4
                specs.setdefault(json.dumps(tiny, sort_keys=True), tiny)
    specs['{"timm"}'] = {"name": "timm_unet", "ngf": 4, "encoder": "test_resnet"}
    return list(specs.values())


CONFIGS = recipe_generators()
BACKENDS = ["torch", "auto"] + (["onnxruntime"] if B.ort_available() else [])


def _id(spec: dict) -> str:
    return "-".join(f"{v}" for k, v in spec.items() if k != "ngf")


def _contrasty(net: torch.nn.Module) -> torch.nn.Module:
    """Scale the last convolution until the output has contrast: at init many generators draw faint grey,
    which would let a path that drops the network's work pass."""
    last = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
    side = max(64, net.size_multiple)
    x = torch.rand(1, net.in_channels, side, side) * 2 - 1
    with torch.no_grad():
        if not last.weight.any():  # a residual U-Net starts as a copy of its input
            last.weight.normal_(0, 0.02)
        for _ in range(6):
            if net(x).std() > 0.3:
                break
            last.weight.mul_(3)
    return net


def images() -> list[np.ndarray]:
    """Smooth photo-like uint8 ``[H, W, 3]`` inputs of each size."""
    rng = np.random.default_rng(0)
    out = []
    for h, w in SIZES:
        yy, xx = np.mgrid[0:h, 0:w] / 64
        a, b = rng.uniform(-3, 3, 2)
        chans = [np.sin(a * xx + b * yy + k) for k in range(3)]
        out.append(((np.stack(chans, -1) * 0.45 + 0.5).clip(0, 1) * 255).astype(np.uint8))
    return out


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory):
    # One graph cache for the whole session, shared by pytest-xdist's workers (the parent of each
    # worker's base folder): a configuration is exported once, then reused by every entry point.
    root = tmp_path_factory.getbasetemp()
    shared = (root.parent if root.name.startswith("popen-gw") else root) / "onnx-matrix"
    shared.mkdir(exist_ok=True)
    return shared


@pytest.fixture(autouse=True)
def _cache(onnx_cache, monkeypatch):
    monkeypatch.setenv("IMTRANS_ONNX_CACHE", str(onnx_cache))


@pytest.fixture(scope="module", params=CONFIGS, ids=_id)
def model(request, tmp_path_factory):
    """(checkpoint dir, eager fp32 network, inputs, eager fp32 outputs) for one configuration."""
    spec = dict(request.param)
    torch.manual_seed(0)
    net = _contrasty(registry.build("generator", spec.pop("name"), **spec).eval())
    ck = tmp_path_factory.mktemp("ck")
    meta = {"nets": {"G": {"kind": "generator", "spec": net.imtrans_part.spec}}, "translators": {"a2b": "G"}}
    save_checkpoint(ck, {"G": net}, meta, None)
    ref = Translator(net, device="cpu", precision="fp32", backend="torch")
    ins = images()
    outs = [ref.translate_tensor(torch.from_numpy(x).permute(2, 0, 1).contiguous()) for x in ins]
    for x, y in zip(ins, outs):  # the oracle's outputs could tell a dropped network apart
        assert y.std() > 20 and np.abs(y.astype(int) - x).mean() > 3
    return ck, net, ins, outs


def _close(got: np.ndarray, want: np.ndarray, tol: int, what: str) -> None:
    assert got.shape == want.shape, what
    diff = np.abs(got.astype(int) - want.astype(int)).max()
    assert diff <= tol, f"{what}: differs from eager PyTorch by {diff} levels (allowed {tol})"


def _oracle(t: Translator, net, ins, outs):
    """The eager outputs ``t`` must match, and the tolerance: its own PyTorch path when ``auto`` chose one
    at another precision (bf16 on bf16 CPUs), to the byte."""
    if t.backend_name == "torch" and t.precision != "fp32":
        same = Translator(net, device="cpu", precision=t.precision, backend="torch")
        return [same.translate_tensor(torch.from_numpy(x).permute(2, 0, 1).contiguous()) for x in ins], 0
    return outs, (1 if t.backend_name == "onnxruntime" else 0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_every_entry_point_matches_eager(model, backend, tmp_path):
    from imtrans.demo.model import DemoModel
    from imtrans.translate.video import iter_frames, translate_video

    ck, net, ins, outs = model
    precision = "fp32" if backend == "torch" else "auto"
    with warnings.catch_warnings():
        warnings.simplefilter("error", B.BackendWarning)  # every shipped configuration exports: no fallback
        t = load_translator(ck, device="cpu", precision=precision, backend=backend)
    if backend == "onnxruntime":
        assert t.backend_name == "onnxruntime"
    want, tol = _oracle(t, net, ins, outs)
    src = tmp_path / "in"
    src.mkdir()
    for i, x in enumerate(ins):
        Image.fromarray(x).save(src / f"{i}.png")
        _close(np.asarray(t(Image.fromarray(x))), want[i], tol, f"load_translator()(image) at {x.shape[:2]}")
    report = t.translate_folder(src, tmp_path / "out", workers=1)
    assert not report.failed
    for i, x in enumerate(ins):
        _close(np.asarray(Image.open(tmp_path / "out" / f"{i}.png")), want[i], tol, f"folder at {x.shape[:2]}")
    demo = DemoModel(ck, device="cpu", precision=precision, tile=None, backend=backend)
    assert demo.translators["a2b"].backend_name == t.backend_name
    for i, x in enumerate(ins):
        _close(np.asarray(demo.translate_file(src / f"{i}.png", "a2b")), want[i], tol, f"demo at {x.shape[:2]}")
    # A GIF at the odd size: its decoded frames (palette-quantised) are the inputs of the oracle.
    gif = tmp_path / "clip.gif"
    frames = [Image.fromarray(ins[1]), Image.fromarray(ins[1][::-1].copy())]
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=[50, 60], loop=0)
    translate_video(t, gif, tmp_path / "frames", frames_dir=True)
    ref = Translator(net, device="cpu", precision=t.precision, backend="torch")
    decoded = list(iter_frames(gif))
    assert len(decoded) == 2
    for k, rgb in enumerate(decoded):
        exact = ref.translate_tensor(torch.from_numpy(rgb.copy()).permute(2, 0, 1).contiguous())
        got = np.asarray(Image.open(tmp_path / "frames" / f"{k:06d}.png"))
        _close(got, exact, tol, f"video frame {k}")


def test_auto_falls_back_to_pytorch_with_one_warning_when_export_fails(monkeypatch, tmp_path):
    """A generator that cannot be exported: ``auto`` says so once and translates with PyTorch;
    an explicit ``--backend onnxruntime`` is an error that names the backend that will serve it."""
    from imtrans.errors import ImtransError
    from imtrans.translate import export

    if not B.ort_available():
        pytest.skip("onnxruntime is not installed")

    def refuse(net, *a, **k):
        raise ImtransError("generator 'x' cannot be exported with dynamic height and width (test)")

    monkeypatch.setattr(export, "_program", refuse)
    monkeypatch.setattr("imtrans.engine.runtime.cpu_flags", lambda: frozenset({"avx2"}))
    torch.manual_seed(0)
    net = registry.build("generator", "resnet", ngf=4, n_blocks=1).eval()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t = Translator(net, device="cpu", backend="auto")
    msgs = [str(w.message) for w in caught if issubclass(w.category, B.BackendWarning)]
    assert len(msgs) == 1 and "translating with PyTorch" in msgs[0] and "cannot be exported" in msgs[0]
    assert t.backend_name == "torch" and t.backend is None
    x = torch.randint(0, 256, (3, 36, 44), dtype=torch.uint8)
    assert np.array_equal(t.translate_tensor(x), Translator(net, device="cpu", backend="torch").translate_tensor(x))
    with pytest.raises(ImtransError, match="--backend torch"):
        Translator(net, device="cpu", backend="onnxruntime")
