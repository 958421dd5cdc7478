"""`imtrans push`: publish a run's generators on the Hugging Face Hub (or write that folder with --dry-run)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imtrans.cli._app import app
from imtrans.cli._console import console


@app.command("push")
def push(
    run: str = typer.Argument(..., help="Run directory, checkpoint directory or .safetensors file."),
    repo: str = typer.Argument(..., metavar="OWNER/NAME", help="Hub repository (created if missing)."),
    private: bool = typer.Option(False, "--private", help="Create the repository private (an existing one keeps its visibility)."),
    direction: str = typer.Option("both", "--direction", "-d", help="both (every generator of the run) or a2b (G only)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Write the folder that would be uploaded and upload nothing."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Where --dry-run writes it (default: RUN/hub/OWNER--NAME)."),
) -> None:
    """Upload the generator(s), resolved recipe, newest samples and a model card to the Hugging Face Hub.

    Anyone can then run `imtrans translate hf-hub:OWNER/NAME ...`.  Needs the hub extra of imtrans
    (huggingface_hub) and a token with write access (`hf auth login` or HF_TOKEN).
    """
    from rich.markup import escape

    from imtrans.errors import ImtransError
    from imtrans.zoo import hub
    from imtrans.zoo import push as publish

    if out is not None and not dry_run:
        raise ImtransError("--out names where --dry-run writes the folder; add --dry-run, or leave out --out to upload")
    if dry_run:
        base = Path(run) if Path(run).is_dir() else Path(run).parent
        dest = out if out is not None else base / "hub" / hub.check_repo_id(repo).replace("/", "--")
        publish.stage(run, repo, dest, direction)
        files = sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file())
        console.print(f"[green]wrote[/] {escape(str(dest))} (nothing uploaded): {escape(', '.join(files))}",
                      highlight=False, soft_wrap=True)
        return
    url = publish.push(run, repo, private=private, direction=direction)
    console.print(f"[green]pushed[/] {escape(run)} to {escape(url)}", highlight=False, soft_wrap=True)
    console.print(f"use it: imtrans translate {hub.PREFIX}{escape(repo)} photos/ -o out/", highlight=False, soft_wrap=True)
