"""`imtrans pretrained ...`: list, download and locate the model zoo's translators."""

from __future__ import annotations

from typing import Optional

import typer

from imtrans.cli._app import app
from imtrans.cli._console import console, err_console, print_error

pretrained_app = typer.Typer(
    help="Published translators by name: list, download, inspect (a name works wherever a run directory does).",
    no_args_is_help=True,
)
app.add_typer(pretrained_app, name="pretrained")


def _size(n: Optional[int]) -> str:
    return f"{n / 1e6:.0f} MB" if n else "?"


@pretrained_app.command("list")
def list_models(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """Every pretrained translator: name, what it does, architecture, download size, cached or not."""
    from rich.table import Table

    from imtrans import zoo

    if as_json:
        import json

        rows = [{"name": n, "translates": zoo.get(n).summary, "architecture": zoo.get(n).describe_architecture(),
                 "bytes": zoo.get(n).weights_bytes(), "cached": zoo.is_cached(n)} for n in zoo.names()]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"imtrans pretrained (cache: {zoo.cache_root()})")
    for col in ("name", "translates", "architecture", "size", "cached"):
        table.add_column(col, overflow="fold")
    for name in zoo.names():
        e = zoo.get(name)
        cached = "[green]yes[/]" if zoo.is_cached(name) else "no"
        table.add_row(name, e.summary, e.describe_architecture(), _size(e.weights_bytes()), cached)
    console.print(table)


@pretrained_app.command("download")
def download(
    name: Optional[str] = typer.Argument(None, help="Zoo name, e.g. horse2zebra (see `imtrans pretrained list`)."),
    all_: bool = typer.Option(False, "--all", help="Download every model in the zoo."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar."),
) -> None:
    """Download, verify and convert a model (resumable; a finished one is not fetched again)."""
    from imtrans import zoo
    from imtrans.errors import ImtransError

    if all_ == (name is not None):
        raise ImtransError("give either a model name or --all (see `imtrans pretrained list`)")
    failed = 0
    for n in zoo.names() if all_ else [name]:
        try:
            path = zoo.ensure(n, progress=not no_progress)
        except ImtransError as e:
            if not all_:
                raise
            print_error(str(e))
            failed += 1
            continue
        console.print(f"[green]ready:[/] {n} -> {path}", highlight=False, soft_wrap=True)
    if failed:
        err_console.print(f"{failed} model(s) could not be downloaded")
        raise typer.Exit(1)


@pretrained_app.command("info")
def info(name: str = typer.Argument(..., help="Zoo name.")) -> None:
    """Everything known about a model: direction, architecture, source, paper, licence, checksum, cache."""
    from imtrans import zoo
    from imtrans.registry import get_registry

    e = zoo.get(name)
    rec = zoo.read_record(name)
    rows = [
        ("name", name),
        ("translates", f"{e.source} -> {e.target}" + (f" (the other way: {e.reverse})" if e.reverse else "")),
        ("scheme", e.scheme),
        ("data set", e.dataset or "?"),
        ("file", "imtrans generator .safetensors (used as published)" if e.format == "imtrans"
         else "official .pth (converted once)"),
        ("architecture", _architecture(name, e)),
        ("size", _size(e.weights_bytes() or rec.get("bytes"))),
        ("urls", "\n".join(e.urls)),
        ("sha256", e.sha256 or (f"{rec['source_sha256']} (recorded at first download)" if rec.get("source_sha256")
                                else "not published (recorded at first download)")),
        ("paper", e.paper or "?"),
        ("licence", e.licence or "?"),
        ("plugin", get_registry("pretrained").get(name).plugin),
        ("cached", str(zoo.weights_path(name)) if zoo.is_cached(name) else "no"),
    ]
    for k, v in rows:
        console.print(f"[bold]{k:>12}[/]  {v}", highlight=False, soft_wrap=True)


def _architecture(name: str, entry) -> str:
    """The entry's architecture; for a generator-file entry that leaves it out, its cached file's (if any)."""
    from imtrans import zoo

    if entry.architecture or not zoo.is_cached(name):
        return entry.describe_architecture()
    from imtrans.engine.checkpoint import CheckpointError, read_meta
    from imtrans.zoo.catalogue import describe_spec
    from imtrans.zoo.genfile import translating_net

    try:
        meta = read_meta(zoo.weights_path(name))
        return describe_spec(meta["nets"][translating_net(meta, name)]["spec"]) + " (from the file)"
    except CheckpointError:
        return entry.describe_architecture()


@pretrained_app.command("path")
def path(
    name: str = typer.Argument(..., help="Zoo name."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No progress bar if it must be downloaded."),
) -> None:
    """Print the cached weights file of a model (downloading it first if needed)."""
    from imtrans import zoo

    typer.echo(str(zoo.ensure(name, progress=not no_progress)))
