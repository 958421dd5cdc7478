"""FID/KID evaluation speed: feature extraction at fp32 vs bf16, and a full `imtrans eval` of 120 images.

Not a test.  Uses real photos (the first images of a horse2zebra-style layout's
trainA/trainB, 256 px JPEGs) as stand-ins for a test split; the weights are
the FID Inception's when ``--weights FILE`` is given, else random weights of
the same architecture (speed does not depend on the values; the bf16-vs-fp32
FID check is then made on a random network, see docs/eval.md).

1. features: the same ``--count`` images of A and of B through the extractor
   at fp32 and at bf16 in one process (alternating, best of ``--repeat``):
   images/s, and FID(A, B) at both precisions (bf16 must stay within 0.5 %);
2. full eval: a 9-block resnet generator (official size, random weights) in a
   checkpoint, ``evaluate_run`` on 120 source and 120 real images at 256 px:
   translation + features of both sides + FID/KID, with a cold and a warm
   reference cache.

    python benchmarks/bench_eval.py --data datasets/horse2zebra [--count 24] [--eval-count 120] [--threads 2]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
import warnings
from pathlib import Path


def _images(folder: Path, n: int):
    from imtrans.data.imageio import list_images, open_rgb, pil_to_uint8_tensor

    paths = list_images(folder)[:n]
    return [pil_to_uint8_tensor(open_rgb(p)) for p in paths], paths


def bench_features(args, weights) -> None:
    import copy

    from imtrans.eval import extract_features, fid_from_features
    from imtrans.eval.features import inception_v3_fid

    a, _ = _images(args.data / "trainA", args.count)
    b, _ = _images(args.data / "trainB", args.count)
    e32 = inception_v3_fid(weights=weights)
    e16 = copy.deepcopy(e32).set_precision("bf16")
    extract_features(a[:2], e32), extract_features(a[:2], e16)  # warm-up (kernel selection)
    best = {"fp32": float("inf"), "bf16": float("inf")}
    feats = {}
    for _ in range(args.repeat):
        for name, ext in (("fp32", e32), ("bf16", e16)):
            t0 = time.perf_counter()
            fa = extract_features(a, ext, batch_size=args.batch_size)
            best[name] = min(best[name], time.perf_counter() - t0)
            feats[name] = (fa, extract_features(b, ext, batch_size=args.batch_size))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fid = {k: fid_from_features(*v) for k, v in feats.items()}
    print(f"| features | precision | img/s | FID(A, B) {args.count} vs {args.count} |")
    print("|---|---|---|---|")
    for k in ("fp32", "bf16"):
        print(f"| {e32.identity()['weights_sha256'][:12]} | {k} | {args.count / best[k]:.2f} | {fid[k]:.3f} |")
    rel = abs(fid["bf16"] - fid["fp32"]) / fid["fp32"] * 100
    print(f"\nbf16 speed-up {best['fp32'] / best['bf16']:.2f}x; bf16 moves FID by {rel:.3f} % (limit 0.5 %)\n")


def bench_eval(args, weights) -> None:
    import torch

    from imtrans import registry
    from imtrans.engine.checkpoint import save_checkpoint
    from imtrans.eval import evaluate_run
    from imtrans.eval.features import inception_v3_fid
    from imtrans.plugins import load_plugins

    load_plugins()  # a script is an entry point: parts are registered by the plugins

    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    try:
        for side, src in (("testA", "trainA"), ("testB", "trainB")):
            (tmp / "data" / side).mkdir(parents=True)
            for p in _images(args.data / src, args.eval_count)[1]:
                shutil.copy(p, tmp / "data" / side / p.name)
        torch.manual_seed(0)
        G = registry.build("generator", "resnet", n_blocks=9)
        meta = {"nets": {"G": {"kind": "generator", "spec": G.imtrans_part.spec}}, "translators": {"a2b": "G"}}
        save_checkpoint(tmp / "run" / "checkpoints" / "latest", {"G": G}, meta, None)
        ext = inception_v3_fid(weights=weights)
        print(f"| full eval, {args.eval_count} + {args.eval_count} images at 256 px | reference cache | seconds | "
              f"FID | KID |")
        print("|---|---|---|---|---|")
        for cache in ("cold", "warm"):
            t0 = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                res = evaluate_run(tmp / "run", "a2b", data_root=tmp / "data", extractor=ext, device="cpu",
                                   precision=args.precision, batch_size=args.batch_size)
            dt = time.perf_counter() - t0
            print(f"| translate ({args.precision}) + features (fp32) + metrics | {cache} | {dt:.1f} | "
                  f"{res.fid:.2f} | {res.kid_mean:.4f} ± {res.kid_std:.4f} |")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="folder with trainA/ and trainB/ (256 px photos)")
    ap.add_argument("--weights", default=None, help="pt_inception-2015-12-05-6726825d.pth (default: random weights)")
    ap.add_argument("--count", type=int, default=24)
    ap.add_argument("--eval-count", type=int, default=120)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--precision", default="auto", help="translation precision")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--only", choices=("features", "eval"), default=None)
    args = ap.parse_args()
    import os

    import torch

    torch.set_num_threads(args.threads)
    home = tempfile.mkdtemp(prefix="bench_eval_home_")
    os.environ["IMTRANS_HOME"] = home  # a cold reference cache that is not the user's
    weights = args.weights or "random"
    print(f"torch {torch.__version__}, {args.threads} threads, weights: {weights}\n")
    if args.only in (None, "features"):
        bench_features(args, weights)
    if args.only in (None, "eval"):
        bench_eval(args, weights)
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
