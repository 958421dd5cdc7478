"""Does discriminator augmentation curb D's overfitting on 100 images? A small CPU measurement.

Trains recipes/cyclegan_horse2zebra_100.toml shrunk to fit a CPU (64 px crops, ngf/ndf 16,
3 residual blocks, constant LR, batch 1, one thread) twice from the same seed: with its
DiffAugment and without any ``d_augment``.  Then, with D seeing plain images (no augmentation),
it reports for each discriminator the mean sign of its centred output, E[sign(D(x) - 0.5)]
(LSGAN's decision boundary is 0.5; ADA's r_t uses sign(D(x)) for logits centred at 0), on the
100 training reals and on 100 held-out reals: the next 100 images of the same training folders
in sorted order (the official test split is not on this machine).  The gap between the two is
the overfitting ADA measures.

    python benchmarks/bench_d_augment.py --root /work/shared/datasets/horse2zebra --steps 400
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def overrides(root: str, steps: int, out: str, name: str) -> list[str]:
    sets = [f'data.{s}.root="{root}"' for s in ("a", "b", "test_a", "test_b")]
    sets += [f'data.root="{root}"', "data.workers=0", "data.batch_size=1",
             'data.augment={name="resize_and_crop", load_size=72, crop_size=64}',
             "model.generator.ngf=16", "model.generator.n_blocks=3", "model.discriminator.ndf=16",
             "train.epochs=1000", "train.epochs_decay=0", f"train.max_steps={steps}", "train.precision=fp32",
             "train.device=cpu", "train.sample_every=0", "train.save_every_epochs=0", "train.eval_fid=false",
             "train.log_every=50", "train.checkpoint_every=0", f'output.root="{out}"', f'output.name="{name}"']
    return sets


def images(folder: Path, lo: int, hi: int) -> torch.Tensor:
    """Images lo..hi-1 of ``folder`` in sorted order, resized to 72 and centre-cropped to 64, in [-1, 1]."""
    from imtrans.augment import ResizeAndCrop, to_model_range
    from imtrans.data.imageio import list_images, open_rgb

    aug = ResizeAndCrop(load_size=72, crop_size=64).eval()
    paths = list_images(folder)[lo:hi]
    return aug(to_model_range(torch.stack([aug.prepare(open_rgb(p)) for p in paths])))


@torch.no_grad()
def mean_sign(D, x: torch.Tensor) -> float:
    return float(torch.cat([torch.sign(D(x[i:i + 20]) - 0.5).flatten() for i in range(0, len(x), 20)]).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="datasets/horse2zebra")
    ap.add_argument("--steps", type=int, default=400)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from imtrans.build import build_net_from_meta
    from imtrans.engine.trainer import Trainer
    from imtrans.plugins import load_plugins
    from imtrans.recipe import load_recipe

    load_plugins()
    root = Path(args.root)
    data = {side: {"train": images(root / f"train{side}", 0, 100), "held_out": images(root / f"train{side}", 100, 200)}
            for side in ("A", "B")}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, augment in (("diffaugment", True), ("none", False)):
            r = load_recipe(ROOT / "recipes" / "cyclegan_horse2zebra_100.toml",
                            overrides(str(root), args.steps, tmp, label))
            if not augment:
                r.model.d_augment = None  # the same recipe with no discriminator augmentation
            t0 = time.perf_counter()
            Trainer(r, progress=False, handle_signals=False).fit()
            secs = time.perf_counter() - t0
            run = Path(tmp) / label / "checkpoints" / "latest"
            row = {"train_seconds": round(secs, 1)}
            for d_name, side in (("D_A", "A"), ("D_B", "B")):
                D = build_net_from_meta(run, d_name).eval()
                row[d_name] = {k: round(mean_sign(D, x), 3) for k, x in data[side].items()}
            results[label] = row
            print(label, json.dumps(row), flush=True)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
