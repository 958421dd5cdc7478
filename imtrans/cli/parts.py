"""`imtrans list`, `imtrans plugins`, `imtrans check`: what is installed and what a recipe resolves to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from imtrans.cli._app import app
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
    table = Table(title="imtrans parts" + (f": {kind}" if kind else ""), show_lines=False, expand=False)
    table.add_column("name", style="bold", no_wrap=True)
    table.add_column("plugin", style="magenta", no_wrap=True)
    table.add_column("description", ratio=1)
    if params:
        table.add_column("parameters (defaults)", ratio=1)
    last_kind = None
    for e in entries:
        if e.kind != last_kind:  # one section per kind: the kind is said once, not on every row
            if last_kind is not None:
                table.add_section()
            table.add_row(f"[cyan]{e.kind}[/]", "", "", *([""] if params else []))
            last_kind = e.kind
        row = [f"  {escape(e.name)}", escape(e.plugin), _doc_markup(e.summary)]
        if params:
            row.append(escape(", ".join(f"{k}={v!r}" for k, v in e.defaults().items())))
        table.add_row(*row)
    console.print(table)


def _doc_markup(text: str) -> str:
    """A docstring's ``code`` spans as rich markup (reStructuredText's double backticks read badly raw)."""
    parts = escape(text).split("``")
    return "".join(f"[green]{p}[/]" if i % 2 else p for i, p in enumerate(parts))


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
    set_: list[str] = typer.Option([], "--set", "-s", metavar="KEY=VALUE", help="Override a key: --set train.epochs=3 (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the resolved recipe as JSON instead of TOML."),
) -> None:
    """Validate a recipe, build every part once, and print the resolved recipe (valid TOML, or JSON) without training."""
    from imtrans.check import build_parts
    from imtrans.engine.checkpointing import check_run
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
