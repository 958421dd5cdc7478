"""`imtrans data ...`: fetch and inspect data sets."""

from __future__ import annotations

from typing import Optional

import typer

from imtrans.cli import app
from imtrans.cli._console import console

data_app = typer.Typer(help="Download and list data sets.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("download")
def download(
    name: str = typer.Argument(..., help="Official CycleGAN data set name, e.g. horse2zebra."),
    root: str = typer.Option("datasets", "--root", help="Folder that receives ROOT/NAME."),
    url: Optional[str] = typer.Option(None, "--url", help="Download from this URL (a mirror) instead."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Download an official CycleGAN data set zip (resumable), check it and extract it safely."""
    from imtrans.data.download import download_dataset

    dest = download_dataset(name, root=root, url=url, progress=not no_progress)
    console.print(f"[green]ready:[/] {dest}")


@data_app.command("list")
def list_datasets() -> None:
    """List the official data set names that `imtrans data download` knows."""
    from imtrans.data.download import CYCLEGAN_DATASETS

    for n in CYCLEGAN_DATASETS:
        console.print(n)
