"""Download and unpack the public CycleGAN datasets (resumable, verified, safely extracted).

The names and the URL pattern are those of the official
``datasets/download_cyclegan_dataset.sh``.  Each zip unpacks to
``ROOT/<name>/{trainA,trainB,testA,testB}``, the layout the ``layout`` domain reads.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from imtrans.errors import ImtransError
from imtrans.registry import did_you_mean

log = logging.getLogger("imtrans.data")

CYCLEGAN_DATASETS: tuple[str, ...] = (
    "apple2orange",
    "summer2winter_yosemite",
    "horse2zebra",
    "monet2photo",
    "cezanne2photo",
    "ukiyoe2photo",
    "vangogh2photo",
    "maps",
    "cityscapes",
    "facades",
    "iphone2dslr_flower",
    "ae_photos",
    "mini",
    "mini_pix2pix",
    "mini_colorization",
    "grumpifycat",
)

DEFAULT_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{name}.zip"

_CHUNK = 1 << 16


def _progress(enabled: bool, name: str):
    """A rich progress bar, or a do-nothing stand-in when disabled."""
    if not enabled:
        return None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

    return Progress(
        TextColumn(f"[bold]{name}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=False,
        console=Console(stderr=True),  # stdout stays for results (`imtrans pretrained path` prints a path)
    )


def fetch_url(url: str, part: Path, name: str, progress: bool, timeout: float) -> None:
    """Stream ``url`` into ``part``, resuming from its current size with an HTTP Range request.

    Shared by the data set and pretrained-model downloads; failures are :class:`ImtransError`
    and leave ``part`` in place so the next call resumes.
    """
    have = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "imtrans-download"}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            # The server cannot serve the range: the partial file is stale or
            # already longer than the resource.  Start over from zero.
            part.unlink()
            return fetch_url(url, part, name, progress, timeout)
        raise ImtransError(f"downloading '{url}' failed: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise ImtransError(
            f"downloading '{url}' failed ({reason}); check the network and run again (a partial download resumes)"
        ) from None
    with resp:
        status = getattr(resp, "status", 200)
        mode = "wb"
        start = 0
        if have and status == 206:
            m = re.match(r"bytes (\d+)-", resp.headers.get("Content-Range", ""))
            if m and int(m.group(1)) == have:
                mode, start = "ab", have
            # A 206 starting elsewhere is unusable; fall back to a full download.
            elif m:
                resp.close()
                part.unlink()
                return fetch_url(url, part, name, progress, timeout)
        elif have:
            log.info("server ignored the Range request for %s; restarting the download", url)
        length = resp.headers.get("Content-Length")
        total = start + int(length) if length is not None else None
        bar = _progress(progress, name)
        written = start
        with open(part, mode) as f:
            if bar is not None:
                bar.start()
                task = bar.add_task("download", total=total, completed=start)
            try:
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                    written += len(chunk)
                    if bar is not None:
                        bar.update(task, completed=written)
            except OSError as e:
                raise ImtransError(
                    f"downloading '{url}' was interrupted after {written} bytes ({e}); run again to resume"
                ) from None
            finally:
                if bar is not None:
                    bar.stop()
        if total is not None and written != total:
            raise ImtransError(
                f"downloading '{url}' stopped at {written} of {total} bytes; run again to resume"
            )


def _is_symlink(info: zipfile.ZipInfo) -> bool:
    # Unix mode bits live in the high 16 bits of external_attr.
    return stat.S_ISLNK(info.external_attr >> 16)


def _check_members(zf: zipfile.ZipFile, dest: Path) -> None:
    """Refuse the whole archive if any member could land outside ``dest``."""
    dest_r = dest.resolve()
    for info in zf.infolist():
        n = info.filename
        pp = PurePosixPath(n.replace("\\", "/"))
        bad = (
            n.startswith(("/", "\\"))
            or re.match(r"^[A-Za-z]:", n) is not None
            or ".." in pp.parts
            or _is_symlink(info)
        )
        if not bad:
            target = (dest / pp).resolve()
            bad = target != dest_r and dest_r not in target.parents
        if bad:
            raise ImtransError(
                f"refusing to extract archive member '{n}': it is a link or its path escapes the target folder"
            )


def _extract(zip_path: Path, root: Path, name: str) -> Path:
    """Verify ``zip_path`` and unpack it into ``root/name`` via a temporary folder."""
    try:
        with zipfile.ZipFile(zip_path) as zf:
            broken = zf.testzip()
            if broken is not None:
                raise ImtransError(
                    f"archive '{zip_path}' is corrupt (member '{broken}' fails its CRC check); "
                    "delete it and download again"
                )
            tmp = Path(tempfile.mkdtemp(prefix=f".{name}-extract-", dir=root))
            try:
                _check_members(zf, tmp)
                zf.extractall(tmp)
                # Official zips hold one top folder named like the dataset; use
                # its content directly instead of nesting ROOT/name/name.
                entries = [p for p in tmp.iterdir() if p.name != "__MACOSX"]
                src = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
                dest = root / name
                if dest.exists():
                    shutil.rmtree(dest)
                os.replace(src, dest)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except zipfile.BadZipFile:
        raise ImtransError(f"'{zip_path}' is not a valid zip archive; delete it and download again") from None
    return dest


def download_dataset(
    name: str,
    root: str | os.PathLike = "datasets",
    url: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
) -> Path:
    """Download dataset ``name`` into ``root`` and return ``root/name``.

    ``url`` overrides :data:`DEFAULT_URL` (a mirror; then any ``name`` is
    allowed).  The download streams to ``root/name.zip.part`` and resumes from
    it on the next call; the finished file is renamed to ``name.zip``
    atomically, verified, extracted through a temporary folder (refusing
    members that escape ``root``) and then deleted.  An existing, non-empty
    ``root/name`` is returned as is.
    """
    if url is None:
        if name not in CYCLEGAN_DATASETS:
            hint = did_you_mean(name, CYCLEGAN_DATASETS)
            raise ImtransError(
                f"unknown dataset '{name}'{hint}"
                + ("" if hint else f"; available: {', '.join(CYCLEGAN_DATASETS)}")
            )
        url = DEFAULT_URL.format(name=name)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise ImtransError(f"dataset name '{name}' must be a plain folder name (letters, digits, _ . -)")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    dest = root / name
    if dest.is_dir() and any(dest.iterdir()):
        log.info("dataset %s already present at %s", name, dest)
        return dest
    zip_path = root / f"{name}.zip"
    if not zip_path.exists():
        part = root / f"{name}.zip.part"
        fetch_url(url, part, name, progress, timeout)
        os.replace(part, zip_path)  # atomic: a .zip on disk is always complete
    dest = _extract(zip_path, root, name)
    zip_path.unlink()
    return dest
