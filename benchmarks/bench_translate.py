"""End-to-end throughput of `Translator.translate_folder` (decode + model + encode + atomic write).

Not a test.  Creates folders of random 256x256 and 1024x1024 PNGs, builds a
full-size CycleGAN generator (resnet, ngf=64, 9 blocks, random weights: speed
does not depend on the values) and translates each folder with every backend and precision given
(``torch:fp32``, ``torch:bf16``, ``onnxruntime:fp32``, ``onnxruntime:int8``), next to a naive fp32 loop
written like the official test.py (decode, one forward pass per image, encode, all in sequence), in the
same run, alternating configurations over ``--rounds``.  Quality: PSNR of each output folder against
the naive fp32 outputs (inf = identical).  Inputs are smooth synthetic images, or ``--images DIR``.
Every configuration runs in its own subprocess so that the peak RSS
(``resource.getrusage(...).ru_maxrss``) belongs to that configuration alone.

    python benchmarks/bench_translate.py --count 8 --count-large 2 [--tile 512] [--threads 2] [--rounds 2]

Each configuration reports its warm throughput (a second pass over the folder) and its first use: from
building the translator with an empty ONNX cache (export and int8 calibration included) to the last
image written, the way a user's first ``imtrans translate`` runs; ``auto:auto`` is the default path.
To imitate an AVX2-only CPU, hold PyTorch and oneDNN to AVX2 (ONNX Runtime has no such switch)::

    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/bench_translate.py \
        --images DIR --count 40 --count-large 0 --threads 1 --pin 0 --rounds 2 \
        --precisions naive,auto:auto,torch:fp32,onnxruntime:int8 --checkpoint RUN
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def make_folder(root: Path, size: int, count: int) -> Path:
    import numpy as np
    from PIL import Image

    d = root / f"in{size}"
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(size)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(count):
        # Photo-like (smooth colour gradients + mild noise): int8 calibration needs realistic statistics.
        a, b, c = rng.uniform(-6, 6, 3)
        img = np.stack([np.sin(a * xx + b * yy + c + k) for k in range(3)], -1) * 0.4 + 0.5
        img = (img + rng.normal(0, 0.03, img.shape)).clip(0, 1)
        Image.fromarray((img * 255).astype(np.uint8)).save(d / f"{i:04d}.png", compress_level=1)
    return d


def copy_folder(root: Path, images: Path, size: int, count: int) -> Path:
    """The first ``count`` images of ``images``, resized to ``size`` px square."""
    from PIL import Image

    d = root / f"in{size}"
    d.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in images.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]
    for i, f in enumerate(files):
        Image.open(f).convert("RGB").resize((size, size), Image.Resampling.BICUBIC).save(d / f"{i:04d}.png")
    return d


def folder_psnr(a: Path, b: Path) -> float:
    """Mean PSNR (dB) of the images in ``a`` against the same names in ``b``."""
    import numpy as np
    from PIL import Image

    vals = []
    for f in sorted(b.glob("[0-9]*.png")):
        x = np.asarray(Image.open(a / f.name), dtype=np.float64)
        y = np.asarray(Image.open(f), dtype=np.float64)
        mse = ((x - y) ** 2).mean()
        vals.append(float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse))
    return sum(vals) / len(vals) if vals else float("nan")


def child(args: argparse.Namespace) -> None:
    import torch

    from imtrans import registry
    from imtrans.plugins import load_plugins
    from imtrans.translate import Translator

    if args.pin is not None:
        os.sched_setaffinity(0, {args.pin})
    load_plugins()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    if args.checkpoint:
        from imtrans.build import load_generator

        G = load_generator(args.checkpoint, "a2b")
    else:
        G = registry.build("generator", "resnet", ngf=args.ngf, n_blocks=args.blocks)
    src, files = Path(args.src), sorted(Path(args.src).iterdir())
    if args.precision == "naive":
        first = naive(G, files, Path(args.dst))
        warm = naive(G, files, Path(args.dst))
        _report_child(len(files), first, warm)
        return
    backend, prec = args.precision.split(":")
    # First use: from an empty ONNX cache (the parent gives each run its own), export and int8
    # calibration included, as a user's first `imtrans translate` pays them.
    t0 = time.perf_counter()
    t = Translator(G, device="cpu", precision=prec, backend=backend, batch_size=args.batch_size or None, tile=args.tile)
    rep = t.translate_folder(src, args.dst, workers=args.workers)
    first = time.perf_counter() - t0
    assert not rep.failed, rep.failed
    if t.backend is not None and t.backend.int8_psnr is not None:
        print(f"int8 held-out PSNR vs fp32: {t.backend.int8_psnr:.1f} dB", file=sys.stderr)
    print(f"backend {t.backend_name} at {t.precision}", file=sys.stderr)
    t0 = time.perf_counter()
    rep = t.translate_folder(src, args.dst, workers=args.workers)
    _report_child(len(rep.ok), first, time.perf_counter() - t0)


def _report_child(n: int, first: float, warm: float) -> None:
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"images": n, "first_s": first, "seconds": warm, "img_per_s": n / warm, "peak_rss_mb": rss_mb}))


def naive(G, files: list[Path], dst: Path) -> float:
    """The reference: what the official test.py does per image, sequentially, in fp32; returns seconds."""
    import numpy as np
    import torch
    from PIL import Image

    G.eval()
    dst.mkdir(parents=True, exist_ok=True)

    def one(f: Path, out: Path) -> None:
        img = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32)
        x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1
        with torch.no_grad():
            y = G(x)[0]
        arr = ((y.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        Image.fromarray(arr).save(out)

    t0 = time.perf_counter()
    for f in files:
        one(f, dst / f.name)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=16, help="256x256 images")
    ap.add_argument("--count-large", type=int, default=4, help="1024x1024 images")
    ap.add_argument("--batch-size", type=int, default=0, help="0: the translator's default (1 on CPU, 4 on GPU)")
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 1), help="torch intra-op threads")
    ap.add_argument("--workers", type=int, default=2, help="decode threads")
    ap.add_argument("--tile", type=int, default=None, help="also tile images above N px")
    ap.add_argument("--precisions", default="naive,torch:fp32,torch:bf16,onnxruntime:fp32,onnxruntime:int8",
                    help="naive = official-test.py-like fp32 loop; others backend:precision")
    ap.add_argument("--ngf", type=int, default=64, help="generator width (64 = official; small for a smoke run)")
    ap.add_argument("--blocks", type=int, default=9, help="resnet blocks (9 = official)")
    ap.add_argument("--rounds", type=int, default=1, help="alternate all configurations this many times")
    ap.add_argument("--images", type=Path, default=None, help="use these images (resized) instead of synthetic ones")
    ap.add_argument("--checkpoint", default=None, help="translate with this run's G (trained weights) instead of random ones")
    ap.add_argument("--pin", type=int, default=None, help="run every configuration on this one CPU core")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--dst", help=argparse.SUPPRESS)
    ap.add_argument("--precision", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    print(cpu_line())
    print(f"torch threads {args.threads}; batch {args.batch_size}; load average {os.getloadavg()[0]:.1f}; "
          f"rounds {args.rounds} (configurations alternate within each round)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for size, count in ((256, args.count), (1024, args.count_large)):
            if count <= 0:
                continue
            src = copy_folder(root, args.images, size, count) if args.images else make_folder(root, size, count)
            results: dict[str, list[float]] = {}
            notes: dict[str, str] = {}
            firsts: dict[str, list[float]] = {}
            for rnd in range(args.rounds):
                for prec in args.precisions.split(","):
                    dst = root / f"out{size}-{prec.replace(':', '-')}-{rnd}"
                    cmd = [sys.executable, __file__, "--child", "--src", str(src), "--dst", str(dst), "--precision", prec,
                           "--threads", str(args.threads), "--ngf", str(args.ngf), "--blocks", str(args.blocks), "--workers", str(args.workers),
                           "--batch-size", str(args.batch_size)] + (["--tile", str(args.tile)] if args.tile else [])
                    cmd += (["--checkpoint", args.checkpoint] if args.checkpoint else []) + (["--pin", str(args.pin)] if args.pin is not None else [])
                    env = dict(os.environ, IMTRANS_HOME=str(root / f"home-{size}-{prec}-{rnd}"))  # an empty ONNX cache
                    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    if res.returncode:
                        notes[prec] = "failed: " + " ".join(res.stderr.strip().splitlines()[-1:])
                        continue
                    notes.setdefault(prec, "; ".join(ln for ln in res.stderr.splitlines() if "PSNR" in ln or "backend " in ln))
                    out = json.loads(res.stdout.strip().splitlines()[-1])
                    results.setdefault(prec, []).append(out["img_per_s"])
                    firsts.setdefault(prec, []).append(out["first_s"])
            report(root, size, args.precisions.split(","), results, firsts, notes)


def cpu_line() -> str:
    from imtrans.engine.runtime import cpu_flags, raw_cpu_flags

    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "unknown") if Path("/proc/cpuinfo").exists() else "unknown"
    keys = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    have = " ".join(k for k in keys if k in raw_cpu_flags()) or "none of " + ",".join(keys)
    held = raw_cpu_flags() - cpu_flags()
    note = f"; PyTorch held to AVX2 (ATEN_CPU_CAPABILITY/ONEDNN_MAX_CPU_ISA), ONNX Runtime not" if held else ""
    return f"cpu: {model}, {os.cpu_count()} cores; flags: {have}{note}"


def report(root: Path, size: int, precs: list[str], results: dict, firsts: dict, notes: dict) -> None:
    """Warm img/s and first-use seconds (medians over rounds), each also as a ratio to the naive loop."""
    import statistics

    naive = statistics.median(results["naive"]) if "naive" in results else None
    naive_first = statistics.median(firsts["naive"]) if "naive" in firsts else None
    print(f"{'size':>9} {'config':>19} {'warm img/s':>10} {'vs naive':>8} {'first use s':>11} {'vs naive':>8} "
          f"{'PSNR vs naive dB':>16}  note")
    for prec in precs:
        if prec not in results:
            print(f"{size:>4}x{size:<4} {prec:>19} {'-':>10} {'-':>8} {'-':>11} {'-':>8} {'-':>16}  {notes.get(prec, '')}")
            continue
        ips, first = statistics.median(results[prec]), statistics.median(firsts[prec])
        q = folder_psnr(root / f"out{size}-{prec.replace(':', '-')}-0", root / f"out{size}-naive-0") if naive else float("nan")
        ratio = f"{ips / naive:.2f}x" if naive else "-"
        fratio = f"{naive_first / first:.2f}x" if naive_first else "-"
        print(f"{size:>4}x{size:<4} {prec:>19} {ips:>10.2f} {ratio:>8} {first:>11.1f} {fratio:>8} {q:>16.1f}  "
              f"{notes.get(prec, '')}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
