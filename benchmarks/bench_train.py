"""Training speed: imtrans's CycleGAN step vs a naive fp32 eager step, at 128 and 256 px.

Runs each configuration in its own subprocess (so peak RSS is per configuration) and prints
a table: seconds/iteration, images/s, achieved GFLOP/s (FLOPs counted with
torch.utils.flop_counter on one real step), peak RSS, plus a bf16 and an fp32 matmul
measured in the same run as the hardware reference.  Runs unchanged on a CUDA GPU.

    python benchmarks/bench_train.py                  # official defaults (resnet 9 blocks, 70x70 PatchGAN)
    python benchmarks/bench_train.py --sizes 128 --iters 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def official_recipe(size: int, precision: str, device: str):
    from imtrans import load_recipe  # the entry point: loads the plugins first

    return load_recipe(
        ROOT / "recipes" / "cyclegan_base.toml",
        [f"train.precision={precision}", f"train.device={device}", "scheme.pool_size=50"],
    )


def fp32_scheme(size: int, device_name: str):
    """The official-defaults CycleGAN at fp32, set up on one random batch: ``(scheme, a, b, device)``."""
    import torch

    from imtrans import registry
    from imtrans.engine.runtime import resolve_device

    device = resolve_device(device_name)
    r = official_recipe(size, "fp32", device_name)
    torch.manual_seed(0)
    scheme = registry.build_spec("scheme", r.scheme.as_dict(), r).to(device)
    a = torch.rand(1, 3, size, size, device=device) * 2 - 1
    b = torch.rand(1, 3, size, size, device=device) * 2 - 1
    scheme.setup({"a": a, "b": b})
    return scheme, a, b, device


def naive_step_factory(scheme):
    """A plain fp32 eager CycleGAN step written like the official optimize_parameters."""
    import torch

    G, F, DA, DB = (scheme.nets[k] for k in ("G", "F", "D_A", "D_B"))
    opt_g = torch.optim.Adam(list(G.parameters()) + list(F.parameters()), lr=2e-4, betas=(0.5, 0.999), foreach=False)
    opt_d = torch.optim.Adam(list(DA.parameters()) + list(DB.parameters()), lr=2e-4, betas=(0.5, 0.999), foreach=False)
    mse, l1 = torch.nn.MSELoss(), torch.nn.L1Loss()

    def gan(pred, real):
        return mse(pred, torch.ones_like(pred) if real else torch.zeros_like(pred))

    def step(a, b):
        fake_b = G(a)
        rec_a = F(fake_b)
        fake_a = F(b)
        rec_b = G(fake_a)
        for p in list(DA.parameters()) + list(DB.parameters()):
            p.requires_grad_(False)
        opt_g.zero_grad()
        idt_a, idt_b = G(b), F(a)
        loss_g = (gan(DB(fake_b), True) + gan(DA(fake_a), True) + 10 * l1(rec_a, a) + 10 * l1(rec_b, b)
                  + 5 * l1(idt_a, b) + 5 * l1(idt_b, a))
        loss_g.backward()
        opt_g.step()
        for p in list(DA.parameters()) + list(DB.parameters()):
            p.requires_grad_(True)
        opt_d.zero_grad()
        ld_b = 0.5 * (gan(DB(b), True) + gan(DB(fake_b.detach()), False))
        ld_b.backward()
        ld_a = 0.5 * (gan(DA(a), True) + gan(DA(fake_a.detach()), False))
        ld_a.backward()
        opt_d.step()
        return {"G": loss_g.detach(), "D": (ld_a + ld_b).detach()}

    return step


def run_one(size: int, precision: str, impl: str, iters: int, warmup: int, device_name: str) -> dict:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from imtrans import registry
    from imtrans.engine.runtime import resolve_device, resolve_precision
    from imtrans.schemes.base import Precision

    device = resolve_device(device_name)
    prec = resolve_precision(precision, device)
    r = official_recipe(size, prec, device_name)
    torch.manual_seed(0)
    scheme = registry.build_spec("scheme", r.scheme.as_dict(), r).to(device)
    scheme.configure(Precision(prec, device))
    a = torch.rand(1, 3, size, size, device=device) * 2 - 1
    b = torch.rand(1, 3, size, size, device=device) * 2 - 1
    scheme.setup({"a": a, "b": b})
    if impl in ("compiled", "compiled+cl", "channels_last"):
        if impl != "compiled":
            scheme.to_channels_last()
        if impl != "channels_last":
            scheme.compile_networks()
    step = naive_step_factory(scheme) if impl == "naive" else (lambda x, y: scheme.train_step({"a": x, "b": y}))
    with FlopCounterMode(display=False) as fc:
        step(a, b)
    flops = fc.get_total_flops()
    for _ in range(warmup):
        step(a, b)
    sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        out = step(a, b)
    float(next(iter(out.values())))  # one read-back at the end, as a logging step would
    sync(device)
    dt = (time.perf_counter() - t0) / iters
    peak = torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda" else None
    return {
        "bench": "train", "size": size, "precision": prec if impl == "imtrans" else "fp32", "impl": impl,
        "s_per_iter": dt, "images_per_s": 1.0 / dt, "gflop_per_iter": flops / 1e9,
        "gflops": flops / 1e9 / dt, "peak_rss_mb": peak_rss_mb(), "gpu_peak_mb": peak,
        "device": str(device), "threads": torch.get_num_threads(),
    }


def interleaved(size: int, reps: int, device_name: str, variants: list[str]) -> None:
    """Naive and imtrans fp32 steps alternating in one process (no process-to-process variance).

    Variants of the imtrans step that keep the math: ``native-conv`` (oneDNN off, PyTorch's own
    convolutions), ``compiled`` (torch.compile of each network, on its own copy of the networks).
    """
    import contextlib
    import copy

    import torch

    scheme, a, b, device = fp32_scheme(size, device_name)
    naive_scheme = copy.deepcopy(scheme)
    steps = {"naive": (naive_step_factory(naive_scheme), contextlib.nullcontext),
             "imtrans": (lambda x, y: scheme.train_step({"a": x, "b": y}), contextlib.nullcontext)}
    if "native-conv" in variants:
        steps["native-conv"] = (steps["imtrans"][0], lambda: torch.backends.mkldnn.flags(enabled=False))
    if "compiled" in variants:
        comp = copy.deepcopy(scheme)
        comp.compile_networks()
        steps["compiled"] = (lambda x, y: comp.train_step({"a": x, "b": y}), contextlib.nullcontext)
    times: dict[str, list[float]] = {k: [] for k in steps}
    for _ in range(reps + 1):  # the first round warms up (and compiles)
        for name, (step, ctx) in steps.items():
            sync(device)
            t0 = time.perf_counter()
            with ctx():
                out = step(a, b)
            float(next(iter(out.values())))
            sync(device)
            times[name].append(time.perf_counter() - t0)
    base = sorted(times["naive"][1:])[reps // 2]
    for name, ts in times.items():
        med = sorted(ts[1:])[reps // 2]
        print(f"interleaved {size}px {name:>11} fp32: median {med:.3f} s/iter ({base / med:.2f}x naive); "
              + " ".join(f"{t:.3f}" for t in ts[1:]), flush=True)


def profile(size: int, device_name: str, rows: int = 15) -> None:
    """torch.profiler table of one imtrans fp32 step (after one warm-up step), by self time."""
    from torch.profiler import ProfilerActivity, profile as prof

    scheme, a, b, device = fp32_scheme(size, device_name)
    scheme.train_step({"a": a, "b": b})
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with prof(activities=acts) as p:
        scheme.train_step({"a": a, "b": b})
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    print(p.key_averages().table(sort_by=key, row_limit=rows))


def matmul(dtype_name: str, device_name: str, n: int = 4096, reps: int = 3) -> dict:
    import torch

    from imtrans.engine.runtime import resolve_device

    device = resolve_device(device_name)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype_name]
    x = torch.randn(n, n, device=device, dtype=dtype)
    y = torch.randn(n, n, device=device, dtype=dtype)
    x @ y
    sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        x @ y
    sync(device)
    dt = (time.perf_counter() - t0) / reps
    return {"bench": "matmul", "dtype": dtype_name, "n": n, "gflops": 2 * n**3 / dt / 1e9, "device": str(device)}


def sub(args: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True, env=os.environ.copy())
    if out.returncode != 0:
        raise SystemExit(f"benchmark {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--impls", nargs="+", default=["imtrans"],
                    choices=["imtrans", "compiled", "channels_last", "compiled+cl"],
                    help="imtrans variants per precision: eager, torch.compile, channels-last, both")
    ap.add_argument("--no-naive", action="store_true", help="Skip the naive fp32 reference.")
    ap.add_argument("--json", type=Path, help="Also write the results here.")
    ap.add_argument("--interleaved", type=int, metavar="SIZE",
                    help="Alternate naive and imtrans fp32 steps in one process at SIZE px instead.")
    ap.add_argument("--variants", nargs="*", default=[], choices=["native-conv", "compiled"],
                    help="with --interleaved: also these math-preserving variants of the imtrans step")
    ap.add_argument("--profile", type=int, metavar="SIZE", help="Print a torch.profiler table of one fp32 step.")
    ap.add_argument("--one", nargs=3, metavar=("SIZE", "PRECISION", "IMPL"), help=argparse.SUPPRESS)
    ap.add_argument("--matmul", metavar="DTYPE", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.one:
        print(json.dumps(run_one(int(a.one[0]), a.one[1], a.one[2], a.iters, a.warmup, a.device)))
        return
    if a.interleaved:
        interleaved(a.interleaved, a.iters, a.device, a.variants)
        return
    if a.profile:
        profile(a.profile, a.device)
        return
    if a.matmul:
        print(json.dumps(matmul(a.matmul, a.device)))
        return
    common = ["--iters", str(a.iters), "--warmup", str(a.warmup), "--device", a.device]
    results = [sub(["--matmul", d, "--device", a.device]) for d in ("fp32", "bf16")]
    for r in results:
        print(f"matmul {r['dtype']:>4} 4096^3: {r['gflops']:8.1f} GFLOP/s ({r['device']})", flush=True)
    for size in a.sizes:
        configs = ([("fp32", "naive")] if not a.no_naive else []) + [(p, i) for p in a.precisions for i in a.impls]
        for prec, impl in configs:
            r = sub(["--one", str(size), prec, impl, *common])
            results.append(r)
            gpu = f" GPU peak {r['gpu_peak_mb']:7.0f} MB" if r["gpu_peak_mb"] is not None else ""
            print(f"train {size:>4}px {impl:>13} {r['precision']:>4}: {r['s_per_iter']:7.3f} s/iter "
                  f"{r['images_per_s']:6.2f} img/s {r['gflops']:7.1f} GFLOP/s "
                  f"({r['gflop_per_iter']:.0f} GFLOP/iter) peak RSS {r['peak_rss_mb']:7.0f} MB{gpu}", flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
