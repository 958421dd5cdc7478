"""Training throughput with 1 process vs N processes (DistributedDataParallel through torchrun).

Uses the real `imtrans run` path on synthetic data, so it measures everything a user gets: data,
augmentation, the step, gradient all-reduce.  With P processes each one gets cores/P threads and a
per-process batch of 1 (the global batch is P).  Runs on CPU (gloo) here and unchanged on GPUs (nccl).

    python benchmarks/bench_ddp.py --size 128 --steps 12 --nprocs 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import tomli_w

ROOT = Path(__file__).resolve().parents[1]


def recipe(tmp: Path, name: str, size: int, steps: int, ngf: int) -> Path:
    data = {
        "data": {
            "a": {"name": "synthetic", "side": "a", "count": 256, "size": size},
            "b": {"name": "synthetic", "side": "b", "count": 256, "size": size},
            "augment": {"name": "none"},
            "batch_size": 1,
            "workers": 0,
        },
        "model": {"generator": {"name": "resnet", "ngf": ngf, "n_blocks": 9},
                  "discriminator": {"name": "patchgan", "ndf": ngf}},
        "train": {"max_steps": steps, "log_every": 1, "sample_every": 0, "eval_images": 1, "precision": "fp32"},
        "output": {"root": str(tmp), "name": name},
    }
    p = tmp / f"{name}.toml"
    p.write_text(tomli_w.dumps(data))
    return p


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--ngf", type=int, default=64)
    ap.add_argument("--nprocs", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    cores = os.cpu_count() or 1
    print(f"{'processes':>9} {'threads/proc':>12} {'steps':>5} {'images/s':>9} {'s/step':>7}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in a.nprocs:
            p = recipe(Path(tmp), f"p{n}", a.size, a.steps, a.ngf)
            env = dict(os.environ, OMP_NUM_THREADS=str(max(1, cores // n)))
            cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                   "-m", "imtrans", "run", str(p), "--no-progress"]
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
            if res.returncode:
                print(f"{n:>9} failed: {res.stderr.strip().splitlines()[-1:]}")
                continue
            recs = [json.loads(l) for l in (Path(tmp) / f"p{n}" / "metrics.jsonl").read_text().splitlines()]
            train = [r for r in recs if r["kind"] == "train"][2:]  # skip warm-up steps
            ips = sum(r["images_per_s"] for r in train) / len(train) * n  # per-rank rate x ranks
            print(f"{n:>9} {max(1, cores // n):>12} {a.steps:>5} {ips:>9.2f} {n / ips:>7.2f}")


if __name__ == "__main__":
    main()
