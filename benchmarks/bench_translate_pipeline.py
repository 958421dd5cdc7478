"""Folder pipeline speed: this tree's `translate_folder` against the one at another git revision, same run.

Not a test.  Loads ``imtrans/translate/translator.py`` and ``io.py`` of ``--ref``
(default: the revision before the pipeline became ``imtrans/translate/batch.py``)
as a private module, builds one generator, and translates the same folder with
the reference pipeline and with this tree's, alternating ``--rounds`` times in
one process so that machine load affects both alike.  Prints the median
images/s of each and their ratio (> 1: this tree is faster), and checks that
both wrote identical files.

    python benchmarks/bench_translate_pipeline.py --count 24 --size 128 [--ref REV]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def default_ref() -> str:
    added = _git("log", "--diff-filter=A", "--format=%H", "--", "imtrans/translate/batch.py").split()
    if not added:
        raise SystemExit("no commit adds imtrans/translate/batch.py here; pass --ref")
    return added[-1] + "^"


def load_reference(ref: str) -> types.ModuleType:
    """The reference revision's translator module, its ``io`` module swapped for the reference one too."""
    io_mod = types.ModuleType("imtrans_ref_io")
    sys.modules["imtrans_ref_io"] = io_mod  # before exec: dataclasses look their module up
    exec(compile(_git("show", f"{ref}:imtrans/translate/io.py"), f"{ref}:io.py", "exec"), io_mod.__dict__)
    src = _git("show", f"{ref}:imtrans/translate/translator.py")
    src = src.replace("from imtrans.translate import io as tio", "import imtrans_ref_io as tio")
    mod = types.ModuleType("imtrans_ref_translator")
    sys.modules["imtrans_ref_translator"] = mod
    exec(compile(src, f"{ref}:translator.py", "exec"), mod.__dict__)
    return mod


def make_folder(root: Path, size: int, count: int) -> Path:
    import numpy as np
    from PIL import Image

    d = root / "in"
    d.mkdir()
    rng = np.random.default_rng(0)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(d / f"{i:04d}.png")
    return d


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ref", default=None, help="git revision of the reference pipeline")
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--ngf", type=int, default=16, help="generator width (small: the pipeline's share shows)")
    ap.add_argument("--blocks", type=int, default=3)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    from imtrans import registry
    from imtrans.plugins import load_plugins
    from imtrans.translate import Translator

    load_plugins()  # a script is an entry point: parts are registered by the plugins

    ref = args.ref or default_ref()
    old = load_reference(ref)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G = registry.build("generator", "resnet", ngf=args.ngf, n_blocks=args.blocks).eval()
    makers = {"reference": lambda: old.Translator(G, device="cpu", precision="fp32"),
              "this tree": lambda: Translator(G, device="cpu", precision="fp32")}
    rates: dict[str, list[float]] = {k: [] for k in makers}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        src = make_folder(root, args.size, args.count)
        for name, make in makers.items():  # warm-up: kernels, thread pools, page cache
            make().translate_folder(src, root / f"warm-{name}", workers=args.workers)
        for r in range(args.rounds):
            for name, make in makers.items():
                t = make()
                t0 = time.perf_counter()
                rep = t.translate_folder(src, root / f"{name}-{r}", workers=args.workers)
                dt = time.perf_counter() - t0
                assert not rep.failed and len(rep.ok) == args.count, rep.failed
                rates[name].append(args.count / dt)
        same = all((root / "reference-0" / f.name).read_bytes() == (root / "this tree-0" / f.name).read_bytes()
                   for f in (root / "reference-0").iterdir())
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(f"reference {ref}; {args.count} images {args.size}px; resnet ngf={args.ngf} blocks={args.blocks}; "
          f"{args.threads} threads, {args.workers} decode workers, {args.rounds} alternating rounds")
    for k, v in rates.items():
        print(f"{k:>10}: median {med[k]:.2f} img/s  (rounds: {', '.join(f'{x:.2f}' for x in v)})")
    print(f"ratio this tree / reference: {med['this tree'] / med['reference']:.3f}; identical outputs: {same}")


if __name__ == "__main__":
    main()
