"""`imtrans data ...`: fetch and inspect data sets."""

from __future__ import annotations

from typing import Optional

import typer

from imtrans.cli._app import app
from imtrans.cli._console import console

data_app = typer.Typer(help="Download and list data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("download")
def download(
    name: str = typer.Argument(..., help="Official CycleGAN or pix2pix data set name, e.g. horse2zebra, edges2shoes."),
    root: str = typer.Option("datasets", "--root", help="Folder that receives ROOT/NAME."),
    url: Optional[str] = typer.Option(None, "--url", help="Download from this URL (a mirror) instead."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
    kind: str = typer.Option(
        "auto", "--kind", help="cyclegan (unpaired zip), pix2pix (aligned A|B tar.gz) or auto (CycleGAN for "
        "facades/maps/cityscapes, which both collections have)."),
) -> None:
    """Download an official CycleGAN or pix2pix data set (resumable), check it and extract it safely."""
    from imtrans.data.download import download_dataset
    from imtrans.errors import ImtransError

    if kind not in ("auto", "cyclegan", "pix2pix"):
        raise ImtransError(f"--kind '{kind}' is unknown; use auto, cyclegan or pix2pix")
    dest = download_dataset(name, root=root, url=url, progress=not no_progress, kind=kind)  # type: ignore[arg-type]
    console.print(f"[green]ready:[/] {dest}")


@data_app.command("list")
def list_datasets() -> None:
    """List the official data set names that `imtrans data download` knows, by collection."""
    from imtrans.data.download import CYCLEGAN_DATASETS, PIX2PIX_DATASETS

    for n in CYCLEGAN_DATASETS:
        console.print(f"cyclegan  {n}")
    for n in PIX2PIX_DATASETS:
        console.print(f"pix2pix   {n}")
