"""torch.distributed support: process groups, DDP wrappers, sharding, launching torchrun.

A run is distributed when it was started by ``torchrun`` (``WORLD_SIZE`` > 1 in the
environment).  Backend: nccl on CUDA, gloo on CPU.  Each network gets its own DDP
wrapper (generators and discriminators step separately); batch norm becomes
SyncBatchNorm first.  Rank 0 alone writes files.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from imtrans.errors import ImtransError


@dataclass
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank/world from the torchrun environment (a single process when absent)."""
    try:
        return DistInfo(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                        int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError:
        raise ImtransError("RANK / WORLD_SIZE / LOCAL_RANK in the environment are not integers; start with torchrun") from None


def init(device_name: str, timeout_s: float = 600.0) -> tuple[DistInfo, torch.device | None]:
    """Join the process group if launched by torchrun; returns the rank info and this rank's device."""
    info = env_info()
    if not info.enabled:
        return info, None
    use_cuda = torch.cuda.is_available() and device_name in ("auto", "cuda") or device_name.startswith("cuda")
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
        device = torch.device("cuda", info.local_rank)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        # A bounded timeout: a rank whose peer died fails with an error instead of hanging forever.
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(seconds=timeout_s))
    return info, device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def wrap(net: nn.Module, device: torch.device) -> nn.Module:
    """SyncBatchNorm + one DDP wrapper for one network."""
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.modules()):
        net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
    if not any(p.requires_grad for p in net.parameters()):
        return net
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(net, device_ids=ids, broadcast_buffers=False)


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy every parameter and buffer of ``module`` from rank ``src`` to all ranks."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src)


def shard(items: list[Any], rank: int, world: int) -> list[Any]:
    """Every ``world``-th item starting at ``rank``: each item goes to exactly one rank."""
    return items[rank::world]


def all_mean(values: torch.Tensor) -> torch.Tensor:
    """Mean over ranks (identity when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        values = values.clone()
        dist.all_reduce(values)
        values /= dist.get_world_size()
    return values


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj`` (a one-element list when not distributed)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def launch(nproc: int, argv: list[str]) -> int:
    """Re-run ``python -m imtrans ARGV`` under torchrun's elastic launcher with ``nproc`` processes."""
    if nproc < 1:
        raise ImtransError(f"--nproc must be at least 1, got {nproc}")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "imtrans", *argv]
    env = dict(os.environ)
    # one OpenMP thread per process unless the user chose: N processes on N cores must not oversubscribe
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    return subprocess.call(cmd, env=env)


def strip_option(argv: list[str], name: str) -> list[str]:
    """Remove ``--name VALUE`` / ``--name=VALUE`` from argv (the launcher option itself)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a == name:
            skip = True
            continue
        if a.startswith(name + "="):
            continue
        out.append(a)
    return out
