"""The training loop: data, precision, checkpoints, logging, samples, resume.

The trainer knows only the :class:`~imtrans.schemes.base.Scheme` interface.
Losses stay on the device and are read back only when they are logged, so a
step never waits on the host.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch
from torch.utils.data import DataLoader

from imtrans import registry
from imtrans.engine import checkpoint as ckpt
from imtrans.engine import distributed as D
from imtrans.engine.lock import RunLock
from imtrans.engine.report import MetricsLog, grid_image, save_png, truncate_metrics, write_index
from imtrans.engine.runtime import resolve_device, resolve_precision, rng_state, seed_everything, set_rng_state
from imtrans.errors import ImtransError
from imtrans.recipe import PartSpec, Recipe


class NonFiniteLossError(ImtransError):
    """A loss became NaN or Inf."""


@dataclass
class TrainResult:
    run_dir: Path
    steps: int
    epoch: int
    seconds: float
    eval_before: dict[str, float] = field(default_factory=dict)
    eval_after: dict[str, float] = field(default_factory=dict)
    stopped: str = "finished"
    skipped_images: int = 0


def _domain_specs(recipe: Recipe) -> dict[str, tuple[PartSpec, str] | None]:
    """Training and held-out domain specs, from explicit tables or the unpaired layout."""
    d = recipe.data
    out: dict[str, tuple[PartSpec, str] | None] = {}
    for side in ("a", "b"):
        spec = getattr(d, side)
        if spec is None:
            if d.root is None:
                raise ImtransError(
                    f"{recipe.source}: data.{side} is not set and data.root is not set either; "
                    f"give data.root (an unpaired layout ROOT/trainA, trainB) or a [data.{side}] domain"
                )
            spec = PartSpec(name="layout", root=d.root, side=side, dataset=d.dataset)
        out[side] = (spec, "train")
        test = getattr(d, f"test_{side}")
        out[f"test_{side}"] = (test, "test") if test is not None else (spec, "test")
    return out


class Trainer:
    """Train a recipe's scheme into a run directory."""

    def __init__(
        self,
        recipe: Recipe,
        run_dir: Optional[Path] = None,
        resume: bool = False,
        progress: bool = True,
        console: Any = None,
        on_log: Optional[Callable[[dict[str, Any]], None]] = None,
        skip_nonfinite: int = 0,
        handle_signals: bool = True,
    ) -> None:
        self.recipe = recipe
        self.run_dir = Path(run_dir) if run_dir else Path(recipe.output.root) / recipe.run_name()
        self.resume = resume
        self.progress = progress
        self.console = console
        self.on_log = on_log
        self.skip_nonfinite = skip_nonfinite
        self.handle_signals = handle_signals
        self._stop_signal: Optional[str] = None
        self._stopping = False
        self._saved_step: Optional[int] = None  # step of the last checkpoint on disk (named in NaN errors)
        self.dist = D.DistInfo()
        self._log: Any = None

    # ------------------------------------------------------------------ set-up
    def _build_data(self, augment) -> tuple[Any, Any, dict[str, Any]]:
        from imtrans.data.paired import build_paired, scheme_is_paired
        from imtrans.data.unpaired import EpochSampler

        t = self.recipe.train
        if scheme_is_paired(self.recipe):  # pix2pix-style: batch["a"][i] and batch["b"][i] are one pair
            ds, domains = build_paired(self.recipe, augment.prepare)
        else:
            ds, domains = self._build_unpaired(augment)
        bs = self.recipe.data.batch_size
        if len(ds) < bs:
            raise ImtransError(f"the data has {len(ds)} images, fewer than data.batch_size = {bs}; lower data.batch_size")
        sampler = EpochSampler(len(ds), seed=t.seed, epoch=0, shuffle=True,
                               rank=self.dist.rank, world=self.dist.world)
        if len(sampler) < bs:
            raise ImtransError(
                f"the data has {len(ds)} images: {len(sampler)} per process for {self.dist.world} processes, "
                f"fewer than data.batch_size = {bs}; lower data.batch_size or use fewer processes"
            )
        # more decode processes than cores only makes them fight the training threads for CPU
        workers = min(self.recipe.data.workers, os.cpu_count() or 1)
        loader = DataLoader(
            ds, batch_size=bs, sampler=sampler, num_workers=workers, drop_last=True,
            pin_memory=self.device.type == "cuda", persistent_workers=workers > 0,
            # its own generator: creating loader iterators must not consume the global RNG,
            # or a resumed run would draw different augmentations than an uninterrupted one
            generator=torch.Generator().manual_seed(t.seed),
            prefetch_factor=4 if workers > 0 else None,
        )
        return ds, loader, domains

    def _build_unpaired(self, augment) -> tuple[Any, dict[str, Any]]:
        from imtrans.data.unpaired import UnpairedDataset

        specs = _domain_specs(self.recipe)
        domains: dict[str, Any] = {}
        for key, val in specs.items():
            spec, split = val  # type: ignore[misc]
            try:
                domains[key] = registry.build_spec("domain", spec.as_dict(), split)
            except ImtransError:
                if key.startswith("test"):
                    domains[key] = None  # no held-out split: samples come from training images
                    continue
                raise
        ds = UnpairedDataset(domains["a"], domains["b"], augment.prepare, augment.prepare,
                             seed=self.recipe.train.seed, cache=self.recipe.data.cache)
        return ds, domains

    def _next_batch(self, it):
        try:
            return next(it)
        except RuntimeError as e:
            if "stack expects each tensor to be equal size" not in str(e):
                raise
            raise ImtransError(
                f"images of different sizes cannot share a batch after data.augment "
                f"'{self.recipe.data.augment.name}' (it keeps aspect ratios); set data.batch_size = 1 "
                "or use a cropping preset such as resize_and_crop or scale_width_and_crop"
            ) from None

    def _fixed_batch(self, domain, augment, n: int) -> Optional[torch.Tensor]:
        from imtrans.augment import to_model_range

        if domain is None or len(domain) == 0:
            return None
        imgs = []
        for i in range(min(n, len(domain))):
            try:
                imgs.append(augment.prepare(domain.load(i)))
            except ImtransError:
                continue
        if not imgs:
            return None
        sizes = {tuple(x.shape) for x in imgs}
        if len(sizes) > 1:
            imgs = [x for x in imgs if tuple(x.shape) == tuple(imgs[0].shape)]
        x = to_model_range(torch.stack(imgs), self.device)
        augment.eval()
        with torch.no_grad():
            x = augment(x)
        augment.train()
        return x

    # ------------------------------------------------------------------ helpers
    def _meta(self, scheme, step: int, epoch: int) -> dict[str, Any]:
        nets = {}
        for name, net in scheme.networks().items():
            nets[name] = {"kind": getattr(net, "_imtrans_kind", "generator"), "spec": getattr(net, "_imtrans_spec", {})}
        return {
            "scheme": self.recipe.scheme.name,
            "step": step,
            "epoch": epoch,
            "nets": nets,
            "translators": dict(scheme.translators),
            "recipe": self.recipe.to_toml(),
        }

    def _state(self, scheme, step: int, epoch: int, step_in_epoch: int) -> dict[str, Any]:
        st = {
            "step": step,
            "epoch": epoch,
            "step_in_epoch": step_in_epoch,
            "optimizers": {k: o.state_dict() for k, o in scheme.optimizers().items()},
            "schedulers": {k: s.state_dict() for k, s in scheme.schedulers().items()},
            "scheme": scheme.extra_state(),
            "rng": rng_state(),
        }
        if scheme.precision.scaler is not None:
            st["scaler"] = scheme.precision.scaler.state_dict()
        return st

    def _gather_ranks(self, scheme, step: int, state: dict[str, Any]) -> None:
        """Distributed: every rank's RNG streams and pools into ``state``; check the replicas agree."""
        sums = {}
        with torch.no_grad():
            for name, net in scheme.networks().items():
                ps = [p.detach().double() for p in net.parameters()]
                sums[name] = (float(sum(p.abs().sum() for p in ps)), float(sum((p * p).sum() for p in ps)))
        mine = {"rng": rng_state(), "scheme": _to_cpu(scheme.extra_state()), "sums": sums}
        ranks = D.gather_objects(mine)
        identical = all(r["sums"] == ranks[0]["sums"] for r in ranks)
        if self.dist.is_main and self._log is not None:
            self._log.write({"kind": "replicas", "step": step, "world": self.dist.world, "identical": identical})
        if not identical:
            raise ImtransError(
                f"the {self.dist.world} processes no longer hold identical weights at step {step}; the run stopped "
                "so that no diverged checkpoint is written — report this with the recipe"
            )
        state["ranks"] = [{"rng": r["rng"], "scheme": r["scheme"]} for r in ranks]

    def save(self, scheme, step: int, epoch: int, step_in_epoch: int, snapshot: Optional[str] = None) -> Optional[Path]:
        if self._saved_step == step and not snapshot:
            return None  # already on disk (e.g. the epoch end was also the last step)
        state = self._state(scheme, step, epoch, step_in_epoch)
        if self.dist.enabled:
            self._gather_ranks(scheme, step, state)  # a collective: every rank takes part
            if not self.dist.is_main:
                self._saved_step = step
                return None
        meta = self._meta(scheme, step, epoch)
        cdir = self.run_dir / "checkpoints"
        try:
            path = ckpt.save_checkpoint(cdir / "latest", scheme.networks(), meta, state)
            if snapshot:
                ckpt.save_checkpoint(cdir / snapshot, scheme.networks(), meta, state)
        except OSError as e:
            raise ImtransError(
                f"writing the checkpoint in {cdir} failed ({e.strerror or e}); the previous checkpoint is kept — "
                "free disk space or fix permissions, then resume with --resume"
            ) from None
        self._saved_step = step
        return path

    def _load(self, scheme, path: Path) -> dict[str, Any]:
        try:
            return self._load_unchecked(scheme, path)
        except ckpt.CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as e:
            # a readable file whose state does not fit this run (another recipe, or garbage metadata)
            raise ckpt.CheckpointError(
                f"{path} cannot resume this run: its training state does not fit ({type(e).__name__}: {e}); "
                "resume with the recipe that made it, or start a new run"
            ) from None

    def _resume_from(self, scheme, run_dir: Path) -> dict[str, Any]:
        """Load ``latest``; if it is unreadable and ``latest.old`` exists, fall back to that one."""
        path = ckpt.resolve_checkpoint(run_dir)
        try:
            return self._load(scheme, path)
        except ckpt.CheckpointError as e:
            old = run_dir / "checkpoints" / "latest.old"
            if path == old or not (old / ckpt.WEIGHTS).is_file():
                raise
            import logging

            logging.getLogger("imtrans.train").warning("%s; resuming from %s instead", e, old)
            return self._load(scheme, old)

    def _load_unchecked(self, scheme, path: Path) -> dict[str, Any]:
        for name, net in scheme.networks().items():
            ckpt.load_into(net, ckpt.load_weights(path, name), f"{path} ({name})")
        st = ckpt.load_state(path)
        for k, o in scheme.optimizers().items():
            o.load_state_dict(st["optimizers"][k])
        for k, s in scheme.schedulers().items():
            s.load_state_dict(st["schedulers"][k])
        mine = st
        ranks = st.get("ranks") or []
        if self.dist.rank < len(ranks):
            mine = ranks[self.dist.rank]  # this rank's own pools and random streams
        elif self.dist.rank > 0:
            mine = {}  # a rank the checkpoint did not have: fresh pools, its own seeded streams
        scheme.load_extra_state(mine.get("scheme", {}))
        if "scaler" in st and scheme.precision.scaler is not None:
            scheme.precision.scaler.load_state_dict(st["scaler"])
        if "rng" in mine:
            set_rng_state(mine["rng"])
        return st

    def _augment_batch(self, augment, batch: dict[str, Any], paired: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Device-side augmentation; a pair's two halves share one crop and flip."""
        from imtrans.augment import to_model_range

        a, b = to_model_range(batch["a"], self.device), to_model_range(batch["b"], self.device)
        if paired:
            return augment(a, b)
        return augment(a), augment(b)

    @torch.no_grad()
    def evaluate(self, scheme, domains: dict[str, Any], augment) -> dict[str, float]:
        """Ground-truth translation error on held-out images whose counterpart is known.

        ``gt_l1_a2b`` is mean |G(a) - target(a)| in [0, 1] pixel units; ``copy_l1_a2b`` is the
        error of returning the input unchanged, a baseline that shows how much was learnt.
        """
        from imtrans.augment import to_model_range

        if getattr(scheme, "paired", False):
            from imtrans.engine.paired_eval import paired_metrics

            if domains.get("test_a") is None:
                return {}
            run = getattr(scheme, "test_forward", None) or scheme.translator("a2b")
            return paired_metrics(run, domains["test_a"], augment, self.device, self.recipe.train.eval_images)
        out: dict[str, float] = {}
        for side, direction in (("test_a", "a2b"), ("test_b", "b2a")):
            dom = domains.get(side)
            if dom is None or not hasattr(dom, "target") or direction not in scheme.translators:
                continue
            n = min(len(dom), self.recipe.train.eval_images)
            net = scheme.translator(direction)
            was_training = net.training
            net.eval()
            errs, copy = [], []
            for i0 in range(0, n, 16):
                idx = range(i0, min(n, i0 + 16))
                x = to_model_range(torch.stack([augment.prepare(dom.load(i)) for i in idx]), self.device)
                y = to_model_range(torch.stack([augment.prepare(dom.target(i)) for i in idx]), self.device)
                with scheme.precision.autocast():
                    pred = net(x).float()
                errs.append((pred - y).abs().mean(dim=(1, 2, 3)) / 2)
                copy.append((x - y).abs().mean(dim=(1, 2, 3)) / 2)
            net.train(was_training)
            out[f"gt_l1_{direction}"] = float(torch.cat(errs).mean())
            out[f"copy_l1_{direction}"] = float(torch.cat(copy).mean())
        return out

    def _should_stop(self, step: int) -> bool:
        """Stop after a signal; distributed ranks agree at log steps so they stop at the same step."""
        if not self.dist.enabled:
            self._stopping = self._stop_signal is not None
            return self._stopping
        if step % self.recipe.train.log_every:
            return False
        flag = D.all_mean(torch.tensor([1.0 if self._stop_signal else 0.0], device=self.device))
        if float(flag) > 0 and not self._stop_signal:
            self._stop_signal = "a signal to another rank"
        self._stopping = float(flag) > 0
        return self._stopping

    def _on_signal(self, signum, frame) -> None:  # pragma: no cover - exercised by fault tests
        self._stop_signal = signal.Signals(signum).name

    # ------------------------------------------------------------------ main loop
    def fit(self) -> TrainResult:
        r = self.recipe
        t = r.train
        self.dist, ddp_device = D.init(t.device)
        self.device = ddp_device or resolve_device(t.device)
        precision_mode = resolve_precision(t.precision, self.device)
        # each rank its own random streams (augmentation, pools); DDP gives every rank rank 0's weights
        seed_everything(t.seed + self.dist.rank, t.deterministic)
        if not self.dist.is_main:
            return self._fit(precision_mode)  # rank 0 alone checks, locks and writes the run directory
        run_dir = self.run_dir
        latest = run_dir / "checkpoints" / "latest"
        has_ckpt = (latest / ckpt.WEIGHTS).exists() or (run_dir / "checkpoints" / "latest.old" / ckpt.WEIGHTS).exists()
        if self.resume and not has_ckpt:
            raise ImtransError(f"--resume was given but {run_dir} has no checkpoint; start without --resume")
        if not self.resume and has_ckpt:
            raise ImtransError(
                f"{run_dir} already holds a checkpoint; continue it with --resume, or choose another "
                f"output.name (e.g. --set output.name=other)"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        with RunLock(run_dir):
            return self._fit(precision_mode)

    def _fit(self, precision_mode: str) -> TrainResult:
        from imtrans.schemes.base import Precision

        r, t, run_dir, device = self.recipe, self.recipe.train, self.run_dir, self.device
        main = self.dist.is_main
        if main:
            ckpt.remove_stale_temp(run_dir / "checkpoints")  # left by a writer that was killed; we hold the lock
            ckpt.atomic_write_text(run_dir / "recipe.resolved.toml", r.to_toml())

        augment = registry.build_spec("augmentation", r.data.augment.as_dict()).to(device).train()
        ds, loader, domains = self._build_data(augment)
        steps_per_epoch = len(loader.sampler) // r.data.batch_size
        if t.steps_per_epoch:
            steps_per_epoch = min(steps_per_epoch, t.steps_per_epoch)
        n_epochs = t.epochs + t.epochs_decay
        total = n_epochs * steps_per_epoch
        if t.max_steps:
            total = min(total, t.max_steps)

        scheme = registry.build_spec("scheme", r.scheme.as_dict(), r).to(device)
        prec = Precision(precision_mode, device)
        prec.check_finite = self.skip_nonfinite > 0
        scheme.configure(prec)
        if self.dist.enabled:
            scheme.distribute(lambda net: D.wrap(net, device), self.dist.rank)
        first = self._next_batch(iter(DataLoader(ds, batch_size=r.data.batch_size,
                                                 sampler=[(0, i) for i in range(r.data.batch_size)])))
        paired = bool(getattr(ds, "paired", False))
        a0, b0 = self._augment_batch(augment, first, paired)
        scheme.setup({"a": a0, "b": b0})
        if self.dist.enabled:
            D.broadcast_module(scheme)  # parameters created lazily in setup (e.g. loss heads) start equal
        if t.compile:
            # compile what the step calls; the plain modules stay in scheme.nets for checkpoints
            for name in scheme.nets:
                scheme._wrapped[name] = torch.compile(scheme.run(name))

        step, epoch, step_in_epoch = 0, 0, 0
        metrics_path = run_dir / "metrics.jsonl"
        if self.resume:
            st = self._resume_from(scheme, run_dir)
            step, epoch, step_in_epoch = int(st["step"]), int(st["epoch"]), int(st["step_in_epoch"])
            self._saved_step = step
            if main:
                truncate_metrics(metrics_path, step)
        log = MetricsLog(metrics_path) if main else _NullLog()
        self._log = log
        tb = self._tensorboard() if main else None

        n_samples = 4
        sample_a = self._fixed_batch(domains.get("test_a") or domains["a"], augment, n_samples)
        sample_b = self._fixed_batch(domains.get("test_b") or domains["b"], augment, n_samples)
        eval_before = self.evaluate(scheme, domains, augment) if step == 0 and main else {}
        if eval_before:
            log.write({"kind": "eval", "step": step, "epoch": epoch, "metrics": eval_before})

        def sample(tag: str) -> None:
            if not main or sample_a is None or sample_b is None:
                return
            n = min(sample_a.shape[0], sample_b.shape[0])
            rows = scheme.sample_rows(sample_a[:n], sample_b[:n])
            save_png(grid_image(rows), run_dir / "samples" / f"{tag}.png")
            write_index(run_dir, f"imtrans run: {run_dir.name}")

        old_handlers = {}
        if self.handle_signals:
            for s in (signal.SIGINT, signal.SIGTERM):
                try:
                    old_handlers[s] = signal.signal(s, self._on_signal)
                except ValueError:  # not the main thread
                    pass

        window: list[dict[str, torch.Tensor]] = []
        t0 = time.perf_counter()
        last_log_t, last_log_step = t0, step
        stopped = "finished"
        skipped_bad = 0
        logged_skips = 0

        def log_skipped_images() -> None:
            # undecodable files met by the data set in *this* process (workers > 0 keep their own counts)
            nonlocal logged_skips
            n = ds.skipped
            if n > logged_skips:
                files = ds.skipped_files()
                log.write({"kind": "data", "step": step, "epoch": epoch, "skipped": n,
                           "files": {s: v[:50] for s, v in files.items()}})
                logged_skips = n

        progress = self._make_progress(total, step) if main else None
        try:
            while step < total and epoch < n_epochs:
                loader.sampler.set_epoch(epoch, start=step_in_epoch * r.data.batch_size)  # type: ignore[attr-defined]
                it = iter(loader)
                while step_in_epoch < steps_per_epoch and step < total:
                    try:
                        batch = self._next_batch(it)
                    except StopIteration:
                        break
                    a, b = self._augment_batch(augment, batch, paired)
                    losses = scheme.train_step({"a": a, "b": b})
                    step += 1
                    step_in_epoch += 1
                    window.append(losses)
                    if self.skip_nonfinite:
                        bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
                        if bad:
                            skipped_bad += 1
                            window.pop()
                            if skipped_bad > self.skip_nonfinite:
                                raise NonFiniteLossError(
                                    f"loss '{bad[0]}' became non-finite at step {step} after {skipped_bad - 1} skipped "
                                    f"bad batches (--skip-nonfinite {self.skip_nonfinite}); the last good checkpoint is kept"
                                )
                            # Precision.check_finite made the scheme skip the optimiser updates of this batch
                            log.write({"kind": "skipped", "step": step, "epoch": epoch, "losses": bad})
                            continue
                    if step % t.log_every == 0 or step == total:
                        now = time.perf_counter()
                        rec = self._log_window(window, step, epoch, scheme, (step - last_log_step) * r.data.batch_size / max(1e-9, now - last_log_t))
                        window = []
                        last_log_t, last_log_step = now, step
                        log.write(rec)
                        if tb:
                            for k, v in rec["losses"].items():
                                tb.add_scalar(f"loss/{k}", v, step)
                        if self.on_log:
                            self.on_log(rec)
                        if progress:
                            progress.update(self._task, completed=step, losses=self._fmt(rec), epoch=f"{epoch + 1}/{n_epochs}")
                    elif progress and step % 5 == 0:
                        progress.update(self._task, completed=step, epoch=f"{epoch + 1}/{n_epochs}")
                    if t.sample_every and step % t.sample_every == 0:
                        sample(f"step_{step:07d}")
                    if t.eval_every and step % t.eval_every == 0 and main:
                        ev = self.evaluate(scheme, domains, augment)
                        if ev:
                            log.write({"kind": "eval", "step": step, "epoch": epoch, "metrics": ev})
                    if t.checkpoint_every and step % t.checkpoint_every == 0:
                        self._check_window(window, step)
                        self.save(scheme, step, epoch, step_in_epoch)
                    if self._should_stop(step):
                        break
                if self._stopping:  # agreed by every rank (see _should_stop)
                    self._check_window(window, step)
                    log_skipped_images()
                    self.save(scheme, step, epoch, step_in_epoch)
                    stopped = f"stopped by {self._stop_signal}"
                    break
                if step_in_epoch >= steps_per_epoch:
                    # end of epoch: LR schedule, snapshot, samples, evaluation
                    self._check_window(window, step)
                    log_skipped_images()
                    epoch += 1
                    step_in_epoch = 0
                    scheme.epoch_end(epoch)
                    snap = f"epoch_{epoch:04d}" if t.save_every_epochs and epoch % t.save_every_epochs == 0 else None
                    if not t.checkpoint_every or snap or step >= total:
                        self.save(scheme, step, epoch, step_in_epoch, snapshot=snap)
                    if not t.eval_every and main and step < total:  # the last one is the final evaluation
                        ev = self.evaluate(scheme, domains, augment)
                        if ev:
                            log.write({"kind": "eval", "step": step, "epoch": epoch, "metrics": ev})
                    if not t.sample_every:
                        sample(f"epoch_{epoch:04d}")
            if stopped == "finished":
                self._check_window(window, step)
                if window:
                    log.write(self._log_window(window, step, epoch, scheme, 0.0))
                log_skipped_images()
                self.save(scheme, step, epoch, step_in_epoch)
                sample(f"step_{step:07d}")
        finally:
            if progress:
                progress.stop()
            for s, h in old_handlers.items():
                signal.signal(s, h)
            log.close()
            if tb:
                tb.close()
        eval_after = self.evaluate(scheme, domains, augment) if main else {}
        D.barrier()
        if eval_after:
            log2 = MetricsLog(metrics_path)
            log2.write({"kind": "eval", "step": step, "epoch": epoch, "metrics": eval_after, "final": True})
            log2.close()
        if main:
            write_index(run_dir, f"imtrans run: {run_dir.name}")
        return TrainResult(run_dir, step, epoch, time.perf_counter() - t0, eval_before, eval_after, stopped,
                           skipped_images=getattr(ds, "skipped", 0))

    # ------------------------------------------------------------------ logging
    def _check_window(self, window: list[dict[str, torch.Tensor]], step: int) -> None:
        """Raise if any loss since the last check is not finite (one host sync)."""
        if not window:
            return
        keys = list(window[0])
        vals = torch.stack([torch.stack([w[k].float() for k in keys]) for w in window]).cpu()
        bad = ~torch.isfinite(vals)
        if bad.any():
            i, j = [int(v) for v in bad.nonzero()[0]]
            first = step - len(window) + i + 1
            kept = f" (step {self._saved_step})" if self._saved_step is not None else ""
            raise NonFiniteLossError(
                f"loss '{keys[j]}' became {float(vals[i, j])} at step {first}; training stopped and the last good "
                f"checkpoint{kept} is kept — lower the learning rate, or pass --skip-nonfinite N to skip bad batches"
            )

    def _log_window(self, window, step: int, epoch: int, scheme, ips: float) -> dict[str, Any]:
        self._check_window(window, step)
        keys = list(window[0]) if window else []
        means = torch.stack([torch.stack([w[k].float() for k in keys]) for w in window]).mean(0) if window else torch.zeros(0)
        if self.dist.enabled and window:
            means = D.all_mean(means)  # logged losses are the mean over ranks
        means = means.tolist()
        return {
            "kind": "train",
            "step": step,
            "epoch": epoch,
            "lr": scheme.lr(),
            "images_per_s": round(ips, 3),
            "losses": {k: float(v) for k, v in zip(keys, means)},
        }

    @staticmethod
    def _fmt(rec: dict[str, Any]) -> str:
        return " ".join(f"{k}={v:.3f}" for k, v in rec["losses"].items() if k != "G_total")

    def _make_progress(self, total: int, step: int):
        if not self.progress:
            return None
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        p = Progress(
            TextColumn("epoch {task.fields[epoch]}"),
            BarColumn(),
            MofNCompleteColumn(),
            _SpeedColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[losses]}"),
            console=self.console,
            transient=False,
        )
        self._task = p.add_task("train", total=total, completed=step, epoch="-", losses="")
        p.start()
        return p

    def _tensorboard(self):
        if not self.recipe.output.tensorboard:
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImtransError(
                "output.tensorboard = true but tensorboard is not installed; pip install tensorboard "
                "(or pip install 'imtrans[tensorboard]'), or set output.tensorboard = false"
            ) from None
        return SummaryWriter(str(self.run_dir / "tensorboard"))



class _SpeedColumn:
    """Steps per second (rich's own speed columns show bytes or nothing)."""

    def __new__(cls):
        from rich.progress import ProgressColumn
        from rich.text import Text

        class Col(ProgressColumn):
            def render(self, task):
                return Text(f"{task.speed:.2f} it/s" if task.speed else "- it/s")

        return Col()


class _NullLog:
    """The metrics log of ranks other than 0: they write nothing."""

    def write(self, record: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj
