"""How long the built-in `synthetic` domain takes to draw one image (it replaces a data set on disk).

Not a test: timing depends on the machine and its load.  Draws ``--count`` images per task and size
and prints the median and worst milliseconds per image.  The quickstart's config (``workers = 0``)
assumes a 64 px image costs well under the ~20 ms budget of a data loader running in the main process.

    python benchmarks/bench_synthetic.py --count 50 --sizes 64 256
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    from imtrans.data.synthetic import TASKS, SyntheticDomain

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=50, help="Images drawn per task and size.")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 256])
    ap.add_argument("--budget-ms", type=float, default=20.0, help="Exit 1 when a median exceeds this.")
    a = ap.parse_args()
    print("| task | size | median ms/image | worst ms/image |\n|---|---|---|---|")
    over = False
    for task in TASKS:
        for size in a.sizes:
            d = SyntheticDomain("train", task=task, count=a.count, size=size)
            times = []
            for i in range(a.count):
                t = time.perf_counter()
                d.load(i)
                times.append((time.perf_counter() - t) * 1000)
            med = statistics.median(times)
            over |= size <= 64 and med > a.budget_ms
            print(f"| {task} | {size} | {med:.2f} | {max(times):.2f} |")
    sys.exit(1 if over else 0)


if __name__ == "__main__":
    main()
