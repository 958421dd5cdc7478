"""`imtrans import-weights`: official pytorch-CycleGAN-and-pix2pix .pth -> imtrans .safetensors."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imtrans.cli._app import app, parse_assignments
from imtrans.cli._console import console


@app.command("import-weights")
def import_weights(
    pth: Path = typer.Argument(..., help="Official weights file, e.g. latest_net_G_A.pth or horse2zebra.pth."),
    part: str = typer.Option(..., "--part", help="Our part with the official layout: resnet, unet, patchgan, pixelgan."),
    set_: list[str] = typer.Option([], "--set", "-s", metavar="KEY=VALUE", help="Part parameter the file was trained with: --set n_blocks=9 (repeatable)."),
    role: Optional[str] = typer.Option(None, "--role", help="generator or discriminator (checked against the part)."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .safetensors file."),
) -> None:
    """Convert official pytorch-CycleGAN-and-pix2pix weights into an imtrans .safetensors file."""
    from imtrans.nets.official import import_official_weights

    path = import_official_weights(pth, part, parse_assignments(set_), out, role=role)  # type: ignore[arg-type]
    console.print(f"[green]imported[/] {pth} as {part} -> {path}", highlight=False)
