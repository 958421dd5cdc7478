"""Metric loggers: parts that receive a run's numbers as they are logged (``[output.loggers.NAME]``).

``metrics.jsonl`` is always written (the report page and ``--resume`` read it); a logger sends the same
records elsewhere.  A logger part is registered through the ``register_loggers`` hook and built as
``factory(run_dir, **params)`` on the main process only; the object it returns has three methods::

    log_train(step, epoch, lr, losses)   # losses: {name: float}, once per train.log_every steps
    log_eval(step, epoch, metrics)       # metrics: {name: float}, at each evaluation
    close()                              # the run ends (finished, stopped or failed)

Built in: ``tensorboard`` (event files in ``RUN/tensorboard``; ``pip install 'imtrans[tensorboard]'``).
MLflow, Weights & Biases and the like are plugins through the same hook (docs/plugins.md shows one).
A logger that fails (disk full, server gone) is reported once and switched off: it never stops training.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Callable

from imtrans.errors import ImtransError, ImtransWarning


class LoggerWarning(ImtransWarning):
    """A metric logger failed and was switched off for the rest of the run."""


class TensorBoardLogger:
    """TensorBoard event files: ``loss/<name>``, ``lr`` and ``eval/<metric>`` scalars by step."""

    def __init__(self, run_dir: Path, subdir: str = "tensorboard") -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ImtransError(
                "the tensorboard logger needs the tensorboard package; pip install 'imtrans[tensorboard]' "
                "(or pip install tensorboard), or remove [output.loggers.tensorboard] / output.tensorboard"
            ) from None
        self.dir = Path(run_dir) / subdir
        self._w = SummaryWriter(str(self.dir))

    def log_train(self, step: int, epoch: int, lr: float, losses: dict[str, float]) -> None:
        for k, v in losses.items():
            self._w.add_scalar(f"loss/{k}", v, step)
        self._w.add_scalar("lr", lr, step)
        self._w.add_scalar("epoch", epoch, step)

    def log_eval(self, step: int, epoch: int, metrics: dict[str, float]) -> None:
        for k, v in metrics.items():
            self._w.add_scalar(f"eval/{k}", v, step)
        self._w.flush()  # evaluations are rare and worth seeing at once

    def close(self) -> None:
        self._w.close()


def tensorboard(run_dir: Path, subdir: str = "tensorboard") -> TensorBoardLogger:
    """TensorBoard event files in RUN/``subdir`` (losses, LR, evaluation); needs ``imtrans[tensorboard]``."""
    if not subdir or Path(subdir).is_absolute() or ".." in Path(subdir).parts:
        raise ImtransError(f"tensorboard logger: subdir '{subdir}' must be a folder name inside the run directory")
    return TensorBoardLogger(run_dir, subdir)


LOGGERS: dict[str, Callable[..., Any]] = {"tensorboard": tensorboard}


class SafeLogger:
    """Calls one logger; its first failure is said once (a :class:`LoggerWarning`) and switches it off."""

    def __init__(self, name: str, logger: Any, on_fail: Callable[[str], None] | None = None) -> None:
        self.name, self.logger, self.on_fail = name, logger, on_fail
        self.failed = False

    def call(self, method: str, *args: Any) -> None:
        if self.failed:
            return
        try:
            getattr(self.logger, method)(*args)
        except Exception as e:  # noqa: BLE001 - a logger must never stop training
            self.failed = True
            msg = (f"logger '{self.name}' failed in {method} ({type(e).__name__}: {e}); it is switched off for "
                   "the rest of this run, training goes on (metrics.jsonl keeps every number)")
            warnings.warn(msg, LoggerWarning, stacklevel=2)
            if self.on_fail is not None:
                self.on_fail(msg)


def build_loggers(specs: dict[str, Any], run_dir: Path, on_fail: Callable[[str], None] | None = None) -> list[SafeLogger]:
    """The recipe's loggers (``{label: PartSpec}``), each behind a :class:`SafeLogger`.

    Building one that cannot start (tensorboard not installed, a bad parameter) is an error before training:
    that is a mistake in the recipe, not a failure during the run.
    """
    from imtrans import registry

    return [SafeLogger(label, registry.build_spec("logger", spec.as_dict(), run_dir), on_fail)
            for label, spec in specs.items()]
