"""Evaluation during training: numbers on held-out images, never a change to training state.

The ground-truth translation error on domains that know each image's counterpart (the synthetic
tasks); for paired schemes (pix2pix) L1, PSNR and SSIM against the held-out pairs' real targets
(:mod:`imtrans.engine.paired_eval`); and FID/KID of each direction (paired: of G's outputs against
the held-out targets) on the held-out split when a feature extractor is given and its weights are
available (:func:`imtrans.eval.fid_kid_for_run`; otherwise ``notes`` says once why they are skipped).  ``best_key`` names the metric that selects
``checkpoints/best`` (lower is better): ``fid_a2b`` when FID is measured; ``None`` keeps no ``best``.
"""

from __future__ import annotations

from typing import Any, Optional

import torch

from imtrans.schemes.base import preserve_state


class Evaluator:
    """Evaluate a scheme's translators on the held-out domains ``test_a`` / ``test_b``."""

    best_key: Optional[str] = None

    def __init__(self, domains: dict[str, Any], augment, device: torch.device, max_images: int = 32,
                 features: Optional[dict[str, Any]] = None, fid_images: Optional[int] = None) -> None:
        self.domains = domains
        self.augment = augment
        self.device = device
        self.max_images = max_images
        self.fid_images = fid_images
        #: what a person should read once at the start (e.g. why FID is skipped)
        self.notes: list[str] = []
        self.extractor = self._extractor(features) if features is not None else None
        if self.extractor is not None:
            self.best_key = "fid_a2b"

    def _extractor(self, spec: dict[str, Any]):
        from imtrans.errors import ImtransError
        from imtrans.eval.evaluate import extractor_from_spec

        try:
            return extractor_from_spec(spec)  # never a 100 MB download in the middle of a run
        except ImtransError as e:
            self.notes.append(f"FID/KID skipped: {e}")
            return None

    @property
    def has_ground_truth(self) -> bool:
        return any(d is not None and hasattr(d, "target") for k, d in self.domains.items() if k.startswith("test"))

    @torch.no_grad()
    def evaluate(self, scheme) -> dict[str, float]:
        """Metrics by name; empty when nothing can be measured."""
        if getattr(scheme, "paired", False):
            return self._paired(scheme)
        out: dict[str, float] = {}
        with preserve_state(scheme):
            for side, direction in (("test_a", "a2b"), ("test_b", "b2a")):
                dom = self.domains.get(side)
                if dom is None or not hasattr(dom, "target") or direction not in scheme.translators:
                    continue
                out.update(self._ground_truth(scheme, dom, direction))
            if self.extractor is not None:
                for direction, src, dst in (("a2b", "test_a", "test_b"), ("b2a", "test_b", "test_a")):
                    if direction in scheme.translators and None not in (self.domains.get(src), self.domains.get(dst)):
                        out.update(self._fid_kid(scheme, direction, self.domains[src], self.domains[dst]))
        return out

    def _fid_kid(self, scheme, direction: str, src, dst) -> dict[str, float]:
        """``fid_<dir>``, ``kid_<dir>`` and ``kid_std_<dir>`` of the translations of ``src`` against ``dst``."""
        import copy

        from imtrans.eval import fid_kid_for_run
        from imtrans.translate import Translator

        net = scheme.translator(direction)
        # A copy: the Translator moves, casts and switches its network's mode.  pix2pix: the scheme's
        # test_mode and training precision, as its paired metrics (and `imtrans translate` of the checkpoint).
        # Eager PyTorch: the weights change between evaluations, so an exported graph would serve one use.
        mode = getattr(scheme, "test_mode", None)
        t = Translator(copy.deepcopy(getattr(net, "module", net)), device=self.device,
                       precision=scheme.precision.mode if mode else "auto", norm_mode=mode or "eval",
                       backend="torch")
        res = fid_kid_for_run(t.translate_batch, src, dst, self.extractor, max_images=self.fid_images,
                              device=self.device)
        return {f"fid_{direction}": res["fid"], f"kid_{direction}": res["kid_mean"],
                f"kid_std_{direction}": res["kid_std"]}

    def _paired(self, scheme) -> dict[str, float]:
        """L1 / PSNR / SSIM of G(input) against the real targets of the held-out pairs (see paired_eval);
        FID/KID of G(inputs) against the targets when an extractor is given."""
        from imtrans.engine.paired_eval import paired_metrics

        pairs = self.domains.get("test_a")
        if pairs is None or not hasattr(pairs, "target"):
            return {}
        run = getattr(scheme, "test_forward", None) or scheme.translator("a2b")
        with preserve_state(scheme):
            out = paired_metrics(run, pairs, self.augment, self.device, self.max_images)
            if self.extractor is not None and self.domains.get("test_b") is not None:
                # G(inputs) against the real targets as a set: the realism that L1 does not see
                out.update(self._fid_kid(scheme, "a2b", pairs, self.domains["test_b"]))
        return out

    def _ground_truth(self, scheme, dom, direction: str) -> dict[str, float]:
        """``gt_l1_<dir>``: mean |G(x) - target(x)| in [0, 1] pixel units; ``copy_l1_<dir>``: the
        error of returning the input unchanged, a baseline that shows how much was learnt."""
        from imtrans.augment import to_model_range

        n = min(len(dom), self.max_images)
        net = scheme.translator(direction)
        was_training = net.training
        net.eval()
        errs, copy = [], []
        try:
            for i0 in range(0, n, 16):
                idx = range(i0, min(n, i0 + 16))
                x = to_model_range(torch.stack([self.augment.prepare(dom.load(i)) for i in idx]), self.device)
                y = to_model_range(torch.stack([self.augment.prepare(dom.target(i)) for i in idx]), self.device)
                with scheme.precision.autocast():
                    pred = net(x).float()
                errs.append((pred - y).abs().mean(dim=(1, 2, 3)) / 2)
                copy.append((x - y).abs().mean(dim=(1, 2, 3)) / 2)
        finally:
            net.train(was_training)
        return {f"gt_l1_{direction}": float(torch.cat(errs).mean()),
                f"copy_l1_{direction}": float(torch.cat(copy).mean())}
