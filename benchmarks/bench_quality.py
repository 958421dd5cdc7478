"""Does bf16 hurt results?  Train the quickstart at fp32 and at bf16 for the same steps.

Prints the CPU, then per precision the held-out ground-truth error of each direction (mean
|G(x) - truth| in [0,1] pixel units) before and after, the error of copying the input unchanged and
the ratio of the two (issue #18's bar: at most 0.5 each way), the wall time of each run, and the
bf16/fp32 ratio of the errors (the bar: bf16 within 10% of fp32).

    python benchmarks/bench_quality.py                 # the whole quickstart (both precisions)
    python benchmarks/bench_quality.py --steps 600
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    from imtrans.engine.report import describe_eval
    from imtrans.engine.trainer import Trainer
    from imtrans import load_recipe  # the entry point: loads the plugins first

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=0, help="Cap on steps (0: the recipe's full length).")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from bench_translate import cpu_line

    print(cpu_line(), f"| torch threads: {torch.get_num_threads()}", flush=True)
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for prec in a.precisions:
            sets = [f"train.precision={prec}", f"output.root={tmp}", f"output.name={prec}"]
            if a.steps:
                sets.append(f"train.max_steps={a.steps}")
            r = load_recipe(ROOT / "recipes" / "quickstart.toml", sets)
            t0 = time.perf_counter()
            res = Trainer(r, progress=False).fit()
            out[prec] = {"steps": res.steps, "seconds": time.perf_counter() - t0,
                         "before": res.eval_before, "after": res.eval_after}
            print(f"{prec}: {res.steps} steps in {out[prec]['seconds']:.0f} s", flush=True)
            for line in describe_eval(res.eval_after, res.eval_before):  # the run summary's own lines
                print(f"  {line}", flush=True)
    if "fp32" in out and "bf16" in out:
        for d in ("a2b", "b2a"):
            ratio = out["bf16"]["after"][f"gt_l1_{d}"] / out["fp32"]["after"][f"gt_l1_{d}"]
            print(f"bf16 / fp32 ground-truth error ({d}): {ratio:.3f}")
        print(f"bf16 / fp32 wall time: {out['bf16']['seconds'] / out['fp32']['seconds']:.2f}")
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
