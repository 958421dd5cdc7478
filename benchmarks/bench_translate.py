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

    load_plugins()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G = registry.build("generator", "resnet", ngf=args.ngf, n_blocks=args.blocks)
    if args.precision == "naive":
        naive(G, Path(args.src), Path(args.dst))
        return
    backend, prec = args.precision.split(":")
    t = Translator(G, device="cpu", precision=prec, backend=backend, batch_size=args.batch_size or None, tile=args.tile)
    src = Path(args.src)
    files = sorted(src.iterdir())
    if prec == "int8":  # calibrated on the first images of the folder, as the CLI does (not timed)
        from imtrans.translate import io as tio

        print(f"int8 held-out PSNR vs fp32: {t.calibrate([t._prepare(tio.load_image(f, None)[0]) for f in files[:6]]):.1f} dB",
              file=sys.stderr)
    # Warm-up on one image (first-call allocations, oneDNN kernel selection, ORT session).
    with tempfile.TemporaryDirectory() as warm:
        t.translate_folder(files[0], warm)
    t0 = time.perf_counter()
    rep = t.translate_folder(src, args.dst, workers=args.workers)
    dt = time.perf_counter() - t0
    assert not rep.failed, rep.failed
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"images": len(rep.ok), "seconds": dt, "img_per_s": len(rep.ok) / dt, "peak_rss_mb": rss_mb}))


def naive(G, src: Path, dst: Path) -> None:
    """The reference: what the official test.py does per image, sequentially, in fp32."""
    import numpy as np
    import torch
    from PIL import Image

    G.eval()
    dst.mkdir(parents=True, exist_ok=True)
    files = sorted(src.iterdir())

    def one(f: Path, out: Path) -> None:
        img = np.asarray(Image.open(f).convert("RGB"), dtype=np.float32)
        x = torch.from_numpy(img).permute(2, 0, 1).unsqueeze(0) / 127.5 - 1
        with torch.no_grad():
            y = G(x)[0]
        arr = ((y.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        Image.fromarray(arr).save(out)

    one(files[0], dst / "warmup.png")
    t0 = time.perf_counter()
    for f in files:
        one(f, dst / f.name)
    dt = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"images": len(files), "seconds": dt, "img_per_s": len(files) / dt, "peak_rss_mb": rss_mb}))


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
        env = dict(os.environ, IMTRANS_HOME=str(root / "home"))  # the ONNX cache starts empty
        for size, count in ((256, args.count), (1024, args.count_large)):
            if count <= 0:
                continue
            src = copy_folder(root, args.images, size, count) if args.images else make_folder(root, size, count)
            results: dict[str, list[float]] = {}
            notes: dict[str, str] = {}
            for rnd in range(args.rounds):
                for prec in args.precisions.split(","):
                    dst = root / f"out{size}-{prec.replace(':', '-')}-{rnd}"
                    cmd = [sys.executable, __file__, "--child", "--src", str(src), "--dst", str(dst), "--precision", prec,
                           "--threads", str(args.threads), "--ngf", str(args.ngf), "--blocks", str(args.blocks), "--workers", str(args.workers),
                           "--batch-size", str(args.batch_size)] + (["--tile", str(args.tile)] if args.tile else [])
                    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
                    if res.returncode:
                        notes[prec] = "failed: " + " ".join(res.stderr.strip().splitlines()[-1:])
                        continue
                    notes.setdefault(prec, " ".join(ln for ln in res.stderr.splitlines() if "PSNR" in ln))
                    results.setdefault(prec, []).append(json.loads(res.stdout.strip().splitlines()[-1])["img_per_s"])
            report(root, size, args.precisions.split(","), results, notes)


def cpu_line() -> str:
    from imtrans.engine.runtime import cpu_flags

    model = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                  if ln.startswith("model name")), "unknown") if Path("/proc/cpuinfo").exists() else "unknown"
    keys = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")
    return f"cpu: {model}, {os.cpu_count()} cores; flags: {' '.join(k for k in keys if k in cpu_flags()) or 'none of ' + ','.join(keys)}"


def report(root: Path, size: int, precs: list[str], results: dict, notes: dict) -> None:
    import statistics

    naive = statistics.median(results["naive"]) if "naive" in results else None
    print(f"{'size':>9} {'config':>17} {'img/s':>8} {'vs naive':>8} {'PSNR vs naive dB':>16}  note")
    for prec in precs:
        if prec not in results:
            print(f"{size:>4}x{size:<4} {prec:>17} {'-':>8} {'-':>8} {'-':>16}  {notes.get(prec, '')}")
            continue
        ips = statistics.median(results[prec])
        q = folder_psnr(root / f"out{size}-{prec.replace(':', '-')}-0", root / f"out{size}-naive-0") if naive else float("nan")
        ratio = f"{ips / naive:.2f}x" if naive else "-"
        print(f"{size:>4}x{size:<4} {prec:>17} {ips:>8.2f} {ratio:>8} {q:>16.1f}  {notes.get(prec, '')}")

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
