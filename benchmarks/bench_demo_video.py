"""Demo latency and video throughput with the official-default generator (9-block ResNet, ngf 64).

* demo: one 256x256 image through ``imtrans demo``'s ``/translate`` event, measured from the
  Gradio client (upload + queue + translation + PNG download) and in-process (``translate_file``);
* video: ``translate_video`` end to end (decode, translate, encode x264 crf 18, remux audio) on a
  synthetic clip at 256x256 and 640x360, frames/s, next to the translation alone.

Weights are random (speed does not depend on them).  Run::

    python benchmarks/bench_demo_video.py                      # bf16 and fp32, both sizes
    python benchmarks/bench_demo_video.py --frames 8 --precision bf16
"""

from __future__ import annotations

import argparse
import contextlib
import io
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def make_model(root: Path) -> Path:
    from imtrans import registry
    from imtrans.engine.checkpoint import save_checkpoint
    from imtrans.plugins import load_plugins

    load_plugins()  # a script is an entry point: parts are registered by the plugins

    torch.manual_seed(0)
    G = registry.build("generator", "resnet")  # official defaults: ngf 64, 9 blocks, instance norm
    meta = {"scheme": "cyclegan", "step": 0, "nets": {"G": {"kind": "generator", "spec": G.imtrans_part.spec}},
            "translators": {"a2b": "G"}}
    save_checkpoint(root / "run" / "checkpoints" / "latest", {"G": G}, meta, None)
    return root / "run"


def bench_demo(run: Path, tmp: Path, precision: str, requests: int) -> tuple[float, float, float]:
    from gradio_client import Client, handle_file

    from imtrans.demo import DemoModel
    from imtrans.demo.app import launch

    img = tmp / "in256.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (256, 256, 3), dtype=np.uint8)).save(img)
    model = DemoModel(run, device="cpu", precision=precision)
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    demo = launch(model, host="127.0.0.1", port=port, block=False, quiet=True, examples=[])
    try:
        client = Client(f"http://127.0.0.1:{port}/", verbose=False)
        client.predict(handle_file(str(img)), "a2b", api_name="/translate")  # warm-up
        http = []
        for _ in range(requests):
            t0 = time.perf_counter()
            client.predict(handle_file(str(img)), "a2b", api_name="/translate")
            http.append(time.perf_counter() - t0)
        local, cpu = [], []
        for _ in range(requests):
            t0, c0 = time.perf_counter(), time.process_time()
            model.translate_file(img, "a2b")
            local.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    finally:
        with contextlib.redirect_stdout(io.StringIO()):  # Gradio announces the closing on stdout
            demo.close()
    return statistics.median(http), statistics.median(local), statistics.median(cpu)


def bench_video(run: Path, tmp: Path, precision: str, size: tuple[int, int], frames: int) -> tuple[float, float, float]:
    from media import make_clip

    from imtrans import load_translator
    from imtrans.translate.video import iter_frames, translate_frames, translate_video

    clip = make_clip(tmp / f"clip_{size[0]}x{size[1]}.mp4", frames=frames, size=size, fps=24)
    t = load_translator(run, device="cpu", precision=precision)
    decoded = list(iter_frames(clip))
    translate_frames(t, decoded[:1])  # warm-up
    t0 = time.perf_counter()
    for f in decoded:
        translate_frames(t, [f])
    model_only = len(decoded) / (time.perf_counter() - t0)
    c0 = time.process_time()
    r = translate_video(t, clip, tmp / f"out_{size[0]}x{size[1]}_{precision}.mp4")
    # CPU seconds per frame: on a shared machine wall-clock rates mostly measure the neighbours
    return r.frames_per_second, model_only, (time.process_time() - c0) / r.frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--precision", nargs="+", default=["bf16", "fp32"])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--requests", type=int, default=5)
    ap.add_argument("--sizes", nargs="+", default=["256x256", "640x360"])
    ap.add_argument("--skip-demo", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        run = make_model(tmp)
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; generator: resnet 9 blocks, ngf 64\n")
        print("| precision | demo 256 px via client (s) | demo 256 px in-process (s) | in-process CPU-s |")
        print("|---|---|---|---|")
        for p in [] if args.skip_demo else args.precision:
            http, local, cpu = bench_demo(run, tmp, p, args.requests)
            print(f"| {p} | {http:.3f} | {local:.3f} | {cpu:.3f} |", flush=True)
        print("\n| precision | video size | frames | end to end (frames/s) | translation only (frames/s) "
              "| end to end CPU-s per frame |")
        print("|---|---|---|---|---|---|")
        for p in args.precision:
            for size in args.sizes:
                w, h = (int(v) for v in size.split("x"))
                fps, model_fps, cpu = bench_video(run, tmp, p, (w, h), args.frames)
                print(f"| {p} | {w}x{h} | {args.frames} | {fps:.2f} | {model_fps:.2f} | {cpu:.2f} |", flush=True)


if __name__ == "__main__":
    main()
