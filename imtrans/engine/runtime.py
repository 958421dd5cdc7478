"""Device, precision and seeding decisions, made once per run."""

from __future__ import annotations

import functools
import os
import random
from pathlib import Path

import torch

from imtrans.errors import ImtransError


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> cuda, then mps, then cpu; otherwise the named device, checked."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ImtransError(f"device '{name}' is not a device name; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ImtransError(f"device '{name}' was asked for but CUDA is not available here; use device = \"cpu\" or \"auto\"")
    return dev


@functools.lru_cache(maxsize=1)
def raw_cpu_flags() -> frozenset[str]:
    """The processor's feature flags from ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The feature flags PyTorch's CPU kernels may use: :func:`raw_cpu_flags` without AVX-512 and AMX
    where PyTorch or oneDNN is held to AVX2 (``ATEN_CPU_CAPABILITY=avx2``, ``ONEDNN_MAX_CPU_ISA=AVX2``).

    Precision and backend choices read these, so a machine held to AVX2 chooses what an AVX2-only
    CPU would (bf16 there is emulated and slow).
    """
    flags = raw_cpu_flags()
    capped = not torch.backends.cpu.get_cpu_capability().startswith("AVX512")
    mkldnn_bf16 = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if capped or (mkldnn_bf16 is not None and not mkldnn_bf16()):
        flags = frozenset(f for f in flags if not f.startswith(("avx512", "amx")))
    return flags


def cpu_has_fast_bf16() -> bool:
    """True on CPUs with native bf16 dot products (AVX512-BF16 or AMX)."""
    flags = cpu_flags()
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(mode: str, device: torch.device) -> str:
    """``auto`` picks the fastest precision that trains correctly on this device."""
    if mode != "auto":
        if mode == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise ImtransError("precision 'bf16' is not supported by this GPU; use \"fp16\" or \"fp32\"")
        return mode
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type == "cpu" and cpu_has_fast_bf16():
        return "bf16"
    return "fp32"


def seed_everything(seed: int, deterministic: bool = False) -> None:
    random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif torch.cuda.is_available():
        torch.backends.cudnn.benchmark = True


def rng_state() -> dict:
    st = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def set_rng_state(st: dict) -> None:
    torch.set_rng_state(st["torch"])
    py = st["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(list(st["cuda"]))
