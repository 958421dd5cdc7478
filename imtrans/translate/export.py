"""Exporting a generator to ONNX or a ``torch.export`` program with dynamic batch, height and width.

Both formats start from one :func:`torch.export.export` of the generator,
with the height and width declared as multiples of its ``size_multiple``
(``H = size_multiple * h``), so the exported graph accepts every size the
eager generator accepts and no Python size check is frozen into it:

* ``onnx``: the dynamo-based ONNX exporter (``torch.onnx.export(..., dynamo=True)``,
  which needs onnxscript), checked with onnxruntime;
* ``pt2``: the :class:`torch.export.ExportedProgram` saved with
  :func:`torch.export.save` (load with ``torch.export.load(path).module()``).

TorchScript (``torch.jit.trace``) is not offered: PyTorch deprecates it and
warns on every trace, freeze and load.  Each export is checked numerically
against eager PyTorch at a batch and size different from the example's.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from imtrans.atomic import atomic_path
from imtrans.errors import ImtransError
from imtrans.registry import record_of

EXPORT_FORMATS = ("onnx", "pt2")
ExportFormat = Literal["onnx", "pt2"]
_INSTALL = "pip install 'imtrans[export]'"


@dataclass
class ExportResult:
    """Where the export went and how far it is from eager PyTorch at ``check_size`` (max absolute difference)."""

    path: Path
    format: str
    max_abs_diff: float
    check_size: tuple[int, int]


def _sample(net: nn.Module, batch: int, h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    c = int(getattr(net, "in_channels", 3))
    return torch.rand(batch, c, h, w, generator=g) * 2 - 1


def _check_format(format: str) -> None:
    if format == "torchscript":
        raise ImtransError(
            "--format torchscript is no longer offered: PyTorch deprecates torch.jit; "
            "use --format pt2 (torch.export) or --format onnx"
        )
    if format not in EXPORT_FORMATS:
        raise ImtransError(f"--format '{format}' is not one of {', '.join(EXPORT_FORMATS)}")


def _name(net: nn.Module) -> str:
    rec = record_of(net)
    return rec.name if rec is not None else type(net).__name__


def _program(net: nn.Module, example: torch.Tensor, multiple: int, min_size: int) -> torch.export.ExportedProgram:
    from torch.export import Dim

    lo = max(1, -(-min_size // multiple))  # the smallest h with multiple * h >= min_size
    # An example batch of 2: torch.export specialises dimensions of size 0 and 1.
    shapes = ({0: Dim("batch", min=1), 2: multiple * Dim("h", min=lo), 3: multiple * Dim("w", min=lo)},)
    try:
        return torch.export.export(net, (example,), dynamic_shapes=shapes)
    except Exception as e:  # noqa: BLE001 - any tracing failure means "this part cannot be exported"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ImtransError(
            f"generator '{_name(net)}' cannot be exported with dynamic height and width ({first}); "
            "translate it with --backend torch instead"
        ) from None


def export_model(net: nn.Module, path: str | os.PathLike, format: ExportFormat, size: int = 64) -> ExportResult:
    """Export ``net`` to ``path`` (written atomically) and check it against eager PyTorch.

    ``size`` is the example's height and width (rounded up to the generator's
    ``size_multiple``, and at least twice it); the check runs at another,
    non-square size and batch.
    Raises :class:`ImtransError` for an unknown format, a generator that cannot
    be exported, or when onnx/onnxruntime/onnxscript are missing (install the
    ``export`` extra).
    """
    _check_format(format)
    if format == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError:
            raise ImtransError(f"ONNX export needs the onnx, onnxruntime and onnxscript packages: {_INSTALL}") from None
    net = net.float().cpu().eval()
    m = int(getattr(net, "size_multiple", 1) or 1)
    lo = int(getattr(net, "min_size", 1) or 1)
    # At least two multiples: torch.export specialises a dimension whose example value is 1, and the
    # example's H / multiple is such a dimension (the 1x1 bottleneck of a U-Net at its smallest size).
    base = max(-(-max(size, lo) // m) * m, 2 * m)
    example = _sample(net, 2, base, base, 0)
    check_x = _sample(net, 1, base + m, base + 2 * m, 1)
    with torch.inference_mode():
        ref = net(check_x)
    path = Path(path)
    with warnings.catch_warnings(), atomic_path(path) as tmp:
        warnings.simplefilter("ignore", FutureWarning)  # deprecation notes inside torch's own exporter
        program = _program(net, example, m, lo)
        try:
            got = _write_onnx(program, example, check_x, tmp) if format == "onnx" else _write_pt2(program, check_x, tmp)
        except Exception as e:  # noqa: BLE001 - a converter failure means "this part cannot be written as <format>"
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ImtransError(f"generator '{_name(net)}' could not be written as {format} ({first}); "
                               "translate it with --backend torch instead") from None
        diff = float((got - ref).abs().max())
    return ExportResult(path=path, format=format, max_abs_diff=diff, check_size=tuple(check_x.shape[-2:]))


def _write_onnx(program, example: torch.Tensor, check_x: torch.Tensor, tmp: Path) -> torch.Tensor:
    import onnxruntime as ort

    # The exporter reports each of its phases on stdout; the CLI prints its own one-line result.
    with contextlib.redirect_stdout(io.StringIO()):
        # optimize=False: onnxscript's graph optimiser took half the export time and ONNX Runtime's own
        # (ORT_ENABLE_ALL) makes the same fusions: a 9-block ResNet ran at the same speed either way.
        # external_data=False: one self-contained file (a generator is far below ONNX's 2 GB limit); with
        # external data the graph would name a weights file after the temporary name of this atomic write.
        torch.onnx.export(program, (example,), str(tmp), dynamo=True, input_names=["image"],
                          output_names=["translated"], verbose=False, optimize=False, external_data=False)
    sess = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    return torch.from_numpy(sess.run(None, {"image": check_x.numpy()})[0])


def _write_pt2(program, check_x: torch.Tensor, tmp: Path) -> torch.Tensor:
    torch.export.save(program, str(tmp))
    loaded = torch.export.load(str(tmp)).module()  # our own file, just written: proves it reloads
    with torch.inference_mode():
        return loaded(check_x)
