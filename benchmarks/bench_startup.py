"""How long the everyday CLI commands take to answer: wall seconds, median of ``--rounds`` fresh processes.

Not a test.  Each command runs as ``python -m imtrans ...`` in a new process (what a user waits for),
next to ``python -c "import torch"`` and an empty ``python -c pass`` as references, in the same run and
alternating, so that load on a shared machine touches every row alike.  ``--baseline DIR`` also times
the same commands with ``PYTHONPATH=DIR`` (e.g. a checkout of an older revision: ``git worktree add
/tmp/old main``), interleaved with this tree.  Prints the CPU model and the load average.

    python benchmarks/bench_startup.py [--rounds 7] [--baseline /tmp/old]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

COMMANDS: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("python -c 'import torch'", ["-c", "import torch"]),
    ("imtrans --help", ["-m", "imtrans", "--help"]),
    ("imtrans --version", ["-m", "imtrans", "--version"]),
    ("imtrans run --help", ["-m", "imtrans", "run", "--help"]),
    ("imtrans pretrained list", ["-m", "imtrans", "pretrained", "list"]),
    ("imtrans pretrained info horse2zebra", ["-m", "imtrans", "pretrained", "info", "horse2zebra"]),
    ("imtrans list", ["-m", "imtrans", "list"]),
    ("imtrans plugins", ["-m", "imtrans", "plugins"]),
]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or "unknown"


def time_once(args: list[str], pythonpath: str) -> float:
    env = dict(os.environ, PYTHONPATH=pythonpath, COLUMNS="120")
    t0 = time.perf_counter()
    # cwd: `python -m` puts the working directory first on sys.path, before PYTHONPATH
    r = subprocess.run([sys.executable, *args], env=env, cwd=pythonpath, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}): {r.stderr[-400:]}")
    return dt


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--baseline", type=Path, help="another source tree to time the same commands with")
    a = ap.parse_args()
    trees = {"this tree": str(ROOT)}
    if a.baseline:
        trees["baseline"] = str(a.baseline.resolve())
    times: dict[tuple[str, str], list[float]] = {}
    load0 = os.getloadavg()[0]
    for _ in range(a.rounds):  # alternate: every command and tree sees the same load, round by round
        for name, args in COMMANDS:
            for tree, path in trees.items():
                times.setdefault((name, tree), []).append(time_once(args, path))
    load1 = os.getloadavg()[0]
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); load average {load0:.1f} at the start, "
          f"{load1:.1f} at the end; median of {a.rounds} fresh processes, seconds")
    head = "| command | " + " | ".join(trees) + (" | ratio |" if len(trees) > 1 else "")
    print(head)
    print("|---" * (head.count("|") - 1) + "|")
    for name, _ in COMMANDS:
        med = [statistics.median(times[(name, t)]) for t in trees]
        row = f"| `{name}` | " + " | ".join(f"{m:.2f}" for m in med)
        if len(med) > 1:
            row += f" | {med[1] / med[0]:.1f}x"
        print(row + " |")


if __name__ == "__main__":
    main()
