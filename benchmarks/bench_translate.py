"""End-to-end throughput of `Translator.translate_folder` (decode + model + encode + atomic write).

Not a test.  Creates folders of random 256x256 and 1024x1024 PNGs, builds a
full-size CycleGAN generator (resnet, ngf=64, 9 blocks, random weights: speed
does not depend on the values) and translates each folder at fp32 and bf16, next to a naive fp32 loop written like the
official test.py (decode, one forward pass per image, encode, all in sequence) in the same run.
Every configuration runs in its own subprocess so that the peak RSS
(``resource.getrusage(...).ru_maxrss``) belongs to that configuration alone.

    python benchmarks/bench_translate.py --count 8 --count-large 2 [--tile 512] [--threads 2]
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
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(d / f"{i:04d}.png", compress_level=1)
    return d


def child(args: argparse.Namespace) -> None:
    import torch

    from imtrans import registry
    from imtrans.plugins import load_plugins
    from imtrans.translate import Translator

    load_plugins()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    G = registry.build("generator", "resnet", ngf=64, n_blocks=9)
    if args.precision == "naive":
        naive(G, Path(args.src), Path(args.dst))
        return
    t = Translator(G, device="cpu", precision=args.precision, batch_size=args.batch_size or None, tile=args.tile)
    src = Path(args.src)
    # Warm-up on one image (first-call allocations, oneDNN kernel selection).
    first = sorted(src.iterdir())[0]
    with tempfile.TemporaryDirectory() as warm:
        t.translate_folder(first, warm)
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
    ap.add_argument("--precisions", default="naive,fp32,bf16", help="naive = official-test.py-like fp32 loop")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--src", help=argparse.SUPPRESS)
    ap.add_argument("--dst", help=argparse.SUPPRESS)
    ap.add_argument("--precision", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return
    from imtrans.engine.runtime import cpu_has_fast_bf16

    print(f"cpu bf16 (avx512_bf16/amx): {cpu_has_fast_bf16()}; torch threads {args.threads}; batch {args.batch_size}")
    print(f"{'size':>9} {'precision':>9} {'images':>6} {'img/s':>8} {'s/img':>7} {'peak RSS MB':>11}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for size, count in ((256, args.count), (1024, args.count_large)):
            if count <= 0:
                continue
            src = make_folder(root, size, count)
            for prec in args.precisions.split(","):
                dst = root / f"out{size}{prec}"
                cmd = [sys.executable, __file__, "--child", "--src", str(src), "--dst", str(dst), "--precision", prec,
                       "--threads", str(args.threads), "--workers", str(args.workers),
                       "--batch-size", str(args.batch_size)] + (["--tile", str(args.tile)] if args.tile else [])
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode:
                    print(f"{size:>9} {prec:>9} failed: {res.stderr.strip().splitlines()[-1:]}")
                    continue
                r = json.loads(res.stdout.strip().splitlines()[-1])
                print(f"{size:>4}x{size:<4} {prec:>9} {r['images']:>6} {r['img_per_s']:>8.2f} "
                      f"{1 / r['img_per_s']:>7.2f} {r['peak_rss_mb']:>11.0f}")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
