"""`imtrans demo`: serve a model as a local web page (and a tiny HTTP API)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imtrans.cli._app import app
from imtrans.cli._console import err_console
from imtrans.demo.model import DEFAULT_MAX_PIXELS, DEFAULT_MAX_UPLOAD_MB


@app.command("demo")
def demo(
    model: str = typer.Argument(..., help="Run directory, checkpoint directory, .safetensors file, pretrained model name (imtrans pretrained list) or hf-hub:owner/name."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind; anything but localhost exposes the page to the network."),
    port: Optional[int] = typer.Option(None, "--port", help="Port (default: 7860, or the next free one)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option("auto", "--precision", help="auto, fp32, bf16 or fp16."),
    tile: Optional[int] = typer.Option(512, "--tile", help="Translate uploads larger than N px in tiles (0: never tile)."),
    examples: Optional[Path] = typer.Option(None, "--examples", help="Folder of example images (default: the run's held-out images)."),
    max_upload_mb: float = typer.Option(DEFAULT_MAX_UPLOAD_MB, "--max-upload-mb", help="Largest accepted upload in MB."),
    max_pixels: int = typer.Option(DEFAULT_MAX_PIXELS, "--max-pixels", help="Largest accepted image in pixels (decompression-bomb guard)."),
) -> None:
    """Serve MODEL as a web page: upload or paste an image, pick the direction, see and download the translation."""
    from imtrans.demo import DemoModel
    from imtrans.demo.app import host_warning, launch, require_gradio
    from imtrans.demo.model import folder_examples

    require_gradio()
    m = DemoModel(model, device=device, precision=precision, tile=tile or None,
                  max_upload_mb=max_upload_mb, max_pixels=max_pixels)
    ex = folder_examples(examples, m.directions[0]) if examples is not None else None
    warning = host_warning(host)
    if warning:
        err_console.print(f"[bold yellow]warning:[/] {warning}", highlight=False, soft_wrap=True)
    err_console.print(f"serving {model} ({', '.join(m.directions)}) on {m.device} at {m.precision}; Ctrl+C stops",
                      highlight=False, soft_wrap=True)
    launch(m, host=host, port=port, examples=ex)
