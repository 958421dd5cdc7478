"""The training loop.  It reads like the algorithm; each concern lives in its own object:

* :class:`~imtrans.engine.data.TrainData` — domains, the reproducible loader, sample batches;
* the scheme (:class:`~imtrans.schemes.base.Scheme`) — networks, optimisers, ``train_step``;
* :class:`~imtrans.engine.checkpointing.CheckpointManager` — ``latest``/snapshots/``best``, resume;
* :class:`~imtrans.engine.evaluator.Evaluator` — held-out metrics;
* :class:`~imtrans.engine.runlog.RunLogger` — metrics.jsonl, progress, the recipe's loggers, notes;
* :class:`~imtrans.engine.stop.StopFlag` — SIGINT/SIGTERM.

After each step the order is fixed, and matters: **check** the losses for NaN/Inf before anything
is written (a diverged state is never saved), **log**, **save** (so a failure or kill while
evaluating or sampling loses no training), **evaluate**, then **sample** (the grid and the report
page show the newest numbers).  Evaluating and sampling never change training state.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from imtrans import registry
from imtrans.atomic import atomic_write_text
from imtrans.engine import checkpoint as ckpt
from imtrans.engine import distributed as D
from imtrans.engine.checkpointing import CheckpointManager, Position
from imtrans.engine.data import TrainData
from imtrans.engine.evaluator import Evaluator
from imtrans.engine.loggers import build_loggers
from imtrans.engine.lock import RunLock
from imtrans.engine.report import save_png, grid_image, truncate_metrics, write_index
from imtrans.engine.runlog import LossWindow, NonFiniteLossError, RunLogger
from imtrans.engine.runtime import resolve_device, resolve_precision, seed_everything
from imtrans.engine.stop import StopFlag
from imtrans.errors import ImtransError
from imtrans.recipe import Recipe

__all__ = ["NonFiniteLossError", "TrainResult", "Trainer"]


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


@dataclass
class _Run:
    """Everything one ``fit`` works with."""

    scheme: Any
    data: TrainData
    log: RunLogger
    ckpts: CheckpointManager
    evaluator: Evaluator
    stop: StopFlag
    pos: Position
    total: int
    n_epochs: int
    samples: tuple[Optional[torch.Tensor], Optional[torch.Tensor]]
    window: LossWindow = field(default_factory=LossWindow)
    skipped_bad: int = 0
    last_log_step: int = 0
    start_step: int = 0
    t0: float = field(default_factory=time.perf_counter)
    eval_before: dict[str, float] = field(default_factory=dict)


class Trainer:
    """Train a recipe's scheme into a run directory.

    ``progress``: a live bar on a terminal (a plain log line per ``train.log_every`` steps when
    output is not a terminal or ``progress=False``).  ``skip_nonfinite=N``: skip up to N batches
    whose loss is NaN/Inf instead of stopping.  ``handle_signals``: SIGINT/SIGTERM stop the run
    after the current step, with a checkpoint.
    """

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
        self.dist = D.DistInfo()

    # ------------------------------------------------------------------ entry
    def fit(self) -> TrainResult:
        t = self.recipe.train
        self.dist, ddp_device = D.init(t.device)
        self.device = ddp_device or resolve_device(t.device)
        precision = resolve_precision(t.precision, self.device)
        # each rank its own random streams (augmentation, pools); DDP gives every rank rank 0's weights
        seed_everything(t.seed + self.dist.rank, t.deterministic)
        if not self.dist.is_main:
            return self._fit(precision)  # rank 0 alone checks, locks and writes the run directory
        self._check_run_dir()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with RunLock(self.run_dir):
            return self._fit(precision)

    def _check_run_dir(self) -> None:
        cdir = self.run_dir / "checkpoints"
        has_ckpt = (cdir / "latest" / ckpt.WEIGHTS).exists() or (cdir / "latest.old" / ckpt.WEIGHTS).exists()
        if self.resume and not has_ckpt:
            raise ImtransError(f"--resume was given but {self.run_dir} has no checkpoint; start without --resume")
        if not self.resume and has_ckpt:
            raise ImtransError(
                f"{self.run_dir} already holds a checkpoint; continue it with --resume, or choose another "
                f"output.name (e.g. --set output.name=other)"
            )

    def _fit(self, precision: str) -> TrainResult:
        run = self._setup(precision)
        try:
            with run.stop:
                self._train(run)
            return self._finish(run)
        finally:
            run.log.close()

    # ------------------------------------------------------------------ the algorithm
    def _train(self, run: _Run) -> None:
        pos = run.pos
        while pos.step < run.total and pos.epoch < run.n_epochs:
            for batch in run.data.epoch(pos.epoch, pos.step_in_epoch):
                losses = run.scheme.train_step(batch)
                pos.step += 1
                pos.step_in_epoch += 1
                if self._accept(run, losses):
                    self._after_step(run)
                    run.stop.should_stop(pos.step)
                if run.stop.stopping or pos.step_in_epoch >= run.data.steps_per_epoch or pos.step >= run.total:
                    break
            if run.stop.stopping:  # agreed by every rank (see StopFlag.should_stop)
                self._check_and_save(run)
                run.log.write({"kind": "stop", "step": pos.step, "epoch": pos.epoch, "reason": run.stop.reason})
                return
            if pos.step >= run.total and pos.step_in_epoch < run.data.steps_per_epoch:
                break  # max_steps reached mid-epoch: no epoch end
            self._end_epoch(run)
        self._check_and_save(run)
        if run.window:
            run.log.train(pos.step, pos.epoch, run.scheme.lr(), run.window.take_means(self.dist), 0)
        self._sample(run, f"step_{pos.step:07d}")

    def _after_step(self, run: _Run) -> None:
        """Check → log → save → evaluate → sample, each at its own interval."""
        t, step = self.recipe.train, run.pos.step
        if step % t.log_every == 0 or step == run.total:
            run.window.check(step, run.ckpts.saved_step)
            images = (step - run.last_log_step) * run.data.batch_size
            run.log.train(step, run.pos.epoch, run.scheme.lr(), run.window.take_means(self.dist), images)
            run.last_log_step = step
        elif step % 5 == 0:
            run.log.tick(step, run.pos.epoch)
        if t.checkpoint_every and step % t.checkpoint_every == 0:
            self._check_and_save(run)
        if t.eval_every and step % t.eval_every == 0 and step < run.total:  # the last one is the final evaluation
            self._evaluate(run)
        if t.sample_every and step % t.sample_every == 0:
            self._sample(run, f"step_{step:07d}")

    def _end_epoch(self, run: _Run) -> None:
        """LR schedule, checkpoint/snapshot, evaluation and samples at an epoch's end."""
        t, pos = self.recipe.train, run.pos
        run.window.check(pos.step, run.ckpts.saved_step)
        pos.epoch += 1
        pos.step_in_epoch = 0
        run.scheme.epoch_end(pos.epoch)
        snap = f"epoch_{pos.epoch:04d}" if t.save_every_epochs and pos.epoch % t.save_every_epochs == 0 else None
        if not t.checkpoint_every or snap or pos.step >= run.total:
            self._check_and_save(run, snapshot=snap)
        if not t.eval_every and pos.step < run.total and pos.epoch < run.n_epochs:  # the last: the final evaluation
            self._evaluate(run)
        if not t.sample_every:
            self._sample(run, f"epoch_{pos.epoch:04d}")

    def _accept(self, run: _Run, losses: dict[str, torch.Tensor]) -> bool:
        """Keep the step's losses; with --skip-nonfinite, drop a bad batch (its updates were skipped)."""
        run.window.append(losses)
        if not self.skip_nonfinite:
            return True
        bad = [k for k, v in losses.items() if not torch.isfinite(v).all()]
        if not bad:
            return True
        run.skipped_bad += 1
        run.window.drop_last()
        if run.skipped_bad > self.skip_nonfinite:
            raise NonFiniteLossError(
                f"loss '{bad[0]}' became non-finite at step {run.pos.step} after {run.skipped_bad - 1} skipped "
                f"bad batches (--skip-nonfinite {self.skip_nonfinite}); the last good checkpoint is kept"
            )
        run.log.write({"kind": "skipped", "step": run.pos.step, "epoch": run.pos.epoch, "losses": bad})
        return False

    # ------------------------------------------------------------------ the chores
    def _check_and_save(self, run: _Run, snapshot: Optional[str] = None) -> None:
        run.window.check(run.pos.step, run.ckpts.saved_step)
        skips = run.data.new_skips()
        if skips:
            run.log.write({"kind": "data", "step": run.pos.step, "epoch": run.pos.epoch, **skips})
        run.ckpts.save(run.scheme, run.pos, snapshot=snapshot)

    def _evaluate(self, run: _Run, final: bool = False) -> dict[str, float]:
        if not self.dist.is_main:
            return {}
        metrics = run.evaluator.evaluate(run.scheme)
        run.log.eval(run.pos.step, run.pos.epoch, metrics, final=final)
        key = run.evaluator.best_key
        if key and key in metrics:
            run.ckpts.consider_best(run.scheme, run.pos, metrics[key])
        return metrics

    def _sample(self, run: _Run, tag: str) -> None:
        a, b = run.samples
        if not self.dist.is_main or a is None or b is None:
            return
        n = min(a.shape[0], b.shape[0])
        save_png(grid_image(run.scheme.samples(a[:n], b[:n]), labels=run.scheme.sample_labels), self.run_dir / "samples" / f"{tag}.png")
        write_index(self.run_dir, f"imtrans run: {self.run_dir.name}")

    def _finish(self, run: _Run) -> TrainResult:
        """The final evaluation (not after a stop request, nor when a finished run was resumed)."""
        pos, stopped = run.pos, "finished"
        if run.stop.stopping:
            stopped = f"stopped by {run.stop.reason}"
        eval_after = {}
        if stopped == "finished" and pos.step > run.start_step:
            eval_after = self._evaluate(run, final=True)
        if stopped == "finished":  # the report tells a later --resume that extends the run from a stop apart
            run.log.write({"kind": "finish", "step": pos.step, "epoch": pos.epoch})
        D.barrier()
        if self.dist.is_main:
            write_index(self.run_dir, f"imtrans run: {self.run_dir.name}")
        return TrainResult(self.run_dir, pos.step, pos.epoch, time.perf_counter() - run.t0, run.eval_before,
                           eval_after, stopped, skipped_images=run.data.dataset.skipped)

    # ------------------------------------------------------------------ set-up
    def _setup(self, precision: str) -> _Run:
        from imtrans.schemes.base import Precision

        r, t, device, main = self.recipe, self.recipe.train, self.device, self.dist.is_main
        if main:
            ckpt.remove_stale_temp(self.run_dir / "checkpoints")  # left by a killed writer; we hold the lock
            # with where it was read from: a packaged recipe (imtrans:NAME) changes with the package's version
            atomic_write_text(self.run_dir / "recipe.resolved.toml", r.origin_comment() + r.to_toml())
        augment = registry.build_spec("augmentation", r.data.augment.as_dict()).to(device).train()
        data = TrainData(r, augment, device, self.dist)
        n_epochs = t.epochs + t.epochs_decay
        total = n_epochs * data.steps_per_epoch
        if t.max_steps:
            total = min(total, t.max_steps)

        scheme = registry.build_spec("scheme", r.scheme.as_dict(), r).to(device)
        prec = Precision(precision, device)
        prec.check_finite = self.skip_nonfinite > 0
        scheme.configure(prec)
        if self.dist.enabled:
            scheme.distribute(lambda net: D.wrap(net, device), self.dist.rank)
        scheme.setup(data.first_batch())
        if self.dist.enabled:
            D.broadcast_module(scheme)  # parameters created lazily in setup (e.g. loss heads) start equal
        if t.channels_last:
            scheme.to_channels_last()
        if t.compile:
            scheme.compile_networks()

        ckpts = CheckpointManager(self.run_dir, r, self.dist)
        pos, notes, resumed = Position(), [], None
        if self.resume:
            resumed = ckpts.resume(scheme)
            pos = resumed.pos
            if main:
                truncate_metrics(self.run_dir / "metrics.jsonl", pos.step)
        loggers = build_loggers(r.output.logger_specs(), self.run_dir) if main else []
        log = RunLogger(self.run_dir, self.console, total, pos.step, n_epochs, bar=self.progress,
                        loggers=loggers, on_log=self.on_log, main=main)
        ckpts.log = log
        labels = dict(scheme.loss_labels)
        for key in getattr(scheme, "extra_terms", {}):  # the recipe's own generator terms
            labels.setdefault(key, f"extra generator term [losses.{key}] ({r.losses[key].name}), weighted")
        if main and labels:
            log.write({"kind": "legend", "losses": labels})  # the report page explains the names
        log.note(start_line(r, device, prec.mode, total, n_epochs, data.steps_per_epoch, self.dist.world))
        if resumed is not None:
            log.resumed(pos.step, pos.epoch, resume_line(resumed, scheme, data.steps_per_epoch, total, n_epochs))
        if not data.held_out:
            notes.append("no held-out split (ROOT/test or ROOT/val) found: samples use training pairs, nothing is "
                         "evaluated" if data.paired else
                         "no held-out split (testA/testB) found: samples and evaluation use training images")
        evaluator = Evaluator(data.domains, augment, device, t.eval_images, fid_images=t.eval_fid_images,
                              features=t.eval_features.as_dict() if t.eval_fid and main else None)
        for n in notes + evaluator.notes:
            log.note(n)
        run = _Run(scheme, data, log, ckpts, evaluator,
                   StopFlag(self.handle_signals, self.dist, t.log_every, device), pos, total, n_epochs,
                   (data.sample_batch("a"), data.sample_batch("b")), last_log_step=pos.step,
                   start_step=pos.step)
        if pos.step == 0:
            run.eval_before = self._evaluate(run)
        return run


def start_line(r, device, precision: str, total: int, n_epochs: int, steps_per_epoch: int, world: int) -> str:
    """What runs where, said once at the start: scheme, device, precision, threads or processes, steps."""
    where = f"{device}" + (f" x {world} processes" if world > 1 else "")
    if device.type == "cpu":
        where += f", {torch.get_num_threads()} threads"
    how = "PyTorch, compiled" if r.train.compile else "PyTorch"
    return (f"training {r.scheme.name} on {where} at {precision} ({how}): {total} steps, {n_epochs} epochs "
            f"of {steps_per_epoch} steps of {r.data.batch_size} images")


def resume_line(resumed, scheme, steps_per_epoch: int, total: int, n_epochs: int) -> str:
    """The one line ``--resume`` prints: from where, how much is left, and what changed in the schedule."""
    pos = resumed.pos
    if pos.step >= total:
        return (f"this run already finished at step {pos.step}; nothing to train — raise train.epochs, "
                "train.epochs_decay or train.max_steps (with --set) to train longer")
    text = (f"resuming from step {pos.step} (epoch {pos.epoch + 1}/{n_epochs}, {pos.step_in_epoch} of its "
            f"{steps_per_epoch} steps done); {total - pos.step} steps to go, to step {total}")
    if resumed.schedule_changes:
        what = ", ".join(f"{k} {a} → {b}" for k, (a, b) in resumed.schedule_changes.items())
        text += f"; LR schedule changed ({what}): the learning rate is now {scheme.lr():.3g}"
    return text
