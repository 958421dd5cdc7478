"""Training speed of the pix2pix step at 256 px: imtrans at fp32 and bf16 next to a naive fp32 eager step.

One process, one set of networks (the official defaults of recipes/pix2pix_base.toml: unet_256 with
batch norm and dropout, 70x70 PatchGAN on 6 channels, vanilla GAN, L1 x 100, batch 1).  The three
steps alternate round by round, so machine load hits them alike; the table gives the median
seconds/iteration, images/s and GFLOP/s (FLOPs counted once with torch.utils.flop_counter on a real
step), and the CPU seconds per iteration (``process_time``: on a shared machine the wall clock
measures the neighbours as much as the step).  The naive step is written like the official ``Pix2PixModel.optimize_parameters`` (plain
fp32 eager, per-parameter Adam).  bf16 needs a CPU with AVX512-BF16/AMX or a bf16-capable GPU.

    python benchmarks/bench_pix2pix.py                  # 256 px, 3 timed rounds
    python benchmarks/bench_pix2pix.py --iters 5 --json out.json --device cuda
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def naive_step_factory(scheme):
    """A plain fp32 eager pix2pix step written like the official optimize_parameters."""
    import torch

    G, D = scheme.nets["G"], scheme.nets["D"]
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False)
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), foreach=False)
    bce, l1 = torch.nn.BCEWithLogitsLoss(), torch.nn.L1Loss()

    def gan(pred, real):
        return bce(pred, torch.ones_like(pred) if real else torch.zeros_like(pred))

    def step(a, b):
        fake_b = G(a)
        for p in D.parameters():
            p.requires_grad_(True)
        opt_d.zero_grad()
        loss_d = 0.5 * (gan(D(torch.cat((a, fake_b), 1).detach()), False) + gan(D(torch.cat((a, b), 1)), True))
        loss_d.backward()
        opt_d.step()
        for p in D.parameters():
            p.requires_grad_(False)
        opt_g.zero_grad()
        loss_g = gan(D(torch.cat((a, fake_b), 1)), True) + 100.0 * l1(fake_b, b)
        loss_g.backward()
        opt_g.step()
        return {"G": loss_g.detach(), "D": loss_d.detach()}

    return step


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--iters", type=int, default=3, help="timed rounds (each runs every step once)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", default=None, help="also write the rows to this file")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from torch.utils.flop_counter import FlopCounterMode

    from imtrans import registry
    from imtrans.engine.runtime import resolve_device
    from imtrans import load_recipe  # the entry point: loads the plugins first
    from imtrans.schemes.base import Precision

    device = resolve_device(args.device)
    r = load_recipe(ROOT / "recipes" / "pix2pix_base.toml", ["train.precision=fp32"])
    torch.manual_seed(0)
    scheme = registry.build_spec("scheme", r.scheme.as_dict(), r).to(device)
    a = torch.rand(1, 3, args.size, args.size, device=device) * 2 - 1
    b = torch.rand(1, 3, args.size, args.size, device=device) * 2 - 1
    scheme.setup({"a": a, "b": b})
    fp32, bf16 = Precision("fp32", device), Precision("bf16", device)

    def ours(prec):
        def step(x, y):
            scheme.configure(prec)
            return scheme.train_step({"a": x, "b": y})
        return step

    steps = {("naive", "fp32"): naive_step_factory(scheme), ("imtrans", "fp32"): ours(fp32), ("imtrans", "bf16"): ours(bf16)}
    with FlopCounterMode(display=False) as fc:
        steps[("imtrans", "fp32")](a, b)
    gflop = fc.get_total_flops() / 1e9
    times: dict[tuple[str, str], list[float]] = {k: [] for k in steps}
    cpu: dict[tuple[str, str], list[float]] = {k: [] for k in steps}
    for rnd in range(args.iters + 1):  # round 0 warms up
        for key, step in steps.items():
            sync(device)
            t0, c0 = time.perf_counter(), time.process_time()
            out = step(a, b)
            float(next(iter(out.values())))  # one read-back, as a logging step would
            sync(device)
            if rnd:
                times[key].append(time.perf_counter() - t0)
                cpu[key].append(time.process_time() - c0)
    rows = []
    for (impl, prec), ts in times.items():
        s = statistics.median(ts)
        c = statistics.median(cpu[(impl, prec)])
        rows.append({"bench": "pix2pix_train", "size": args.size, "impl": impl, "precision": prec, "s_per_iter": s,
                     "cpu_s_per_iter": c,
                     "images_per_s": 1 / s, "gflop_per_iter": gflop, "gflops": gflop / s, "runs": ts,
                     "device": str(device), "threads": torch.get_num_threads()})
    naive = rows[0]["s_per_iter"]
    print(f"pix2pix step, {args.size} px, batch 1, {device}, {torch.get_num_threads()} threads, {gflop:.0f} GFLOP/iter")
    print("| implementation | precision | s/iter (median) | CPU s/iter | images/s | GFLOP/s | vs naive | runs |")
    print("|---|---|---|---|---|---|---|---|")
    for row in rows:
        runs = " ".join(f"{t:.2f}" for t in row["runs"])
        print(f"| {row['impl']} | {row['precision']} | {row['s_per_iter']:.3f} | {row['cpu_s_per_iter']:.3f} | "
              f"{row['images_per_s']:.2f} | "
              f"{row['gflops']:.0f} | {naive / row['s_per_iter']:.2f}x | {runs} |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
