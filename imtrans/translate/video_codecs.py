"""Readers and writers behind :func:`imtrans.translate.video.translate_video`.

Readers yield items in file order: decoded video frames (RGB arrays with their
timestamps) and, for videos with sound, the audio packets untouched, so the
writer can remux them next to the translated frames.  Writers put the frames
into a temporary file (:class:`imtrans.atomic.TempTarget`) and
commit it on :meth:`close`; :meth:`abort` removes it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Literal, Optional, Protocol

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from imtrans.atomic import TempTarget
from imtrans.data.imageio import to_rgb
from imtrans.errors import ImtransError

#: PyAV (FFmpeg) muxer per output extension
_MUXERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}


class VideoDecodeError(ImtransError):
    """A video or GIF that cannot be decoded; the message names the file and the reason."""


def require_av() -> Any:
    """Import PyAV or explain how to install it."""
    try:
        import av
    except ImportError:
        raise ImtransError(
            "translating videos needs PyAV, which is not installed; install it with: pip install 'imtrans[video]'"
        ) from None
    return av


@dataclass
class Item:
    """One thing read from the input: a video frame (``rgb``, ``pts``, ``time_base``, ``duration_ms``) or an audio packet."""

    kind: Literal["video", "audio"]
    rgb: Optional[np.ndarray] = None
    pts: Optional[int] = None
    time_base: Optional[Fraction] = None
    duration_ms: Optional[int] = None
    packet: Any = None


def _why(e: Exception) -> str:
    # FFmpeg errors repeat the file name after the reason; the message names the file already
    return getattr(e, "strerror", None) or str(e)


def _too_large(path: Path, w: int, h: int, max_pixels: Optional[int]) -> None:
    if max_pixels is not None and w * h > max_pixels:
        raise VideoDecodeError(f"cannot read video '{path}': its frames are too large ({w}x{h} = {w * h} pixels, limit {max_pixels})")


# ---------------------------------------------------------------------------
# readers
# ---------------------------------------------------------------------------

class AvReader:
    """Frames and audio packets of a video file, through PyAV."""

    def __init__(self, path: Path, max_pixels: Optional[int]):
        self.av = require_av()
        self.path, self.max_pixels = path, max_pixels
        self.container: Any = None
        self.audio: Any = None

    def _fail(self, reason: str) -> VideoDecodeError:
        return VideoDecodeError(f"cannot read video '{self.path}': {reason}")

    def __enter__(self) -> "AvReader":
        av = self.av
        if not self.path.is_file():
            raise self._fail("the file does not exist" if not self.path.exists() else "it is not a file")
        if self.path.stat().st_size == 0:
            raise self._fail("the file is empty (zero bytes)")
        try:
            self.container = av.open(str(self.path), "r")
        except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as e:
            raise self._fail(f"it is not a video FFmpeg can open ({_why(e)})") from None
        try:
            self._probe()
        except BaseException:
            self.container.close()
            raise
        return self

    def _probe(self) -> None:
        c = self.container
        if not c.streams.video:
            raise self._fail("it has no video stream")
        self.video = c.streams.video[0]
        self.video.thread_type = "AUTO"  # frame/slice threads: decoding overlaps nothing else here
        self.audio = c.streams.audio[0] if c.streams.audio else None
        w, h = self.video.codec_context.width, self.video.codec_context.height
        if not w or not h:
            raise self._fail("its video stream has no frame size")
        _too_large(self.path, w, h, self.max_pixels)
        rate = self.video.average_rate or self.video.guessed_rate or self.video.base_rate
        if not rate:
            raise self._fail("its frame rate is unknown")
        self.rate: Fraction = Fraction(rate)
        self.fps = float(rate)
        self.total: Optional[int] = self.video.frames or None

    def __exit__(self, *exc: Any) -> None:
        self.container.close()

    def items(self) -> Iterator[Item]:
        streams = [self.video] + ([self.audio] if self.audio is not None else [])
        index, tb = 0, 1 / self.rate
        try:
            for packet in self.container.demux(streams):
                if packet.stream.type == "audio":
                    if packet.size:  # demux ends each stream with an empty flush packet
                        yield Item("audio", packet=packet)
                    continue
                for frame in packet.decode():
                    # A few containers (raw AVI) carry no timestamps: number the frames at the stream's rate.
                    pts, fbt = (frame.pts, frame.time_base) if frame.pts is not None and frame.time_base else (index, tb)
                    yield Item("video", rgb=frame.to_ndarray(format="rgb24"), pts=pts, time_base=Fraction(fbt))
                    index += 1
        except self.av.FFmpegError as e:
            raise self._fail(f"it is truncated or corrupt ({_why(e)})") from None


class GifReader:
    """Frames of a (possibly animated) GIF through Pillow, with per-frame durations and the loop count."""

    def __init__(self, path: Path, max_pixels: Optional[int]):
        self.path, self.max_pixels = path, max_pixels
        self.im: Any = None
        self.audio = None

    def _fail(self, reason: str) -> VideoDecodeError:
        return VideoDecodeError(f"cannot read GIF '{self.path}': {reason}")

    def __enter__(self) -> "GifReader":
        if not self.path.is_file() or self.path.stat().st_size == 0:
            raise self._fail("the file is empty or missing")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                self.im = Image.open(self.path)
        except (UnidentifiedImageError, OSError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
            raise self._fail(f"it is not an image Pillow can open ({e})") from None
        _too_large(self.path, *self.im.size, self.max_pixels)
        self.total: Optional[int] = getattr(self.im, "n_frames", 1)
        self.loop: Optional[int] = self.im.info.get("loop")
        d = self.im.info.get("duration") or 100
        self.fps = 1000.0 / d
        self.rate = Fraction(1000, d)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.im.close()

    def items(self) -> Iterator[Item]:
        total_ms = 0
        try:
            # Pillow composes each frame onto the previous ones (disposal applied), so every frame is whole.
            for i, frame in enumerate(ImageSequence.Iterator(self.im)):
                d = int(frame.info.get("duration") or 100)
                total_ms += d
                rgb = np.asarray(to_rgb(frame.convert("RGBA")))
                yield Item("video", rgb=rgb, pts=i, duration_ms=d)
        except (OSError, SyntaxError, EOFError, ValueError) as e:
            raise self._fail(f"it is truncated or corrupt ({e})") from None
        self.fps = 1000.0 * (i + 1) / total_ms if total_ms else self.fps


# ---------------------------------------------------------------------------
# writers
# ---------------------------------------------------------------------------

class Writer(Protocol):
    audio: Literal["copied", "re-encoded", "none"]

    def write(self, arr: np.ndarray, item: Item) -> None: ...
    def audio_packet(self, packet: Any) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


def _pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr[:, :, 0], "L") if arr.shape[2] == 1 else Image.fromarray(arr, "RGB")


class PngFramesWriter:
    """One PNG per frame in a folder (``000000.png``...); each file is written atomically."""

    audio: Literal["copied", "re-encoded", "none"] = "none"

    def __init__(self, folder: Path):
        self.folder, self.count = folder, 0

    def write(self, arr: np.ndarray, item: Item) -> None:
        from imtrans.atomic import atomic_write_bytes
        from imtrans.translate.io import encode_image

        atomic_write_bytes(self.folder / f"{self.count:06d}.png", encode_image(arr, None, "png", 95))
        self.count += 1

    def audio_packet(self, packet: Any) -> None:
        pass  # frames carry no sound

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass  # every frame written so far is complete; nothing half-written to remove


class GifWriter:
    """An animated GIF with the source's frame durations and loop count (written at the end)."""

    audio: Literal["copied", "re-encoded", "none"] = "none"

    def __init__(self, target: TempTarget, reader: GifReader):
        self.target, self.reader = target, reader
        self.frames: list[Image.Image] = []
        self.durations: list[int] = []

    def write(self, arr: np.ndarray, item: Item) -> None:
        self.frames.append(_pil(arr))
        self.durations.append(item.duration_ms or 100)

    def audio_packet(self, packet: Any) -> None:
        pass

    def close(self) -> None:
        kw: dict[str, Any] = {"loop": self.reader.loop} if self.reader.loop is not None else {}
        first, rest = self.frames[0], self.frames[1:]
        # disposal 1 (keep) with whole frames: every frame replaces the previous one entirely
        first.save(self.target.path, format="GIF", save_all=bool(rest), append_images=rest,
                   duration=self.durations if rest else self.durations[0], disposal=1, optimize=False, **kw)
        self.target.commit()

    def abort(self) -> None:
        self.target.discard()


class AvWriter:
    """A video file through PyAV: x264 (VP9 for .webm) at the source's timestamps, audio remuxed."""

    def __init__(self, target: TempTarget, reader: AvReader, crf: int):
        av = reader.av
        self.target, self.reader, self.crf, self.av = target, reader, crf, av
        self.ext = target.dst.suffix.lower()
        self.out = av.open(str(target.path), "w", format=_MUXERS[self.ext])
        self.stream: Any = None
        self.pending_audio: list[Any] = []
        self.audio: Literal["copied", "re-encoded", "none"] = "none"
        self.audio_out: Any = None
        self.last_pts: Optional[int] = None
        if reader.audio is not None:
            if reader.audio.codec_context.name in self.out.supported_codecs:
                self.audio_out = self.out.add_stream_from_template(reader.audio)
                self.audio = "copied"
            else:  # e.g. AAC into .webm: the container cannot hold it, so re-encode with its own codec
                self.audio_out = self.out.add_stream(self.out.default_audio_codec, rate=reader.audio.sample_rate)
                self.audio = "re-encoded"

    def _open_video(self, arr: np.ndarray, item: Item) -> None:
        h, w = arr.shape[:2]
        codec = "libvpx-vp9" if self.ext == ".webm" else "libx264"
        s = self.out.add_stream(codec, rate=self.reader.rate)
        s.width, s.height = w, h
        # 4:2:0 halves colour resolution and needs even sides; lossless (crf 0) keeps full colour.
        s.pix_fmt = "yuv444p" if self.crf == 0 or w % 2 or h % 2 else "yuv420p"
        s.codec_context.time_base = item.time_base  # keep the source's timestamps exactly (variable rates too)
        if codec == "libx264":
            s.options = {"crf": str(self.crf)}
        else:
            s.options = {"lossless": "1"} if self.crf == 0 else {"crf": str(self.crf), "b": "0"}
        self.stream = s
        for packet in self.pending_audio:
            self.audio_packet(packet)
        self.pending_audio.clear()

    def write(self, arr: np.ndarray, item: Item) -> None:
        if self.stream is None:
            self._open_video(arr, item)
        frame = self.av.VideoFrame.from_ndarray(np.ascontiguousarray(arr[:, :, 0] if arr.shape[2] == 1 else arr),
                                                format="gray" if arr.shape[2] == 1 else "rgb24")
        pts = item.pts if self.last_pts is None or item.pts > self.last_pts else self.last_pts + 1
        frame.pts, frame.time_base, self.last_pts = pts, item.time_base, pts
        self.out.mux(self.stream.encode(frame))

    def audio_packet(self, packet: Any) -> None:
        if self.audio_out is None:
            return
        if self.stream is None:  # the header is written with the first packet: every stream must exist by then
            self.pending_audio.append(packet)
            return
        if self.audio == "copied":
            packet.stream = self.audio_out
            self.out.mux(packet)
        else:
            for frame in packet.decode():
                frame.pts = None  # let the encoder number samples continuously
                self.out.mux(self.audio_out.encode(frame))

    def close(self) -> None:
        self.out.mux(self.stream.encode(None))
        if self.audio == "re-encoded":
            self.out.mux(self.audio_out.encode(None))
        self.out.close()
        self.target.commit()

    def abort(self) -> None:
        try:
            self.out.close()
        except Exception:  # noqa: BLE001 - the file is discarded anyway; the original error matters
            pass
        self.target.discard()
