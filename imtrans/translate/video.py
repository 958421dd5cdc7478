"""Videos and animated GIFs, translated frame by frame.

A video is decoded with PyAV (the optional extra ``imtrans[video]``), its frames
go through a :class:`~imtrans.translate.translator.Translator` in batches of
``translator.batch_size`` (same precision, same tiling as images), and the
result is encoded at the source's frame timestamps (so its frame rate, constant
or variable) and size.  The audio stream is copied packet for packet (remuxed);
only when the output container cannot hold the source's audio codec is it
re-encoded with the container's default codec.  GIFs are read and written with
Pillow, keeping each frame's duration and the loop count: GIF in, GIF out.

Outputs are written to a hidden temporary file next to the target and renamed
into place at the end, so an interrupted or failed job never leaves a
half-written file at the target path.  A file that cannot be decoded raises
:class:`VideoDecodeError` (an :class:`~imtrans.errors.ImtransError`) naming the
file and the reason, which the CLI reports and skips like a broken image.
"""

from __future__ import annotations

import glob
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Optional

import numpy as np
import torch
from PIL import Image

from imtrans.atomic import TempTarget
from imtrans.data.imageio import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS, list_images, pil_to_uint8_tensor
from imtrans.errors import ImtransError
from imtrans.translate.translator import Translator, resize_short_side
from imtrans.translate.video_codecs import VideoDecodeError, require_av  # noqa: F401  (defined there, named here too)

VIDEO_EXTENSIONS: tuple[str, ...] = (".mp4", ".mov", ".mkv", ".webm", ".avi")
GIF_EXTENSIONS: tuple[str, ...] = (".gif",)
#: every file extension the video path takes (videos and animated GIFs)
MEDIA_EXTENSIONS: tuple[str, ...] = VIDEO_EXTENSIONS + GIF_EXTENSIONS

#: default constant-rate factor: 18 is visually lossless for x264 and VP9; 0 is lossless
DEFAULT_CRF = 18


@dataclass
class VideoResult:
    """What :func:`translate_video` wrote: frame count, size, timing and how the audio was carried."""

    src: Path
    dst: Path
    frames: int
    size: tuple[int, int]  # output (width, height)
    fps: float  # source frame rate (average)
    audio: Literal["copied", "re-encoded", "none"]
    seconds: float = 0.0

    @property
    def frames_per_second(self) -> float:
        """Translation throughput (decode + translate + encode)."""
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def is_media(path: str | os.PathLike) -> bool:
    """True for file names the video path handles (:data:`MEDIA_EXTENSIONS`, any case)."""
    return Path(path).suffix.lower() in MEDIA_EXTENSIONS


# ---------------------------------------------------------------------------
# input discovery
# ---------------------------------------------------------------------------

def _walk_media(root: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".") and d != "__MACOSX"]
        found += [Path(dirpath) / f for f in filenames if not f.startswith(".") and is_media(f)]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def split_inputs(inputs: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """Separate videos from images: ``(video (file, relative name) pairs, inputs left for images)``.

    Video files named explicitly and glob patterns that match only videos are
    taken out of the image inputs; folders stay in both (the image pipeline
    ignores video files, this one ignores images).
    """
    videos: list[tuple[Path, Path]] = []
    images: list[str] = []
    for item in inputs:
        p = Path(item)
        if p.is_file() and is_media(p):
            videos.append((p, Path(p.name)))
        elif p.is_file():
            images.append(item)
        elif p.is_dir():
            found = [(f, f.relative_to(p)) for f in _walk_media(p)]
            videos += found
            if not found or list_images(p):  # a folder of videos only is not also an (empty) image folder
                images.append(item)
        elif glob.has_magic(str(item)):
            matches = [Path(m) for m in sorted(glob.glob(str(item), recursive=True))]
            videos += [(m, Path(m.name)) for m in matches if m.is_file() and is_media(m)]
            if any(m.is_dir() or m.suffix.lower() in IMAGE_EXTENSIONS for m in matches) or not matches:
                images.append(item)
        else:
            images.append(item)  # the image pipeline reports missing inputs
    unique: dict[Path, tuple[Path, Path]] = {}
    for f, r in videos:  # the same file named twice (a folder and a glob) is translated once
        unique.setdefault(f.resolve(), (f, r))
    return list(unique.values()), images


def plan_jobs(
    videos: list[tuple[Path, Path]], out: Path, *, suffix: str = "", frames_dir: bool = False, images_too: bool = False
) -> list[tuple[Path, Path]]:
    """``(video, output path)`` pairs: ``out`` itself when it names one video file, else paths under folder ``out``.

    Under a folder, each video keeps its relative folder and its container
    (``a/clip.mov`` -> ``OUT/a/clip<suffix>.mov``); with ``frames_dir`` it becomes
    the folder ``OUT/a/clip<suffix>/`` of PNG frames.  Raises :class:`ImtransError`
    when ``out`` names a file but there are several inputs, or the names clash.
    """
    from imtrans.translate.io import output_path

    if is_media(out) and not frames_dir:
        if len(videos) != 1 or images_too:
            raise ImtransError(
                f"-o '{out}' names one video file, but the inputs hold {len(videos)} video(s)"
                + (" and images" if images_too else "") + "; give -o a folder instead"
            )
        return [(videos[0][0], out)]
    if is_media(out):
        raise ImtransError(f"--frames-dir writes a folder of PNG frames; give -o a folder, not the file name '{out}'")
    jobs = []
    for src, rel in videos:
        dst = output_path(out, rel, suffix, src.suffix.lower().lstrip("."))
        jobs.append((src, dst.with_suffix("") if frames_dir else dst))
    dsts = [d for _, d in jobs]
    for d in dsts:
        if dsts.count(d) > 1:
            names = ", ".join(str(s) for s, x in jobs if x == d)
            raise ImtransError(f"videos {names} would all be written to '{d}'; translate them separately")
    return jobs


# ---------------------------------------------------------------------------
# frames through the translator
# ---------------------------------------------------------------------------

def _frame_tensor(t: Translator, rgb: np.ndarray) -> torch.Tensor:
    """An ``[H,W,3]`` uint8 frame as the generator's uint8 ``[C,H,W]`` input (resized if ``t.size``)."""
    if t.size is None and t.in_channels == 3:
        return torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1).contiguous()  # frames may be read-only
    img = Image.fromarray(rgb, "RGB")
    if t.size is not None:
        img = resize_short_side(img, t.size)
    return pil_to_uint8_tensor(img.convert("L") if t.in_channels == 1 else img)


def translate_frames(t: Translator, frames: list[np.ndarray]) -> list[np.ndarray]:
    """Translate same-size ``[H,W,3]`` uint8 frames; ``[H,W,C']`` uint8 out, tiled when ``t.tile`` asks for it."""
    xs = [_frame_tensor(t, f) for f in frames]
    h, w = xs[0].shape[-2:]
    if t.needs_tiles(h, w):
        return [t.translate_tiled(x) for x in xs]
    return t.translate_batch(xs)


# ---------------------------------------------------------------------------
# public entry point
# ---------------------------------------------------------------------------

ProgressFn = Callable[[int, Optional[int]], None]
CALIBRATION_FRAMES = 6  # int8: quantised on the first frames, as a folder is on its first images


def translate_video(
    translator: Translator,
    src: str | os.PathLike,
    dst: str | os.PathLike,
    *,
    frames_dir: bool = False,
    crf: int = DEFAULT_CRF,
    on_progress: Optional[ProgressFn] = None,
) -> VideoResult:
    """Translate the video or GIF ``src`` frame by frame into ``dst``.

    ``dst`` is a video file (any of :data:`VIDEO_EXTENSIONS`; a GIF for a GIF
    input) or, with ``frames_dir=True``, a folder that receives one PNG per frame
    (``000000.png``, ``000001.png``...).  ``crf`` is the encoder's quality
    (0 = lossless, 18 = visually lossless, higher = smaller files).
    ``on_progress(frames_done, frames_total_or_None)`` is called after each batch.
    Raises :class:`VideoDecodeError` for an unreadable input and
    :class:`ImtransError` for unusable arguments; nothing is left at ``dst`` then.
    """
    from imtrans.translate import video_codecs as vc

    src, dst = Path(src), Path(dst)
    if not 0 <= crf <= 51:
        raise ImtransError(f"--crf {crf} must be between 0 (lossless) and 51")
    is_gif = src.suffix.lower() in GIF_EXTENSIONS
    if not frames_dir:
        want = GIF_EXTENSIONS if is_gif else VIDEO_EXTENSIONS
        if dst.suffix.lower() not in want:
            kind = "a GIF is written as a GIF" if is_gif else f"a video is written as one of {', '.join(VIDEO_EXTENSIONS)}"
            raise ImtransError(f"output '{dst}' has the wrong extension: {kind}; rename the output or use --frames-dir")
    t0 = time.perf_counter()
    limit = getattr(translator, "max_pixels", DEFAULT_MAX_PIXELS)
    reader = vc.GifReader(src, limit) if is_gif else vc.AvReader(src, limit)
    with reader:
        target = None if frames_dir else TempTarget(dst, suffix=".tmp" + dst.suffix)
        writer: Optional[vc.Writer] = None
        try:
            if target is None:
                writer = vc.PngFramesWriter(dst)
            elif is_gif:
                writer = vc.GifWriter(target, reader)
            else:
                writer = vc.AvWriter(target, reader, crf)
            frames, size = _pump(translator, reader, writer, on_progress)
            writer.close()
        except BaseException:
            if writer is not None:
                writer.abort()
            elif target is not None:
                target.discard()
            raise
    return VideoResult(src, dst, frames, size, reader.fps, writer.audio, time.perf_counter() - t0)


def _pump(t: Translator, reader: Any, writer: Any, on_progress: Optional[ProgressFn]) -> tuple[int, tuple[int, int]]:
    """Decode -> translate in batches -> encode; returns (frames, output (w, h))."""
    done, size = 0, (0, 0)
    batch: list[Any] = []

    def flush() -> None:
        nonlocal done, size
        outs = translate_frames(t, [f.rgb for f in batch])
        for f, arr in zip(batch, outs):
            writer.write(arr, f)
        size = (outs[-1].shape[1], outs[-1].shape[0])
        done += len(batch)
        batch.clear()
        if on_progress:
            on_progress(done, reader.total)

    # int8 calibrates on the first frames (up to 6) before any is translated
    want = CALIBRATION_FRAMES if t.needs_calibration else t.batch_size
    for item in reader.items():
        if item.kind == "audio":
            writer.audio_packet(item.packet)
            continue
        batch.append(item)
        if len(batch) >= want:
            _calibrate_on_frames(t, batch)
            want = t.batch_size
            flush()
    if batch:
        _calibrate_on_frames(t, batch)
        flush()
    if done == 0:
        raise VideoDecodeError(f"cannot read video '{reader.path}': it holds no decodable frames")
    return done, size


def _calibrate_on_frames(t: Translator, items: list[Any]) -> None:
    if t.needs_calibration:
        t.calibrate([_frame_tensor(t, f.rgb) for f in items])


def iter_frames(path: str | os.PathLike, max_pixels: Optional[int] = None) -> Iterator[np.ndarray]:
    """The frames of a video or GIF as ``[H,W,3]`` uint8 RGB arrays (what :func:`translate_video` translates)."""
    from imtrans.translate import video_codecs as vc

    p = Path(path)
    reader = vc.GifReader(p, max_pixels) if p.suffix.lower() in GIF_EXTENSIONS else vc.AvReader(p, max_pixels)
    with reader:
        for item in reader.items():
            if item.kind == "video":
                yield item.rgb


__all__ = [
    "DEFAULT_CRF", "GIF_EXTENSIONS", "MEDIA_EXTENSIONS", "VIDEO_EXTENSIONS", "VideoDecodeError", "VideoResult",
    "is_media", "iter_frames", "plan_jobs", "require_av", "split_inputs", "translate_frames", "translate_video",
]
