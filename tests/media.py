"""Synthetic media for the video and demo tests: a short clip with a sine-tone audio track, an animated GIF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def make_clip(path: Path, frames: int = 24, size: tuple[int, int] = (48, 32), fps: int = 12,
              audio: bool = True, sample_rate: int = 16000) -> Path:
    """An H.264 clip of moving colour ramps (+ an AAC 440 Hz tone lasting as long as the video)."""
    import av

    w, h = size
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=fps)
    vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
    vs.options = {"crf": "12"}
    if audio:
        aus = out.add_stream("aac", rate=sample_rate)
        aus.layout = "mono"
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(frames):
        rgb = np.stack([(xx * 4 + i * 5) % 256, (yy * 5 + i * 3) % 256, np.full_like(xx, (i * 7) % 256)], -1)
        x0 = (3 * i) % (w - 8)  # a bright square that moves: consecutive frames differ in content, not only tone
        rgb[h // 4: h // 4 + 8, x0: x0 + 8] = (250, 250, 40)
        f = av.VideoFrame.from_ndarray(rgb.astype(np.uint8), format="rgb24")
        f.pts = i
        out.mux(vs.encode(f))
    out.mux(vs.encode(None))
    if audio:
        n = int(sample_rate * frames / fps)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / sample_rate)).astype(np.float32)[None]
        for k in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(np.ascontiguousarray(tone[:, k:k + 1024]), format="flt", layout="mono")
            af.sample_rate, af.pts = sample_rate, k
            out.mux(aus.encode(af))
        out.mux(aus.encode(None))
    out.close()
    return path


def make_gif(path: Path, frames: int = 5, size: tuple[int, int] = (41, 30)) -> tuple[Path, list[int]]:
    """An animated GIF of smooth colour fields with distinct per-frame durations; returns (path, durations)."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    imgs = []
    for i in range(frames):
        rgb = np.stack([xx * 6 % 256, yy * 8 % 256, np.full_like(xx, 40 * i)], -1).astype(np.uint8)
        rgb[4:12, 5 * i: 5 * i + 8] = (250, 250, 40)  # moving content: Pillow merges identical consecutive frames
        imgs.append(Image.fromarray(rgb))
    durations = [40 + 10 * i for i in range(frames)]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=durations, loop=0)
    return path, durations
