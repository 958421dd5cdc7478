"""`imtrans list`, `imtrans plugins`, `imtrans check`: what is installed and what a recipe resolves to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from imtrans.cli import app
from imtrans.cli._console import console


@app.command("list")
def list_parts(
    kind: Optional[str] = typer.Argument(
        None, help="generator, discriminator, loss, augmentation, domain, scheme or pretrained (default: all)."
    ),
    params: bool = typer.Option(False, "--params", help="Also show each part's parameters and defaults."),
) -> None:
    """List registered parts with their one-line docs and the plugin that provided each."""
    from imtrans import registry

    entries = registry.describe(kind)
    table = Table(title="imtrans parts" + (f": {kind}" if kind else ""), show_lines=False)
    table.add_column("kind", style="cyan")
    table.add_column("name", style="bold")
    table.add_column("plugin", style="magenta")
    table.add_column("description")
    if params:
        table.add_column("parameters (defaults)")
    for e in entries:
        row = [e.kind, e.name, e.plugin, e.summary]
        if params:
            row.append(", ".join(f"{k}={v!r}" for k, v in e.defaults().items()))
        table.add_row(*row)
    console.print(table)


@app.command("plugins")
def list_plugins(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List installed plugins, their versions, the parts each registered and any load error."""
    from imtrans.plugins import plugin_infos

    infos = plugin_infos()
    if as_json:
        typer.echo(json.dumps([i.as_dict() for i in infos], indent=2))
        return
    table = Table(title="imtrans plugins")
    for col in ("name", "version", "source", "parts", "status"):
        table.add_column(col)
    for i in infos:
        parts = "\n".join(f"{k}: {', '.join(v)}" for k, v in i.parts.items())
        status = "[yellow]disabled[/]" if i.disabled else (f"[red]error:[/] {i.error}" if i.error else "[green]ok[/]")
        table.add_row(i.name, i.version, f"{i.source}\n{i.location}", parts, status)
    console.print(table)


@app.command("check")
def check(
    recipe: Path = typer.Argument(..., help="Recipe TOML file."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a key: --set train.epochs=3 (repeatable)."),
) -> None:
    """Validate a recipe (and its parts' parameters) and print the resolved recipe without training."""
    from rich.syntax import Syntax

    from imtrans.recipe import load_recipe

    r = load_recipe(recipe, set_)
    console.print(Syntax(r.to_toml(), "toml", theme="ansi_dark", background_color="default"))
    console.print(f"[green]ok:[/] {recipe} is valid (run directory: {Path(r.output.root) / r.run_name()})")
