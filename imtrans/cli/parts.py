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
        None, help="generator, discriminator, loss, augmentation, d_augment, domain, scheme, pretrained, "
        "feature_extractor or logger (default: all)."
    ),
    params: bool = typer.Option(False, "--params", help="Also show each part's parameters and defaults."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (with parameters and defaults)."),
) -> None:
    """List registered parts with their one-line docs and the plugin that provided each."""
    from imtrans import registry

    entries = registry.describe(kind)
    if as_json:
        rows = [{"kind": e.kind, "name": e.name, "plugin": e.plugin, "summary": e.summary,
                 "defaults": {k: _jsonable(v) for k, v in e.defaults().items()}} for e in entries]
        typer.echo(json.dumps(rows, indent=2))
        return
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


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return repr(value)  # e.g. a class or a callable default


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
    recipe: str = typer.Argument(..., help="Recipe TOML file, or PACKAGE:NAME of an installed one (imtrans:quickstart; see `imtrans recipes`)."),
    set_: list[str] = typer.Option([], "--set", "-s", metavar="KEY=VALUE", help="Override a key: --set train.epochs=3 (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Print the resolved recipe as JSON instead of TOML."),
) -> None:
    """Validate a recipe, build every part once, and print the resolved recipe (valid TOML, or JSON) without training."""
    from imtrans.check import build_parts, describe_domain
    from imtrans.engine.checkpointing import check_run
    from imtrans.recipe import load_recipe

    check_run(recipe, list(set_))  # a run directory with a checkpoint: are its plugins installed?
    r = load_recipe(recipe, set_)
    missing: list[str] = []
    notes: list[str] = []
    built = build_parts(r, warnings=missing, notes=notes)
    for key, part in built.items():  # what each folder holds, on stderr: stdout stays valid TOML
        if not key.startswith("data.") or not hasattr(part, "__len__"):
            continue
        train = built.get(key.replace("test_", ""))
        if key != key.replace("test_", "") and getattr(part, "root", 0) == getattr(train, "root", 1):
            line = (f"{key}: the same folder as {key.replace('test_', '')} "
                    "(no held-out images: evaluation uses training images)")
        else:
            line = describe_domain(key, part)
        err_console.print(line, highlight=False, soft_wrap=True, markup=False)
    for n in notes:  # facts of this machine the run reports too, not mistakes
        err_console.print(n, highlight=False, soft_wrap=True, markup=False)
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
    typer.echo(r.origin_comment() + r.to_toml() + f"\n# ok: {status}")
