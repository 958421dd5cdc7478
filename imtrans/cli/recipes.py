"""`imtrans recipes`: the recipes that imtrans and the installed plugins ship, as PACKAGE:NAME."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from imtrans.cli._app import app
from imtrans.cli._console import console


@app.command("recipes")
def list_recipes(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output (with each recipe's file location)."),
) -> None:
    """List the recipes that imtrans and the installed plugins ship, as PACKAGE:NAME for run, check and extends."""
    from imtrans.recipe_refs import shipped_recipes

    rows = shipped_recipes()
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in rows], indent=2))
        return
    table = Table(title="imtrans recipes (run, check or extend them by reference)", expand=False)
    table.add_column("reference", style="bold", no_wrap=True)
    table.add_column("description", ratio=1)
    last = None
    for r in rows:
        if r.package != last:  # one section per package, headed by the distribution that installed it
            if last is not None:
                table.add_section()
            table.add_row(f"[cyan]{escape(r.distribution or r.package)}[/] {escape(r.version)}", "")
            last = r.package
        extends = f" [dim](extends {escape(r.extends)})[/]" if r.extends else ""
        table.add_row(f"  {escape(r.reference)}", escape(r.description) + extends)
    console.print(table)
