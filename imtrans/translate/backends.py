"""Inference backends for the :class:`~imtrans.translate.Translator`: eager PyTorch or ONNX Runtime.

A backend maps a padded float32 batch ``[B, C, H, W]`` in [-1, 1] to the
generator output (``run(batch) -> batch``).  The ONNX Runtime backend exports
the generator once with :func:`imtrans.translate.export.export_model` and
caches the graph under ``<cache>/onnx/<sha256 of the weights>-<policy>.onnx``
(dynamic batch/height/width, so one graph serves every size).  The cache is
bounded: after each export the least recently used graphs are removed until it
holds at most :func:`onnx_cache_limit` bytes (``IMTRANS_ONNX_CACHE_MB``, default
2048 MB); ``imtrans cache`` lists and clears it.

``auto`` never fails where PyTorch works: a generator that cannot be exported
is translated with PyTorch after one :class:`BackendWarning` line
(:func:`open_backend`); only an explicit ``--backend onnxruntime`` is an error.

``int8`` is lossy: static post-training quantisation (per-channel 7-bit
weights, uint8 activations, QDQ format) calibrated on a few real images, and
accepted only if its output on *other* images is within
:data:`INT8_MIN_PSNR` dB of the fp32 output; otherwise :meth:`OrtBackend.calibrate`
raises and nothing is translated with it.  The int8 graph depends on the
calibration images, so it lives in memory for the translator's lifetime and is
never written to the cache.  Weights are quantised to 7 bits (``reduce_range``)
on every CPU: ONNX Runtime's AVX2 int8 kernels add pairs of uint8 x int8
products in 16 bits, which saturates with 8-bit weights (a test network measured
32.9 dB on an AVX2-only CPU and 37.6 dB with VNNI), while with 7-bit weights no
sum can overflow, so every CPU computes the same integers and the quality
check decides the same way everywhere (the same network: 36.6 dB on both).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import warnings
from pathlib import Path
from typing import Literal, Optional, Protocol, Sequence

import torch
from torch import nn

from imtrans.errors import ImtransError, ImtransWarning

BACKENDS = ("auto", "torch", "onnxruntime")
OrtPrecision = Literal["fp32", "int8"]
INT8_MIN_PSNR = 35.0  # dB against the fp32 output, on held-out images (the quality bound)
_POLICY = "dynhw-opset17-v2"  # how the graph is exported (v2: one self-contained file); part of the cache key
_INSTALL = "pip install 'imtrans[export]'"
CACHE_LIMIT_ENV = "IMTRANS_ONNX_CACHE_MB"
_DEFAULT_CACHE_MB = 2048  # a few full-size graphs (a 9-block ResNet is 45 MB, an 8-level U-Net 218 MB)


class BackendWarning(ImtransWarning):
    """``auto`` could not use the fast backend and falls back to PyTorch (printed as one line)."""


class Backend(Protocol):
    """Runs the generator: ``run(x)`` with ``x`` float32 ``[B, C, H, W]`` in [-1, 1], padded to the size multiple."""

    name: str
    precision: str

    def run(self, x: torch.Tensor) -> torch.Tensor: ...


def ort_available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_cache_dir() -> Path:
    """``$IMTRANS_ONNX_CACHE``, else ``$IMTRANS_HOME/onnx``, else ``<platform cache>/imtrans/onnx``."""
    from imtrans.paths import cache_dir

    if os.environ.get("IMTRANS_ONNX_CACHE"):
        return Path(os.environ["IMTRANS_ONNX_CACHE"]).expanduser()
    return cache_dir("onnx")


def weights_key(net: nn.Module) -> str:
    """sha256 over the parameter/buffer names, shapes and bytes: same weights -> same cached graph."""
    h = hashlib.sha256(type(net).__name__.encode())
    for name, t in sorted(net.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        # reshape(-1): a 0-dim buffer (batch norm's num_batches_tracked) cannot be viewed as bytes
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


def onnx_cache_limit() -> int:
    """Bytes the ONNX graph cache may hold: ``$IMTRANS_ONNX_CACHE_MB`` (default 2048) megabytes."""
    raw = os.environ.get(CACHE_LIMIT_ENV, "")
    try:
        mb = float(raw) if raw else _DEFAULT_CACHE_MB
    except ValueError:
        raise ImtransError(f"{CACHE_LIMIT_ENV}='{raw}' is not a number of megabytes; set it to e.g. 2048") from None
    return int(mb * 2**20)


def prune_onnx_cache(folder: Path, limit: int, keep: Optional[Path] = None) -> list[Path]:
    """Remove the least recently used graphs until ``folder`` holds at most ``limit`` bytes; never ``keep``.

    "Used" is the file's modification time, which :class:`OrtBackend` renews on
    every use (access times are often not kept).  Returns the removed paths.
    """
    files = []
    for p in folder.glob("*.onnx"):
        with contextlib.suppress(OSError):  # another process may have removed it
            st = p.stat()
            files.append((st.st_mtime, st.st_size, p))
    total = sum(size for _, size, _ in files)
    removed = []
    for _, size, p in sorted(files):
        if total <= limit:
            break
        if p == keep:
            continue
        with contextlib.suppress(OSError):  # another process may have removed it
            p.unlink()
            removed.append(p)
            total -= size
    return removed


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of ``a`` against ``b``, both in [-1, 1] (peak-to-peak 2)."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(4.0 / mse)).item()


class OrtBackend:
    """ONNX Runtime CPU backend (fp32, or int8 after :meth:`calibrate`)."""

    name = "onnxruntime"

    def __init__(self, net: nn.Module, precision: OrtPrecision = "fp32", *,
                 cache_dir: Optional[Path] = None, threads: Optional[int] = None):
        if not ort_available():
            raise ImtransError(f"--backend onnxruntime needs the onnx and onnxruntime packages: {_INSTALL}")
        if precision not in ("fp32", "int8"):
            raise ImtransError(f"--precision '{precision}' is not available with --backend onnxruntime; use fp32 or int8")
        self.precision = precision
        self.threads = threads or torch.get_num_threads()
        self.cache = Path(cache_dir) if cache_dir is not None else onnx_cache_dir()
        self.key = weights_key(net)
        self.fp32_path = self._export(net)
        self.int8_psnr: Optional[float] = None
        # int8 starts unusable: only calibrate() (with its quality check) installs the quantised graph.
        self._session = self._open(self.fp32_path) if precision == "fp32" else None
        self._fp32 = self._session

    def _export(self, net: nn.Module) -> Path:
        from imtrans.translate.export import export_model

        path = self.cache / f"{self.key}-{_POLICY}.onnx"
        if path.exists():
            with contextlib.suppress(OSError):
                os.utime(path)  # recently used: the cache evicts by modification time
            return path
        res = export_model(net, path, "onnx")
        if res.max_abs_diff > 1e-3:
            path.unlink(missing_ok=True)
            raise ImtransError(f"the ONNX graph differs from PyTorch by {res.max_abs_diff:.3g}; use --backend torch")
        prune_onnx_cache(self.cache, onnx_cache_limit(), keep=path)
        return path

    def _open(self, model: Path | bytes):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        src = model if isinstance(model, bytes) else str(model)
        return ort.InferenceSession(src, so, providers=["CPUExecutionProvider"])

    def _run_session(self, sess, x: torch.Tensor) -> torch.Tensor:
        out = sess.run(None, {"image": x.detach().float().cpu().contiguous().numpy()})[0]
        return torch.from_numpy(out)

    def run(self, x: torch.Tensor) -> torch.Tensor:
        if self._session is None:
            raise ImtransError(
                "int8 needs calibration before the first image: translate a folder or video (it calibrates on "
                "the first inputs), call calibrate() with at least 2 images, or use --precision fp32")
        return self._run_session(self._session, x)

    @property
    def calibrated(self) -> bool:
        return self.precision != "int8" or self.int8_psnr is not None

    def calibrate(self, calib: Sequence[torch.Tensor], held_out: Sequence[torch.Tensor],
                  min_psnr: float = INT8_MIN_PSNR) -> float:
        """Quantise to int8 on ``calib`` batches and accept it only if ``held_out`` PSNR >= ``min_psnr``.

        Inputs are padded float32 ``[B, C, H, W]`` in [-1, 1].  Returns the worst
        held-out PSNR; raises :class:`ImtransError` (and keeps no int8 session) below the bound.
        """
        if self.precision != "int8":
            return float("inf")
        if not calib or not held_out:
            raise ImtransError("int8 needs calibration and held-out images: give at least 2 input images")
        if self._fp32 is None:
            self._fp32 = self._open(self.fp32_path)
        sess = self._open(self._quantize(calib))
        worst = min(psnr(self._run_session(sess, x), self._run_session(self._fp32, x)) for x in held_out)
        self.int8_psnr = worst
        if worst < min_psnr:
            raise ImtransError(
                f"int8 output is only {worst:.1f} dB PSNR from fp32 on held-out images (needs >= {min_psnr:.0f} dB); "
                "use --precision fp32")
        self._session = sess
        return worst

    def _quantize(self, calib: Sequence[torch.Tensor]) -> bytes:
        """The int8 graph as bytes: it depends on the calibration images, so it is never cached on disk."""
        from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter([{"image": x.float().cpu().numpy()} for x in calib])

            def get_next(self):
                return next(self.it, None)

        with tempfile.TemporaryDirectory() as d:
            pre = Path(d) / "pre.onnx"
            quant_pre_process(str(self.fp32_path), str(pre), skip_symbolic_shape=True)
            out = Path(d) / "int8.onnx"
            quantize_static(str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                            reduce_range=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "ConvTranspose"])
            return out.read_bytes()


def open_backend(net: nn.Module, requested: str, backend: str, precision: str) -> Optional[OrtBackend]:
    """The ONNX Runtime backend for ``backend == "onnxruntime"``, else None (eager PyTorch).

    ``requested`` is what the user asked for before :func:`resolve_backend`.  When
    ``auto`` chose ONNX Runtime and the generator cannot be exported, this warns
    once and returns None, so ``auto`` never fails where PyTorch works; an
    explicit ``onnxruntime`` raises, naming the backend that will serve the model.
    """
    if backend != "onnxruntime":
        return None
    try:
        return OrtBackend(net, precision)
    except ImtransError as e:
        if requested != "auto":
            raise ImtransError(f"{str(e).rstrip('.')}; --backend torch (or auto) translates this model") from None
        warnings.warn(f"translating with PyTorch: {e}", BackendWarning, stacklevel=3)
        return None


def resolve_backend(backend: str, precision: str, device: torch.device, tiled: bool = False) -> tuple[str, str]:
    """``(backend, precision)`` after ``auto``.

    ``auto`` with ``precision = "auto"`` on a CPU (measured, see benchmarks/README.md):
    ONNX Runtime fp32 when installed (2.07x the naive loop on an AVX512-BF16 EPYC, where
    PyTorch bf16 reached 1.43x), except on CPUs with AMX, where PyTorch bf16 was measured
    at 2.53x; without onnxruntime, PyTorch at its own ``auto`` precision.  An explicit
    precision, other devices and tiling (whose global instance-norm statistics hook into
    PyTorch modules) use PyTorch.  int8 is never chosen automatically: it needs calibration
    images and its quality bound can fail.
    """
    from imtrans.engine.runtime import cpu_flags

    if backend not in BACKENDS:
        raise ImtransError(f"--backend '{backend}' is not one of {', '.join(BACKENDS)}")
    if backend == "onnxruntime" and device.type != "cpu":
        raise ImtransError(f"--backend onnxruntime runs on the CPU only; use --device cpu or --backend torch (device {device})")
    if precision == "int8" and backend != "onnxruntime":
        raise ImtransError("--precision int8 needs --backend onnxruntime")
    if backend == "onnxruntime" and precision not in ("auto", "fp32", "int8"):
        raise ImtransError(f"--precision '{precision}' is not available with --backend onnxruntime; use fp32 or int8")
    if backend == "onnxruntime" and tiled:
        raise ImtransError("--tile is not supported with --backend onnxruntime; use --backend torch for tiled translation")
    if backend == "auto":
        fast_ort = device.type == "cpu" and precision == "auto" and not tiled and "amx_bf16" not in cpu_flags()
        backend = "onnxruntime" if fast_ort and ort_available() else "torch"
    if backend == "onnxruntime" and precision == "auto":
        precision = "fp32"
    return backend, precision


def calibration_split(images: Sequence[torch.Tensor], size: int = 256, n_max: int = 6
                      ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """uint8 ``[C,H,W]`` images -> (calibration, held-out) float batches of one image each.

    Up to ``n_max`` images, each centre-cropped to at most ``size`` px square (the
    statistics of a convnet's activations do not need the full image), a third of them
    (at least one) held out for the quality check.
    """
    from imtrans.translate.tiling import to_unit

    xs = []
    for img in list(images)[:n_max]:
        _, h, w = img.shape
        s = min(size, h, w) // 4 * 4 or min(h, w)
        top, left = (h - s) // 2, (w - s) // 2
        xs.append(to_unit(img[:, top:top + s, left:left + s].unsqueeze(0)))
    if len(xs) < 2:
        raise ImtransError("int8 needs at least 2 readable input images (some to calibrate, one to check quality)")
    n_held = max(1, len(xs) // 3)
    return xs[:-n_held], xs[-n_held:]
