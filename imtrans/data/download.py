"""Download and unpack the public CycleGAN and pix2pix datasets (resumable, verified, safely extracted).

The names and URL patterns are those of the official
``datasets/download_cyclegan_dataset.sh`` (zips that unpack to
``ROOT/<name>/{trainA,trainB,testA,testB}``, read by the ``layout`` domain) and
``datasets/download_pix2pix_dataset.sh`` (``.tar.gz`` files that unpack to
``ROOT/<name>/{train,val,test}`` of side-by-side A|B images, read by the
``aligned`` domain).  ``facades``, ``maps`` and ``cityscapes`` exist in both
collections: ``kind="auto"`` keeps the CycleGAN zip for them, ``kind="pix2pix"``
picks the paired archive.
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Literal

from imtrans.errors import ImtransError
from imtrans.suggest import did_you_mean

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

PIX2PIX_DATASETS: tuple[str, ...] = ("facades", "maps", "edges2shoes", "edges2handbags", "night2day", "cityscapes")

PIX2PIX_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{name}.tar.gz"

DatasetKind = Literal["auto", "cyclegan", "pix2pix"]

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


def _unsafe(n: str, dest: Path) -> bool:
    """Whether archive member name ``n`` is absolute, climbs out with ``..`` or lands outside ``dest``."""
    pp = PurePosixPath(n.replace("\\", "/"))
    if n.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", n) is not None or ".." in pp.parts:
        return True
    dest_r = dest.resolve()
    target = (dest / pp).resolve()
    return target != dest_r and dest_r not in target.parents


def _refuse(n: str) -> ImtransError:
    return ImtransError(f"refusing to extract archive member '{n}': it is a link or its path escapes the target folder")


def _check_members(zf: zipfile.ZipFile, dest: Path) -> None:
    """Refuse the whole archive if any member could land outside ``dest``."""
    for info in zf.infolist():
        if _is_symlink(info) or _unsafe(info.filename, dest):
            raise _refuse(info.filename)


def _check_tar_members(tf: tarfile.TarFile, dest: Path) -> None:
    """Refuse the whole archive unless every member is a plain file or folder inside ``dest``."""
    for m in tf.getmembers():
        if not (m.isfile() or m.isdir()) or _unsafe(m.name, dest):
            raise _refuse(m.name)


def _unpack_into(archive: Path, tmp: Path) -> None:
    """Check every member of ``archive`` (zip or tar.gz), then extract it into ``tmp``."""
    if archive.name.endswith(".zip"):
        with zipfile.ZipFile(archive) as zf:
            broken = zf.testzip()
            if broken is not None:
                raise ImtransError(
                    f"archive '{archive}' is corrupt (member '{broken}' fails its CRC check); delete it and download again"
                )
            _check_members(zf, tmp)
            zf.extractall(tmp)
        return
    with tarfile.open(archive, "r:*") as tf:
        _check_tar_members(tf, tmp)  # reads the whole archive: a truncated one fails here
        tf.extractall(tmp, filter="data")  # the standard library's own guard, on top of ours


def _extract(archive: Path, root: Path, name: str) -> Path:
    """Verify ``archive`` and unpack it into ``root/name`` via a temporary folder."""
    kind = "zip" if archive.name.endswith(".zip") else "tar.gz"
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-extract-", dir=root))
    try:
        try:
            _unpack_into(archive, tmp)
        except (zipfile.BadZipFile, tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error):
            raise ImtransError(f"'{archive}' is not a valid {kind} archive; delete it and download again") from None
        # Official archives hold one top folder named like the dataset; use
        # its content directly instead of nesting ROOT/name/name.
        entries = [p for p in tmp.iterdir() if p.name != "__MACOSX"]
        src = entries[0] if len(entries) == 1 and entries[0].is_dir() else tmp
        dest = root / name
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(src, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _official_url(name: str, kind: DatasetKind) -> str:
    if kind == "auto":
        kind = "cyclegan" if name in CYCLEGAN_DATASETS else "pix2pix" if name in PIX2PIX_DATASETS else "cyclegan"
    known = CYCLEGAN_DATASETS if kind == "cyclegan" else PIX2PIX_DATASETS
    if name not in known:
        everything = sorted(set(CYCLEGAN_DATASETS) | set(PIX2PIX_DATASETS))
        hint = did_you_mean(name, everything)
        raise ImtransError(
            f"unknown {kind} dataset '{name}'{hint}" + ("" if hint else f"; available: {', '.join(known)}")
        )
    if kind == "pix2pix" and name == "cityscapes":
        raise ImtransError(
            "the pix2pix cityscapes set is not distributed by the official repository (licence); download gtFine and "
            "leftImg8bit from cityscapes-dataset.com, join each label map and photo side by side into "
            "ROOT/cityscapes/{train,val}, or pass --url to a mirror of cityscapes.tar.gz"
        )
    return (DEFAULT_URL if kind == "cyclegan" else PIX2PIX_URL).format(name=name)


def download_dataset(
    name: str,
    root: str | os.PathLike = "datasets",
    url: str | None = None,
    progress: bool = True,
    timeout: float = 60.0,
    kind: DatasetKind = "auto",
) -> Path:
    """Download dataset ``name`` into ``root`` and return ``root/name``.

    ``kind`` picks the collection: ``cyclegan`` (:data:`DEFAULT_URL`, zip),
    ``pix2pix`` (:data:`PIX2PIX_URL`, tar.gz) or ``auto`` (CycleGAN for the
    names both have).  ``url`` overrides the official location (a mirror; then
    any ``name`` is allowed, and a ``.tar.gz``/``.tgz``/``.tar`` URL is read as
    a tar archive).  The download streams to ``root/<file>.part`` and resumes
    from it on the next call; the finished file is renamed atomically, verified,
    extracted through a temporary folder (refusing links and members that
    escape ``root``) and then deleted.  An existing, non-empty ``root/name`` is
    returned as is.
    """
    if url is None:
        url = _official_url(name, kind)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or name in (".", ".."):
        raise ImtransError(f"dataset name '{name}' must be a plain folder name (letters, digits, _ . -)")
    root = Path(root).expanduser()
    root.mkdir(parents=True, exist_ok=True)
    dest = root / name
    if dest.is_dir() and any(dest.iterdir()):
        log.info("dataset %s already present at %s", name, dest)
        return dest
    is_tar = url.split("?")[0].endswith((".tar.gz", ".tgz", ".tar"))
    archive = root / f"{name}{'.tar.gz' if is_tar else '.zip'}"
    if not archive.exists():
        part = root / f"{archive.name}.part"
        try:
            fetch_url(url, part, name, progress, timeout)
        except ImtransError as e:  # offline or blocked: say where a copy fetched another way goes
            raise ImtransError(
                f"{e}; to install '{name}' by hand, download {url} another way and save it as {archive.resolve()}, "
                "then run the same command again (it unpacks that file)"
            ) from None
        os.replace(part, archive)  # atomic: an archive on disk is always complete
    dest = _extract(archive, root, name)
    archive.unlink()
    return dest
