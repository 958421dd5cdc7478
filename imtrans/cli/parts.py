"""`imtrans list`, `imtrans plugins`, `imtrans check`: what is installed and what a recipe resolves to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from imtrans.cli import app
from imtrans.cli._console import console, err_console


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
        if i.disabled:
            status = "[yellow]disabled[/]"
        elif i.error:
            status = f"[red]error:[/] {escape(i.error)}"
        else:
            status = "[green]ok[/]" + "".join(f"\n[yellow]warning:[/] {escape(w)}" for w in i.warnings)
        table.add_row(i.name, i.version, f"{i.source}\n{i.location}", parts, status)
    console.print(table)


@app.command("check")
def check(
    recipe: Path = typer.Argument(..., help="Recipe TOML file."),
    set_: list[str] = typer.Option([], "--set", "-s", help="Override a key: --set train.epochs=3 (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the resolved recipe as JSON instead of TOML."),
) -> None:
    """Validate a recipe, build every part once, and print the resolved recipe (valid TOML, or JSON) without training."""
    from imtrans.check import build_parts
    from imtrans.provenance import check_run
    from imtrans.recipe import load_recipe

    check_run(recipe, list(set_))  # a run directory with a checkpoint: are its plugins installed?
    r = load_recipe(recipe, set_)
    missing: list[str] = []
    build_parts(r, warnings=missing)
    for w in missing:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    status = f"{recipe} is valid (run directory: {Path(r.output.root) / r.run_name()})"
    if missing:
        status += "; its data is missing here, so `imtrans run` would stop (see the warning above)"
    if as_json:
        typer.echo(json.dumps(r.to_dict(), indent=2))
        err_console.print(f"[green]ok:[/] {status}", highlight=False, soft_wrap=True)
        return
    # plain text, never wrapped: `imtrans check r.toml > resolved.toml` must be valid TOML at any width
    typer.echo(r.to_toml() + f"\n# ok: {status}")
