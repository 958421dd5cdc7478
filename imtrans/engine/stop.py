"""A stop flag raised by SIGINT/SIGTERM, checked by the training loop between steps.

The handler only records the signal: the loop finishes the step it is in, saves a checkpoint and
returns, so Ctrl-C never leaves a half-written file or a half-applied update behind.
Distributed ranks stop at the same step: they agree on the flag at log steps (one all-reduce).
"""

from __future__ import annotations

import signal
from typing import Optional

import torch

from imtrans.engine import distributed as D


class StopFlag:
    """Records a stop request; use as a context manager to own SIGINT/SIGTERM while training."""

    def __init__(self, install: bool = True, dist: Optional[D.DistInfo] = None,
                 agree_every: int = 50, device: torch.device | None = None) -> None:
        self.install = install
        self.dist = dist or D.DistInfo()
        self.agree_every = max(1, agree_every)
        self.device = device or torch.device("cpu")
        self.reason: Optional[str] = None  # the signal's name, once one arrived
        self.stopping = False  # decided: the loop stops now (every rank alike)
        self._old: dict[int, object] = {}

    def __enter__(self) -> "StopFlag":
        if self.install:
            for s in (signal.SIGINT, signal.SIGTERM):
                try:
                    self._old[s] = signal.signal(s, self._on_signal)
                except ValueError:  # not the main thread: the caller stops us some other way
                    pass
        return self

    def __exit__(self, *exc) -> None:
        for s, h in self._old.items():
            signal.signal(s, h)
        self._old.clear()

    def _on_signal(self, signum, frame) -> None:  # pragma: no cover - exercised by the fault tests
        self.reason = signal.Signals(signum).name

    def request(self, reason: str) -> None:
        """Ask the loop to stop after the current step (what a signal does)."""
        self.reason = reason

    def should_stop(self, step: int) -> bool:
        """Whether to stop after ``step``; distributed ranks decide together at every ``agree_every`` steps."""
        if not self.dist.enabled:
            self.stopping = self.reason is not None
            return self.stopping
        if step % self.agree_every:
            return False
        flag = D.all_mean(torch.tensor([1.0 if self.reason else 0.0], device=self.device))
        if float(flag) > 0 and not self.reason:
            self.reason = "a signal to another rank"
        self.stopping = float(flag) > 0
        return self.stopping
