"""One training process per run directory: a lock file holding the owner's pid."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from imtrans.errors import ImtransError

LOCK_NAME = ".lock"


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a stale lock's owner does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class RunLock:
    """``with RunLock(run_dir):`` — refuses a run directory in use; takes over stale locks.

    The lock file is created with O_EXCL, so two processes racing for it cannot
    both win.  A lock whose pid is dead (on this host) is stale and replaced.
    """

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_NAME
        self.held = False

    def _read(self) -> tuple[int, str] | None:
        try:
            text = self.path.read_text().split()
            return int(text[0]), (text[1] if len(text) > 1 else "")
        except (OSError, ValueError, IndexError):
            return None

    def acquire(self) -> None:
        me = f"{os.getpid()} {socket.gethostname()}\n"
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._read()
                if owner is None:
                    # unreadable or half-written lock: treat as stale
                    self.path.unlink(missing_ok=True)
                    continue
                pid, host = owner
                if host and host != socket.gethostname():
                    raise ImtransError(
                        f"{self.path.parent} is in use by process {pid} on host {host} ({self.path}); "
                        "wait for it to finish, or delete the lock file if that run is gone"
                    )
                if pid != os.getpid() and pid_alive(pid):
                    raise ImtransError(
                        f"{self.path.parent} is in use by another imtrans process (pid {pid}); wait for it to "
                        "finish or stop it, or train into another directory with --set output.name=NAME"
                    )
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(me)
            self.held = True
            return
        raise ImtransError(f"could not take the lock {self.path}; remove it if no run uses {self.path.parent}")

    def release(self) -> None:
        if self.held:
            owner = self._read()
            if owner and owner[0] == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
