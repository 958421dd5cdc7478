"""Translating many files: a chain of small stages with one report.

``imtrans translate`` and :meth:`Translator.translate_folder` run::

    plan ──▶ drop_existing ──▶ decode ──▶ batch_by_size ──▶ run ──▶ write

* plan: inputs -> (input, output) jobs; refuses bad names before any work;
* drop_existing (``skip_existing``): leaves outputs that exist;
* decode: threads, bounded read-ahead, input order kept;
* batch_by_size: same-size images together, tiled ones alone;
* run: the model, in the calling thread;
* write: encode + atomic write in threads, bounded.

Each stage is a generator that pulls from the one before, so the work is
bounded and overlapped: while the model runs in the calling thread, the
decode pool reads ahead (at most ``prefetch`` images) and the write pool
encodes and writes finished ones (at most ``prefetch`` pending).  Every stage
records what happens to a file in the one :class:`TranslateReport`, which
also calls the progress and error listeners, so a failure anywhere is one
file's failure and the rest continue.
"""

from __future__ import annotations

import collections
import contextlib
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional, Protocol

import numpy as np
import torch
from PIL import Image

from imtrans.atomic import atomic_write_bytes
from imtrans.data.imageio import IMAGE_EXTENSIONS
from imtrans.errors import ImtransError
from imtrans.translate import io as tio


class Translates(Protocol):
    """What the pipeline needs of a translator (:class:`~imtrans.translate.translator.Translator`, which uses this module)."""

    batch_size: int

    def load_file(self, path: Path) -> tuple[torch.Tensor, Optional[Image.Image]]: ...
    def needs_tiles(self, h: int, w: int) -> bool: ...
    def translate_tiled(self, image: torch.Tensor) -> np.ndarray: ...
    def translate_batch(self, images: list[torch.Tensor]) -> list[np.ndarray]: ...


ProgressFn = Callable[[int, int], None]
ErrorFn = Callable[[Path, str], None]


@dataclass
class TranslateReport:
    """What a folder translation did; it also drives progress.

    ``ok``: ``(input, output)`` pairs written; ``failed``: ``(input, reason)``
    pairs (unreadable inputs, failed translations or writes); ``skipped``:
    inputs whose output already existed (``skip_existing``); ``renamed``:
    ``(input, output)`` pairs whose output keeps the input's extension because
    another input has the same stem (``x.jpg`` -> ``x.jpg.png`` beside ``x.png``).
    ``total`` is the number of inputs this process handles.

    ``on_progress(done, total)`` is called whenever a file is finished (and
    once at the start); ``on_error(input, reason)`` whenever one fails.
    """

    ok: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    renamed: list[tuple[Path, Path]] = field(default_factory=list)
    total: int = 0
    seconds: float = 0.0
    on_progress: Optional[ProgressFn] = field(default=None, repr=False, compare=False)
    on_error: Optional[ErrorFn] = field(default=None, repr=False, compare=False)

    @property
    def done(self) -> int:
        """Inputs finished so far, whatever the outcome."""
        return len(self.ok) + len(self.failed) + len(self.skipped)

    @property
    def images_per_second(self) -> float:
        return len(self.ok) / self.seconds if self.seconds > 0 else 0.0

    def progress(self) -> None:
        """Tell the progress listener where things stand."""
        if self.on_progress:
            self.on_progress(self.done, self.total)

    def add_ok(self, src: Path, dst: Path) -> None:
        self.ok.append((src, dst))
        self.progress()

    def add_skipped(self, src: Path) -> None:
        self.skipped.append(src)
        self.progress()

    def add_failed(self, src: Path, reason: str) -> None:
        self.failed.append((src, reason))
        if self.on_error:
            self.on_error(src, reason)
        self.progress()


@dataclass(frozen=True)
class Job:
    """One input file and the output path its translation goes to."""

    src: Path
    dst: Path


@dataclass
class Item:
    """A decoded input: uint8 ``[C, H, W]`` ready for the network, and the alpha to re-attach."""

    job: Job
    image: torch.Tensor
    alpha: Optional[Image.Image]


@dataclass
class Plan:
    """The jobs of one process and the outputs renamed to keep inputs of the same stem apart."""

    jobs: list[Job]
    renamed: list[tuple[Path, Path]]


# ---------------------------------------------------------------------------- stages


def plan(
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    suffix: str = "",
    format: str = "png",
    rank: int = 0,
    world: int = 1,
) -> Plan:
    """Expand ``inputs`` and give each an output path inside ``out_dir``; shard for ``rank`` of ``world``.

    Raises :class:`ImtransError` before any work for a bad ``suffix`` or format,
    an output that would leave ``out_dir``, inputs that hold no image at all,
    and outputs that cannot be told apart.
    """
    from imtrans.engine.distributed import shard

    if format not in tio.FORMATS:
        raise ImtransError(f"--format '{format}' is not one of {', '.join(tio.FORMATS)}")
    tio.check_suffix(suffix)
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    inputs = list(inputs)
    pairs = tio.gather_inputs(inputs)
    if not pairs:
        names = ", ".join(f"'{i}'" for i in inputs) or "(none)"
        raise ImtransError(
            f"no image files found in {names} (looked for {', '.join(IMAGE_EXTENSIONS)}, hidden files skipped); "
            "give a folder, files or a glob pattern that hold images"
        )
    jobs, renamed = tio.assign_outputs(pairs, Path(out_dir), suffix, format)
    mine = shard([Job(src, dst) for src, dst in jobs], rank, world)
    own = {j.src for j in mine}
    return Plan(jobs=mine, renamed=[(s, d) for s, d in renamed if s in own])


def drop_existing(jobs: Iterable[Job], report: TranslateReport) -> Iterator[Job]:
    """Pass on the jobs whose output does not exist yet; record the others as skipped."""
    for job in jobs:
        if job.dst.exists():
            report.add_skipped(job.src)
        else:
            yield job


def decode(
    jobs: Iterable[Job],
    load: Callable[[Path], tuple[torch.Tensor, Optional[Image.Image]]],
    report: TranslateReport,
    *,
    workers: int,
    prefetch: int,
) -> Iterator[Item]:
    """Decode in ``workers`` threads, at most ``prefetch`` files ahead, yielding in input order.

    A file that ``load`` cannot read is recorded in ``report`` and skipped.
    """
    pending: collections.deque[tuple[Job, Future]] = collections.deque()
    it = iter(jobs)
    pool = ThreadPoolExecutor(workers, thread_name_prefix="imtrans-decode")
    try:
        while True:
            while len(pending) < prefetch and (job := next(it, None)) is not None:
                pending.append((job, pool.submit(load, job.src)))
            if not pending:
                return
            job, fut = pending.popleft()
            try:
                image, alpha = fut.result()
            except ImtransError as e:
                report.add_failed(job.src, _reason(e, job.src))
                continue
            except Exception as e:  # noqa: BLE001 - any decode crash is one file's failure
                report.add_failed(job.src, f"{type(e).__name__}: {e}")
                continue
            yield Item(job, image, alpha)
    finally:  # also when the consumer stops early: drop what was read ahead
        for _job, fut in pending:
            fut.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


def batch_by_size(
    items: Iterable[Item], batch_size: int, needs_tiles: Callable[[int, int], bool]
) -> Iterator[list[Item]]:
    """Group same-size images into batches of up to ``batch_size``; tiled images go alone.

    At most ``2 * batch_size`` images wait in partial batches: when sizes rarely
    repeat, the oldest partial batch runs as it is.
    """
    buckets: dict[tuple[int, int], list[Item]] = {}
    for item in items:
        h, w = item.image.shape[-2:]
        if needs_tiles(h, w):
            yield [item]
            continue
        bucket = buckets.setdefault((h, w), [])
        bucket.append(item)
        if len(bucket) >= batch_size:
            yield buckets.pop((h, w))
        while sum(len(b) for b in buckets.values()) > 2 * batch_size:
            yield buckets.pop(next(iter(buckets)))
    yield from buckets.values()


def run(batches: Iterable[list[Item]], translator: Translates, report: TranslateReport) -> Iterator[tuple[Item, np.ndarray]]:
    """Translate each batch (tiled when a lone image needs tiles); a failed batch fails its files."""
    for batch in batches:
        try:
            first = batch[0].image
            if len(batch) == 1 and translator.needs_tiles(*first.shape[-2:]):
                arrays = [translator.translate_tiled(first)]
            else:
                arrays = translator.translate_batch([it.image for it in batch])
        except (RuntimeError, ImtransError) as e:
            for it in batch:
                report.add_failed(it.job.src, f"translation failed ({e})")
            continue
        yield from zip(batch, arrays)


def write(
    results: Iterable[tuple[Item, np.ndarray]],
    encode: Callable[[np.ndarray, Optional[Image.Image]], bytes],
    report: TranslateReport,
    *,
    workers: int,
    max_pending: int,
) -> None:
    """Encode and write each result atomically in ``workers`` threads, at most ``max_pending`` in memory."""
    pending: collections.deque[tuple[Job, Future]] = collections.deque()

    def drain(limit: int) -> None:
        while len(pending) > limit:
            job, fut = pending.popleft()
            try:
                fut.result()
            except Exception as e:  # noqa: BLE001 - a failed write is one file's failure
                report.add_failed(job.src, f"could not write '{job.dst}' ({type(e).__name__}: {e})")
            else:
                report.add_ok(job.src, job.dst)

    def encode_write(arr: np.ndarray, alpha: Optional[Image.Image], dst: Path) -> None:
        atomic_write_bytes(dst, encode(arr, alpha))

    with ThreadPoolExecutor(workers, thread_name_prefix="imtrans-encode") as pool:
        for item, arr in results:
            pending.append((item.job, pool.submit(encode_write, arr, item.alpha, item.job.dst)))
            drain(max_pending)
        drain(0)


# ---------------------------------------------------------------------------- the chain


def translate_folder(
    translator: Translates,
    inputs: str | os.PathLike | Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    *,
    suffix: str = "",
    format: str = "png",
    quality: int = 95,
    skip_existing: bool = False,
    workers: Optional[int] = None,
    on_progress: Optional[ProgressFn] = None,
    on_error: Optional[ErrorFn] = None,
    rank: int = 0,
    world: int = 1,
) -> TranslateReport:
    """Run the chain for ``translator``; see :meth:`Translator.translate_folder` for the arguments."""
    if not 1 <= quality <= 100:
        raise ImtransError(f"--quality {quality} must be between 1 and 100")
    todo = plan(inputs, out_dir, suffix=suffix, format=format, rank=rank, world=world)
    report = TranslateReport(renamed=todo.renamed, total=len(todo.jobs), on_progress=on_progress, on_error=on_error)
    t0 = time.perf_counter()
    report.progress()
    jobs: Iterable[Job] = drop_existing(todo.jobs, report) if skip_existing else todo.jobs
    n_workers = workers or min(4, os.cpu_count() or 2)
    prefetch = max(2 * translator.batch_size, 2 * n_workers)
    items = decode(jobs, translator.load_file, report, workers=n_workers, prefetch=prefetch)
    with contextlib.closing(items):  # stop the decode threads now, also when a stage raises
        batches = batch_by_size(items, translator.batch_size, translator.needs_tiles)
        results = run(batches, translator, report)
        write(results, lambda arr, alpha: tio.encode_image(arr, alpha, format, quality), report,
              workers=max(1, n_workers // 2), max_pending=prefetch)
    report.seconds = time.perf_counter() - t0
    return report


def _reason(e: Exception, src: Path) -> str:
    # open_rgb's messages read "cannot read image '<path>': <reason>"; the report names the file already.
    msg = str(e)
    prefix = f"cannot read image '{src}': "
    return msg[len(prefix):] if msg.startswith(prefix) else msg
