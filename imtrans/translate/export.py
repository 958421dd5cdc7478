"""Exporting a generator to TorchScript or ONNX with dynamic height and width.

The exported graph takes ``[B, C, H, W]`` float32 in [-1, 1] and returns the
generator output; H and W must be multiples of the generator's
``size_multiple`` (pad first, as :func:`imtrans.translate.tiling.pad_to_multiple`
does).  Both formats are checked numerically against eager PyTorch at a size
different from the tracing size, which also proves the axes are dynamic.
"""

from __future__ import annotations

import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from imtrans.errors import ImtransError

EXPORT_FORMATS = ("onnx", "torchscript")
_INSTALL = "pip install 'imtrans[export]'"


@dataclass
class ExportResult:
    path: Path
    format: str
    max_abs_diff: float
    check_size: tuple[int, int]


class _Export(nn.Module):
    """Wraps the generator so the exported graph is only its math (no Python size checks)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        # The generator's forward checks H/W with Python ints, which tracing would
        # freeze into the graph; call the inner sequential directly where there is one.
        self.inner = getattr(net, "model", None) if type(net).__name__ == "ResnetGenerator" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inner is not None:
            return self.inner(x)
        return self.net(x)


def _sample(net: nn.Module, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = int(getattr(net, "in_channels", 3))
    return torch.rand(1, c, h, w, generator=g) * 2 - 1


def export_model(net: nn.Module, path: str | os.PathLike, format: str, size: int = 64) -> ExportResult:
    """Export ``net`` to ``path`` (written atomically) and check it against eager PyTorch.

    ``size`` is the tracing size; the check runs at a different, non-square size.
    Raises :class:`ImtransError` for an unknown format or when onnx/onnxruntime
    are missing (install the ``export`` extra).
    """
    if format not in EXPORT_FORMATS:
        raise ImtransError(f"--format '{format}' is not one of {', '.join(EXPORT_FORMATS)}")
    net = net.float().cpu().eval()
    m = int(getattr(net, "size_multiple", 1) or 1)
    lo = int(getattr(net, "min_size", 1) or 1)
    base = max(size, lo) // m * m or m
    trace_x = _sample(net, base, base, 0)
    ch, cw = base + m, base + 2 * m  # check at another, non-square size
    check_x = _sample(net, ch, cw, 1)
    wrapper = _Export(net).eval()
    with warnings.catch_warnings():
        # Tracer warnings about Python-int size checks are expected; the
        # numerical check at another size below is the real verification.
        warnings.simplefilter("ignore")
        return _export(net, wrapper, Path(path), format, trace_x, check_x)


def _export(net, wrapper, path: Path, format: str, trace_x: torch.Tensor, check_x: torch.Tensor) -> ExportResult:
    from imtrans.engine.checkpoint import atomic_write_bytes

    ch, cw = check_x.shape[-2:]
    with torch.inference_mode():
        ref = net(check_x)
    if format == "torchscript":
        with torch.no_grad():
            traced = torch.jit.trace(wrapper, trace_x, check_trace=False)
            traced = torch.jit.freeze(traced.eval())
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d) / "model.pt"
            traced.save(str(tmp))
            data = tmp.read_bytes()
            loaded = torch.jit.load(str(tmp))
        with torch.inference_mode():
            got = loaded(check_x)
        diff = float((got - ref).abs().max())
    else:
        try:
            import onnx  # noqa: F401
            import onnxruntime as ort
        except ImportError:
            raise ImtransError(f"ONNX export needs the onnx and onnxruntime packages: {_INSTALL}") from None
        with tempfile.TemporaryDirectory() as d:
            tmp = Path(d) / "model.onnx"
            kwargs = dict(
                input_names=["image"], output_names=["translated"], opset_version=17,
                dynamic_axes={"image": {0: "batch", 2: "height", 3: "width"},
                              "translated": {0: "batch", 2: "height", 3: "width"}},
            )
            with torch.no_grad():
                try:
                    # The TorchScript-based exporter handles dynamic_axes directly and needs no onnxscript.
                    torch.onnx.export(wrapper, (trace_x,), str(tmp), dynamo=False, **kwargs)
                except TypeError:  # older torch without the dynamo argument
                    torch.onnx.export(wrapper, (trace_x,), str(tmp), **kwargs)
            data = tmp.read_bytes()
            sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
            got = torch.from_numpy(sess.run(None, {"image": check_x.numpy()})[0])
        diff = float((got - ref).abs().max())
    atomic_write_bytes(path, data)
    return ExportResult(path=path, format=format, max_abs_diff=diff, check_size=(ch, cw))
