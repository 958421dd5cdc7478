"""`imtrans translate` (folders of images) and `imtrans export` (ONNX / torch.export / a zoo generator file)."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Optional

import typer

from imtrans.cli._app import ARGV, app
from imtrans.cli._console import console, err_console


@app.command("translate")
def translate(
    model: str = typer.Argument(..., help="Run directory, checkpoint directory, .safetensors file, pretrained model name or hf-hub:owner/name[@revision]."),
    inputs: list[str] = typer.Argument(..., metavar="INPUT", help="Image or video files, folders (recursive) or glob patterns."),
    out: Path = typer.Option(..., "--out", "-o", help="Output folder (relative folders and file stems are kept)."),
    direction: str = typer.Option("a2b", "--direction", "-d", help="a2b or b2a (CycleGAN: G or F)."),
    suffix: str = typer.Option("", "--suffix", help="Appended to each output file stem, e.g. _zebra."),
    format: str = typer.Option("png", "--format", "-f", help="png, jpg or webp."),
    quality: int = typer.Option(95, "--quality", help="JPEG/WebP quality 1-100."),
    size: Optional[int] = typer.Option(None, "--size", help="Resize the short side to N px first (default: native size)."),
    tile: Optional[int] = typer.Option(None, "--tile", help="Translate images larger than N px in overlapping N px tiles."),
    overlap: int = typer.Option(64, "--overlap", help="Tile overlap in px (blended without seams)."),
    batch_size: Optional[int] = typer.Option(
        None, "--batch-size", "-b", help="Same-size images per forward pass (default: 1 on CPU, 4 on GPU)."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Decode threads (default: up to 4)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option(
        "auto", "--precision",
        help="auto, fp32, bf16, fp16 or int8 (auto: bf16 on CPUs with AVX512-BF16/AMX, else fp32; "
             "int8: --backend onnxruntime, calibrated on the first inputs, refused below 35 dB PSNR vs fp32)."),
    backend: str = typer.Option(
        "auto", "--backend",
        help="auto, torch or onnxruntime (auto on CPU: ONNX Runtime fp32 when installed, PyTorch bf16 on AMX CPUs)."),
    norm_mode: str = typer.Option(
        "auto", "--norm-mode",
        help="auto, train or eval. train: the pix2pix test protocol (batch-norm statistics of each image, dropout on, "
             "seeded by --seed), as the paper and the official test.py; eval: running statistics, no dropout "
             "(official --eval). auto: train for pix2pix checkpoints and zoo pix2pix_* models, else eval."),
    seed: int = typer.Option(0, "--seed", help="Seed of the dropout masks under --norm-mode train (the same for every image)."),
    skip_existing: bool = typer.Option(False, "--skip-existing", help="Leave outputs that already exist (resume)."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No live progress bar."),
    nproc: Optional[int] = typer.Option(None, "--nproc", help="Shard the inputs over N processes (torchrun)."),
    frames_dir: bool = typer.Option(False, "--frames-dir", help="Write each video as a folder of PNG frames (OUT/<name>/000000.png) instead of a video."),
    crf: int = typer.Option(18, "--crf", help="Video quality: 0 lossless, 18 visually lossless (default), up to 51."),
) -> None:
    """Translate images and videos (mp4, mov, mkv, webm, avi; GIF in, GIF out) with a trained generator.

    Unreadable files are reported and skipped (exit 1).  -o is a folder, or the output file for one video.
    """
    from imtrans.engine import distributed

    if nproc is not None and distributed.env_info().world == 1:
        raise typer.Exit(distributed.launch(nproc, distributed.strip_option(ARGV, "--nproc")))
    dist_info = distributed.env_info()
    from imtrans.translate import load_translator
    from imtrans.translate.video import split_inputs

    videos, inputs = split_inputs(inputs)  # videos and GIFs go through imtrans.translate.video
    t = load_translator(model, direction=direction, device=device, precision=precision,
                        tile=tile, overlap=overlap, size=size, batch_size=batch_size, backend=backend,
                        norm_mode=norm_mode, seed=seed)
    protocol = (f"pix2pix test protocol (batch statistics per image, dropout seed {t.seed})" if t.norm_mode == "train"
                else "eval mode (running statistics, no dropout)")
    err_console.print(
        f"translating with {model} ({direction}) on {t.device} with {t.backend_name} at {t.precision}, {protocol}"
        + (f", tiles {tile}px/{overlap}px overlap" if tile else ""), highlight=False, soft_wrap=True)
    video_failed: list = []
    if videos:
        from imtrans.cli._video import run_videos

        video_failed = run_videos(t, videos, out, suffix=suffix, frames_dir=frames_dir, crf=crf,
                                  skip_existing=skip_existing, progress=not no_progress, images_too=bool(inputs),
                                  rank=dist_info.rank, world=dist_info.world)
        if not inputs:
            raise typer.Exit(1 if video_failed else 0)

    report = _translate_images(t, inputs, out, progress=not no_progress, suffix=suffix, format=format,
                               quality=quality, skip_existing=skip_existing, workers=workers,
                               rank=dist_info.rank, world=dist_info.world)
    _summary(report, "imtrans translate" + (f" (rank {dist_info.rank} of {dist_info.world})" if dist_info.enabled else ""))
    if report.failed or video_failed:
        raise typer.Exit(1)
    console.print(f"output: {out}", highlight=False)


def _translate_images(t, inputs: list[str], out: Path, progress: bool, **kwargs):
    """``Translator.translate_folder`` with errors printed as they happen and a live bar."""
    from rich.markup import escape
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    def on_error(src: Path, reason: str) -> None:
        err_console.print(f"[red]failed[/] {escape(str(src))}: {escape(reason)}", highlight=False, soft_wrap=True)

    run = functools.partial(t.translate_folder, inputs, out, on_error=on_error, **kwargs)
    if not progress:
        return run()
    with Progress(
        TextColumn("[bold]translate"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=err_console, transient=True,
    ) as bar:
        task = bar.add_task("translate", total=None, rate="")
        t0 = time.perf_counter()

        def on_progress(done: int, total: int) -> None:  # the report calls this as files finish
            dt = time.perf_counter() - t0
            bar.update(task, completed=done, total=total, rate=f"{done / dt:.1f} img/s" if dt > 0 and done else "")

        return run(on_progress=on_progress)


def _summary(report, title: str) -> None:
    """Renamed outputs, the result table and the failed files."""
    from rich.markup import escape
    from rich.table import Table

    for src, dst in report.renamed:
        err_console.print(f"[yellow]kept apart[/] {escape(str(src))} -> {escape(str(dst))} "
                          "(another input has the same name with another extension)", highlight=False, soft_wrap=True)
    table = Table(title=title, show_header=True)
    table.add_column("result")
    table.add_column("images", justify="right")
    table.add_row("[green]written[/]", str(len(report.ok)))
    table.add_row("skipped (exists)", str(len(report.skipped)))
    table.add_row("[red]failed[/]" if report.failed else "failed", str(len(report.failed)))
    table.add_row("images/s", f"{report.images_per_second:.2f}")
    console.print(table)
    if report.failed:
        fails = Table(title="failed files", show_header=True)
        fails.add_column("file", overflow="fold")
        fails.add_column("reason", overflow="fold")
        for src, reason in report.failed:
            fails.add_row(escape(str(src)), escape(reason))
        console.print(fails)


#: output suffix -> format, when --format is left out
_SUFFIX_FORMATS = {".onnx": "onnx", ".pt2": "pt2", ".safetensors": "safetensors"}


@app.command("export")
def export(
    model: str = typer.Argument(..., help="Run directory, checkpoint directory, .safetensors file, pretrained model name or hf-hub:owner/name[@revision]."),
    out: Path = typer.Option(..., "--out", "-o", help="Output file (.onnx, .pt2 or .safetensors)."),
    format: Optional[str] = typer.Option(
        None, "--format", "-f",
        help="onnx, pt2 (a torch.export program) or safetensors (the generator file a zoo entry points at); "
             "default: from the output's suffix."),
    direction: str = typer.Option("a2b", "--direction", "-d", help="a2b or b2a."),
    size: int = typer.Option(64, "--size", help="Example size in px (the exported axes stay dynamic)."),
) -> None:
    """Export a generator: ONNX or .pt2 with dynamic height/width (checked against eager PyTorch), or an
    imtrans generator .safetensors file for the model zoo (prints its sha256 and a Pretrained entry)."""
    from imtrans.errors import ImtransError
    from imtrans.zoo import resolve_model

    format = format or _SUFFIX_FORMATS.get(out.suffix.lower())
    if format is None:
        raise ImtransError(f"-o {out} does not say the format; give --format onnx, pt2 or safetensors, or an output "
                           "ending in .onnx, .pt2 or .safetensors")
    if format not in ("torchscript", *_SUFFIX_FORMATS.values()):  # (torchscript: export_model says what replaced it)
        raise ImtransError(f"--format '{format}' is not one of onnx, pt2, safetensors")
    if out.is_dir():  # said before minutes of export, not as the rename's error after them
        raise ImtransError(f"-o {out} is a folder; give the file to write, e.g. -o {out / ('model.' + format)}")
    path = resolve_model(model, direction=direction)
    if format == "safetensors":
        _export_generator_file(model, path, out, direction)
        return
    from imtrans.build import load_generator
    from imtrans.translate.export import export_model

    net = load_generator(path, direction)
    res = export_model(net, out, format, size=size)
    h, w = res.check_size
    console.print(
        f"[green]exported[/] {res.format} to {res.path}; max abs difference vs PyTorch at {h}x{w}: {res.max_abs_diff:.3g}",
        highlight=False, soft_wrap=True,
    )
    m = getattr(net, "size_multiple", 1)
    console.print(f"input: float32 [B, {getattr(net, 'in_channels', 3)}, H, W] in [-1, 1], H and W multiples of {m}",
                  highlight=False, soft_wrap=True)


def _export_generator_file(model: str, path, out: Path, direction: str) -> None:
    """``export -o model.safetensors``: the generator file, its sha256 and the zoo entry that publishes it."""
    from imtrans.zoo import publish

    w = publish.write_generator(path, out, direction)
    spec = w.meta["nets"][publish.NET]["spec"]
    typer.echo(f"exported generator {spec['name']} ({direction}) of {model} to {w.path} ({w.bytes} bytes)")
    typer.echo(f"sha256: {w.sha256}")
    typer.echo("zoo entry (in your plugin's register_pretrained hook; see docs/pretrained.md):")
    typer.echo(publish.entry_snippet(out.stem, w))
