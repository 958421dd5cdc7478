"""Evaluation for paired schemes: L1, PSNR and SSIM of G(input) against the real target.

Held-out pairs are prepared like training images (the augmentation's CPU
``prepare``, then its ``eval()`` forward: centre crop, no flip, the same for
both halves) and compared in [0, 1] pixel units:

* ``gt_l1_a2b``: mean absolute error (the name the unpaired ground-truth
  evaluation uses, so plots and checks read both the same way);
* ``psnr_a2b``: PSNR in dB with peak 1, per image, averaged
  (:func:`kornia.metrics.psnr`);
* ``ssim_a2b``: mean SSIM, Gaussian window 11 / sigma 1.5 over valid windows
  (:func:`kornia.metrics.ssim`), per image, averaged;
* ``copy_*``: the same three numbers for returning the input unchanged, the
  baseline that shows how much was learnt (only when input and target have the
  same number of channels).
"""

from __future__ import annotations

from typing import Any, Callable

import torch

from imtrans.augment import to_model_range


def _scores(pred01: torch.Tensor, y01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-image L1, PSNR and SSIM of two float batches in [0, 1]."""
    from kornia.metrics import psnr, ssim

    l1 = (pred01 - y01).abs().mean(dim=(1, 2, 3))
    p = torch.stack([psnr(pred01[i], y01[i], 1.0) for i in range(pred01.shape[0])])
    window = 11 if min(pred01.shape[-2:]) > 11 else 3
    s = ssim(pred01, y01, window, max_val=1.0, padding="valid").mean(dim=(1, 2, 3))
    return l1, p, s


@torch.no_grad()
def paired_metrics(
    translate: Callable[[torch.Tensor], torch.Tensor],
    pairs: Any,
    augment: Any,
    device: torch.device,
    n: int,
    direction: str = "a2b",
    batch: int = 8,
) -> dict[str, float]:
    """Metrics of ``translate`` (float ``[B,C,H,W]`` in [-1,1] -> same) on the first ``n`` held-out pairs.

    ``pairs`` is a one-sided view with ``load(i)`` (input) and ``target(i)``
    (its partner), e.g. :class:`imtrans.data.paired.PairSide`.  Pairs that cannot
    be read are left out.  The augmentation is put back in its previous mode.
    """
    n = min(n, len(pairs))
    was_training = augment.training
    augment.eval()
    rows: dict[str, list[torch.Tensor]] = {}
    try:
        for i0 in range(0, n, batch):
            xs, ys = [], []
            for i in range(i0, min(n, i0 + batch)):
                try:
                    x, y = augment.prepare(pairs.load(i)), augment.prepare(pairs.target(i))
                except Exception:  # noqa: BLE001 - a bad pair was already reported by the training data
                    continue
                if x.shape[-2:] == y.shape[-2:]:
                    xs.append(x)
                    ys.append(y)
            if not xs:
                continue
            x, y = augment(to_model_range(torch.stack(xs), device), to_model_range(torch.stack(ys), device))
            pred01 = ((translate(x).float() + 1) / 2).clamp(0, 1)
            y01, x01 = (y + 1) / 2, (x + 1) / 2
            for key, val in zip(("gt_l1", "psnr", "ssim"), _scores(pred01, y01)):
                rows.setdefault(key, []).append(val)
            if x01.shape == y01.shape:
                for key, val in zip(("copy_l1", "copy_psnr", "copy_ssim"), _scores(x01, y01)):
                    rows.setdefault(key, []).append(val)
    finally:
        augment.train(was_training)
    return {f"{k}_{direction}": float(torch.cat(v).mean()) for k, v in rows.items()}
