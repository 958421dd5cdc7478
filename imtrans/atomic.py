"""Atomic file writes: a temporary file in the target folder, fsync, rename.

Every output imtrans writes (checkpoints, translated images, exports, the run
page, metrics) goes through here, so that an interrupted write never leaves a
half-written file where a finished one was expected.

Permissions: :func:`tempfile.mkstemp` creates its file with mode 0600, and a
rename keeps the mode, so without care every output would be private.  The
temporary file is therefore given the mode a plain ``open(path, "w")`` would
give: ``0o666`` minus the process umask (``0o644`` under the usual umask 022).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import Iterator

__all__ = [
    "TempTarget", "atomic_path", "atomic_write_bytes", "atomic_write_text", "fsync_dir", "default_file_mode",
    "default_dir_mode",
]

_umask_lock = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux ``/proc``)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # Elsewhere the only portable way is to set it and put it back; the lock keeps two of our own
    # threads from doing that at once (a file created by another thread meanwhile gets umask 0o022).
    with _umask_lock:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file: ``0o666`` minus the umask."""
    return 0o666 & ~current_umask()


def default_dir_mode() -> int:
    """The mode ``os.mkdir`` gives a new folder: ``0o777`` minus the umask."""
    return 0o777 & ~current_umask()


def fsync_dir(path: Path) -> None:
    """fsync a folder so a rename inside it survives a power cut (a no-op where folders cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` to write to; on success it is fsync'ed and renamed to ``path``.

    For writers that want a file name rather than bytes (``safetensors.save_file``,
    exporters).  On an exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        os.close(fd)
        yield tmp
        # mkstemp made it 0600 (and some writers, safetensors among them, replace the file with
        # their own 0600 one): set the mode open() would have given just before the rename keeps it.
        os.chmod(tmp, default_file_mode())
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file + fsync + rename; the file gets the umask's mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:  # one descriptor for mode, data and fsync (atomic_path reopens the file: fine for big files only)
        with os.fdopen(fd, "wb") as f:
            if hasattr(os, "fchmod"):  # POSIX; elsewhere mkstemp's mode is not 0600 anyway
                os.fchmod(f.fileno(), default_file_mode())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """:func:`atomic_write_bytes` of ``text`` encoded as UTF-8."""
    atomic_write_bytes(path, text.encode("utf-8"))


class TempTarget:
    """A hidden temporary file beside ``dst`` that becomes ``dst`` on :meth:`commit`, else is removed by :meth:`discard`.

    For writers that keep a file open across many calls (video encoders) and so
    cannot use :func:`atomic_path`'s ``with`` block.  ``suffix`` lets a writer
    that looks at the extension see the right one (``".tmp.mp4"``).  Commit
    gives the file the mode ``open()`` would, fsyncs it, renames it and fsyncs
    the folder, like every other atomic write here.
    """

    def __init__(self, dst: str | os.PathLike, suffix: str = ".tmp"):
        self.dst = Path(dst)
        self.dst.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.dst.name}.", suffix=suffix, dir=self.dst.parent)
        os.close(fd)
        self.path = Path(name)
        os.chmod(self.path, default_file_mode())  # mkstemp makes it private; outputs get the usual permissions

    def commit(self) -> None:
        os.chmod(self.path, default_file_mode())  # a writer may have replaced the file with its own
        with open(self.path, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(self.path, self.dst)
        fsync_dir(self.dst.parent)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)
