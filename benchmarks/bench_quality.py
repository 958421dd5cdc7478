"""Does bf16 hurt results?  Train the quickstart at fp32 and at bf16 for the same steps.

Prints the held-out ground-truth error (mean |G(a) - truth| in [0,1] pixel units) before and after,
the wall time of each run, and the bf16/fp32 ratio.  The issue's bar: bf16 within 10% of fp32.

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
    from imtrans.engine.trainer import Trainer
    from imtrans.recipe import load_recipe

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=0, help="Cap on steps (0: the recipe's full length).")
    ap.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    ap.add_argument("--json", type=Path)
    a = ap.parse_args()
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
            print(f"{prec}: {res.steps} steps in {out[prec]['seconds']:.0f} s; gt_l1_a2b "
                  f"{res.eval_before['gt_l1_a2b']:.4f} -> {res.eval_after['gt_l1_a2b']:.4f}, gt_l1_b2a "
                  f"{res.eval_before['gt_l1_b2a']:.4f} -> {res.eval_after['gt_l1_b2a']:.4f} "
                  f"(copying the input: {res.eval_after['copy_l1_a2b']:.4f})", flush=True)
    if "fp32" in out and "bf16" in out:
        ratio = out["bf16"]["after"]["gt_l1_a2b"] / out["fp32"]["after"]["gt_l1_a2b"]
        print(f"bf16 / fp32 ground-truth error (a2b): {ratio:.3f}")
    if a.json:
        a.json.write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
