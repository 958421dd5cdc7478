"""Getting a pretrained model's file: cache folder, mirror, resumable download, checksum, lock.

The transfer itself is :func:`imtrans.data.download.fetch_url` (HTTP Range
resume into a ``.part`` file, progress bar), shared with the data set
downloads; this module adds where files go, the mirror setting, checksums and
a lock so that several processes (``--nproc``) fetch a model once.
"""

from __future__ import annotations

import hashlib
import os
import socket
import time
import urllib.parse
from pathlib import Path

from imtrans.engine.lock import pid_alive
from imtrans.errors import ImtransError
from imtrans.paths import HOME_ENV, cache_dir  # noqa: F401  (HOME_ENV: named here too)

#: ``http://host:port``: replaces the scheme and host of every zoo URL, keeping its path
MIRROR_ENV = "IMTRANS_PRETRAINED_MIRROR"


class ChecksumError(ImtransError):
    """A downloaded or cached file whose sha256 is not the expected one."""


def cache_root() -> Path:
    """Where converted pretrained models live: ``pretrained`` under the cache root (:mod:`imtrans.paths`)."""
    return cache_dir("pretrained")


def mirrored(url: str, mirror: str | None = None) -> str:
    """``url`` with its scheme and host replaced by ``mirror`` (default: ``$IMTRANS_PRETRAINED_MIRROR``).

    The path is kept, so a mirror is a copy of the official folder layout; a
    mirror with a path of its own (``http://host/store``) is prefixed to it.
    """
    mirror = os.environ.get(MIRROR_ENV, "") if mirror is None else mirror
    if not mirror:
        return url
    m = urllib.parse.urlsplit(mirror)
    if m.scheme not in ("http", "https") or not m.netloc or m.query or m.fragment:
        raise ImtransError(
            f"{MIRROR_ENV}='{mirror}' is not a URL such as http://host:port; set it to the scheme and host "
            "of a server holding a copy of the official folder layout, or unset it"
        )
    u = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit((m.scheme, m.netloc, m.path.rstrip("/") + u.path, u.query, ""))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(url: str, dest: Path, *, label: str, sha256: str | None, progress: bool, timeout: float) -> str:
    """Fetch ``url`` into ``dest`` through ``dest.part`` (resumed if present); return the file's sha256.

    With ``sha256`` given, a file with another checksum is deleted and refused
    with :class:`ChecksumError`; the rename to ``dest`` happens only after the
    check, so ``dest`` is always a complete, verified file.
    """
    from imtrans.data.download import fetch_url

    part = dest.with_name(dest.name + ".part")
    fetch_url(url, part, label, progress, timeout)
    digest = sha256_file(part)
    if sha256 and digest != sha256.lower():
        part.unlink(missing_ok=True)
        raise ChecksumError(
            f"the file downloaded from '{url}' has sha256 {digest} but {sha256.lower()} was expected, so it is "
            "corrupt or not the published file; it was removed: run again to download it afresh"
        )
    os.replace(part, dest)
    return digest


class DownloadLock:
    """``with DownloadLock(folder):`` — one process at a time fetches and converts into ``folder``.

    Unlike a run lock it waits (several ``--nproc`` ranks asking for the same
    model is normal): the others block until the first is done and then find
    the model cached.  A lock whose process is gone (same host) is taken over.
    """

    def __init__(self, folder: Path, wait_s: float = 3600.0, poll_s: float = 0.2):
        self.path = Path(folder) / ".lock"
        self.wait_s, self.poll_s = wait_s, poll_s
        self.held = False

    def _owner(self) -> tuple[int, str] | None:
        try:
            pid, host = self.path.read_text().split()[:2]
            return int(pid), host
        except (OSError, ValueError):
            return None

    def _age(self) -> float:
        try:
            return time.time() - self.path.stat().st_mtime
        except OSError:
            return 0.0

    def __enter__(self) -> "DownloadLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner[1] == socket.gethostname() and not pid_alive(owner[0]):
                    self.path.unlink(missing_ok=True)  # stale: its process is gone
                    continue
                if owner is None and self._age() > 10.0:
                    self.path.unlink(missing_ok=True)  # never written completely: its writer died at once
                    continue
                if time.monotonic() > deadline:
                    raise ImtransError(
                        f"{self.path.parent} has been locked by another process for {self.wait_s:.0f} s ({self.path}); "
                        "delete the lock file if no imtrans process is downloading there"
                    ) from None
                time.sleep(self.poll_s)
                continue
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()} {socket.gethostname()}\n")
            self.held = True
            return self

    def __exit__(self, *exc) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False
