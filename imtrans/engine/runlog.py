"""What a run tells the outside: metrics.jsonl, the recipe's loggers (TensorBoard...), a progress display, notes.

Losses stay on the device in a :class:`LossWindow` and are read back once per log step (one host
sync), which is also where non-finite losses are caught.  Progress is a rich bar on a terminal
(step/total, it/s and ETA always on the first line, losses on a second one that may be cut), and a
plain line every ``log_every`` steps when output goes to a file or ``--no-progress`` is given, so
``nohup``/SLURM logs stay useful.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch

from imtrans.engine import distributed as D
from imtrans.engine.report import MetricsLog
from imtrans.errors import ImtransError


class NonFiniteLossError(ImtransError):
    """A loss became NaN or Inf."""


class LossWindow:
    """The loss dicts since the last log step, kept on the device."""

    def __init__(self) -> None:
        self.items: list[dict[str, torch.Tensor]] = []

    def append(self, losses: dict[str, torch.Tensor]) -> None:
        self.items.append(losses)

    def drop_last(self) -> None:
        self.items.pop()

    def __len__(self) -> int:
        return len(self.items)

    def _matrix(self) -> tuple[list[str], torch.Tensor]:
        keys = list(self.items[0])
        return keys, torch.stack([torch.stack([w[k].float() for k in keys]) for w in self.items])

    def check(self, step: int, saved_step: Optional[int]) -> None:
        """Raise if any loss in the window is not finite (one host sync)."""
        if not self.items:
            return
        keys, vals = self._matrix()
        vals = vals.cpu()
        bad = ~torch.isfinite(vals)
        if bad.any():
            i, j = [int(v) for v in bad.nonzero()[0]]
            first = step - len(self.items) + i + 1
            kept = f" (step {saved_step})" if saved_step is not None else ""
            raise NonFiniteLossError(
                f"loss '{keys[j]}' became {float(vals[i, j])} at step {first}; training stopped and the last good "
                f"checkpoint{kept} is kept — lower the learning rate, or pass --skip-nonfinite N to skip bad batches"
            )

    def take_means(self, dist: D.DistInfo) -> dict[str, float]:
        """Mean of each loss over the window (and over ranks), then empty the window."""
        if not self.items:
            return {}
        keys, vals = self._matrix()
        means = vals.mean(0)
        if dist.enabled:
            means = D.all_mean(means)  # logged losses are the mean over ranks
        self.items = []
        return {k: float(v) for k, v in zip(keys, means.tolist())}


def _fmt_losses(losses: dict[str, float]) -> str:
    return " ".join(f"{k}={v:.3f}" for k, v in losses.items() if k != "G_total")


def _fmt_eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "-:--:--"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class RunLogger:
    """Metrics records, TensorBoard scalars, the progress display and one-line notes of a run.

    ``bar``: a live progress bar when the console is a terminal; otherwise (or ``bar=False``) a
    plain line per log step.  Ranks other than 0 write and print nothing.
    """

    def __init__(self, run_dir: Path, console: Any, total: int, start_step: int, n_epochs: int,
                 bar: bool = True, loggers: Sequence[Any] = (), on_log: Optional[Callable] = None,
                 main: bool = True) -> None:
        self.main = main
        self.total, self.n_epochs = total, n_epochs
        self.on_log = on_log
        self.console = console if console is not None else _stderr_console()
        self._metrics = MetricsLog(run_dir / "metrics.jsonl") if main else None
        #: the recipe's loggers (:class:`~imtrans.engine.loggers.SafeLogger`): a failing one is noted here too
        self._loggers = list(loggers) if main else []
        for lg in self._loggers:
            lg.on_fail = lambda msg: self.write({"kind": "note", "text": msg})
        self._bar = _TrainBar(self.console, total, start_step) if main and bar and self.console.is_terminal else None
        self._t0, self._start = time.perf_counter(), start_step
        self._last_t, self._last_step = self._t0, start_step

    # -- records ------------------------------------------------------------------
    def write(self, record: dict[str, Any]) -> None:
        if self._metrics is not None:
            self._metrics.write(record)

    def note(self, text: str) -> None:
        """One line for the person watching (also kept in metrics.jsonl)."""
        if not self.main:
            return
        self.write({"kind": "note", "text": text})
        self.console.print(f"[dim]imtrans:[/] {text}", highlight=False, soft_wrap=True)

    def resumed(self, step: int, epoch: int, text: str) -> None:
        """The run continues from a checkpoint: one line for the person, one record for the report page."""
        if not self.main:
            return
        self.write({"kind": "resume", "step": step, "epoch": epoch, "text": text})
        self.console.print(f"[dim]imtrans:[/] {text}", highlight=False, soft_wrap=True)

    def train(self, step: int, epoch: int, lr: float, losses: dict[str, float], images: int) -> dict[str, Any]:
        """Log a window of training losses; ``images``: images seen since the last call."""
        now = time.perf_counter()
        ips = images / max(1e-9, now - self._last_t) if images else 0.0
        rate = (step - self._last_step) / max(1e-9, now - self._last_t)
        self._last_t, self._last_step = now, step
        rec = {"kind": "train", "step": step, "epoch": epoch, "lr": lr,
               "images_per_s": round(ips, 3), "losses": losses}
        self.write(rec)
        for lg in self._loggers:
            lg.call("log_train", step, epoch, lr, losses)
        if self.on_log:
            self.on_log(rec)
        if self._bar is not None:
            self._bar.update(step, epoch, self.n_epochs, _fmt_losses(losses))
        elif self.main and images:
            self._line(step, epoch, lr, rate, losses)
        return rec

    def _line(self, step: int, epoch: int, lr: float, rate: float, losses: dict[str, float]) -> None:
        _, eta = bar_speed(step - self._start, time.perf_counter() - self._t0, self.total - step)
        self.console.print(
            f"step {step}/{self.total} epoch {epoch + 1}/{self.n_epochs} lr {lr:.2e} {rate:.2f} it/s "
            f"ETA {eta} {_fmt_losses(losses)}", highlight=False, soft_wrap=True)

    def tick(self, step: int, epoch: int) -> None:
        """Move the bar between log steps (cheap; no losses are read)."""
        if self._bar is not None:
            self._bar.update(step, epoch, self.n_epochs, None)

    def eval(self, step: int, epoch: int, metrics: dict[str, float], final: bool = False) -> None:
        if not metrics:
            return
        rec: dict[str, Any] = {"kind": "eval", "step": step, "epoch": epoch, "metrics": metrics}
        if final:
            rec["final"] = True
        self.write(rec)
        for lg in self._loggers:
            lg.call("log_eval", step, epoch, metrics)
        if self.main:  # the terminal sees each evaluation too, not only the report page and the log
            shown = " ".join(f"{k} {v:.4g}" for k, v in metrics.items() if isinstance(v, (int, float)))
            self.console.print(f"[dim]imtrans:[/] evaluation at step {step}{' (final)' if final else ''}: {shown}",
                               highlight=False, soft_wrap=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
        if self._metrics is not None:
            self._metrics.close()
        for lg in self._loggers:
            lg.call("close")


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


class _TrainBar:
    """A rich progress bar whose first line always fits: losses go on a second line, cut if long."""

    def __init__(self, console: Any, total: int, step: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
        from rich.text import Text

        class _Progress(Progress):
            losses = ""

            def get_renderables(self):
                yield self.make_tasks_table(self.tasks)
                if self.losses:
                    yield Text(self.losses, no_wrap=True, overflow="ellipsis", style="dim")

        # Speed and ETA from all steps done so far: rich's own columns average over its last 30 s
        # and show "- it/s ... -:--:--" whenever a step takes longer than that (a busy machine).
        self._p = _Progress(
            TextColumn("epoch {task.fields[epoch]}"), BarColumn(bar_width=None), MofNCompleteColumn(),
            TextColumn("{task.fields[speed]}"), TimeElapsedColumn(), TextColumn("ETA {task.fields[eta]}"),
            console=console, transient=False, expand=True,
        )
        self._t0, self._start, self._total = time.perf_counter(), step, total
        self._task = self._p.add_task("train", total=total, completed=step, epoch="-", speed="- it/s",
                                      eta="-:--:--")
        self._p.start()

    def update(self, step: int, epoch: int, n_epochs: int, losses: Optional[str]) -> None:
        if losses is not None:
            self._p.losses = losses
        speed, eta = bar_speed(step - self._start, time.perf_counter() - self._t0, self._total - step)
        self._p.update(self._task, completed=step, epoch=f"{epoch + 1}/{n_epochs}", speed=speed, eta=eta)

    def stop(self) -> None:
        self._p.stop()


def bar_speed(done: int, elapsed: float, left: int) -> tuple[str, str]:
    """("1.23 it/s", "0:04:10") from the steps done since the run (or resume) started."""
    if done <= 0 or elapsed <= 0:
        return "- it/s", "-:--:--"
    rate = done / elapsed
    return (f"{rate:.2f} it/s" if rate >= 0.1 else f"{1 / rate:.1f} s/it"), _fmt_eta(left / rate)
