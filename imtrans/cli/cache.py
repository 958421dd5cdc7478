"""`imtrans cache`: what imtrans keeps between runs (ONNX graphs, pretrained models, FID files), and clearing it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import typer

from imtrans.cli._app import app
from imtrans.cli._console import console

cache_app = typer.Typer(
    help="What imtrans keeps between runs: ONNX graphs, pretrained models, FID weights and statistics.",
    invoke_without_command=True,
)
app.add_typer(cache_app, name="cache")

KINDS = ("onnx", "pretrained", "fid")
_WHAT = {
    "onnx": "exported ONNX graphs (re-made on the next use; bounded by IMTRANS_ONNX_CACHE_MB)",
    "pretrained": "downloaded pretrained models (downloaded again on the next use)",
    "fid": "FID Inception weights and cached reference features",
}


def folders() -> dict[str, Path]:
    """Each kind of cached file -> its folder (which need not exist yet)."""
    from imtrans.eval.weights import eval_home
    from imtrans.translate.backends import onnx_cache_dir
    from imtrans.zoo.fetch import cache_root

    return {"onnx": onnx_cache_dir(), "pretrained": cache_root(), "fid": eval_home()}


def usage(folder: Path) -> tuple[int, int]:
    """(files, bytes) below ``folder``; (0, 0) where it does not exist."""
    files = [p for p in folder.rglob("*") if p.is_file()] if folder.is_dir() else []
    return len(files), sum(p.stat().st_size for p in files)


@cache_app.callback()
def show(ctx: typer.Context,
         as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")) -> None:
    """List each cache folder with its size (`imtrans cache clear KIND` empties one)."""
    if ctx.invoked_subcommand is not None:
        return
    rows = []
    for kind, folder in folders().items():
        n, size = usage(folder)
        rows.append({"kind": kind, "folder": str(folder), "files": n, "bytes": size, "holds": _WHAT[kind]})
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table(title="imtrans cache")
    for col in ("kind", "folder", "files", "size", "holds"):
        table.add_column(col, justify="right" if col in ("files", "size") else "left")
    for r in rows:
        table.add_row(r["kind"], r["folder"], str(r["files"]), f"{r['bytes'] / 2**20:.1f} MB", r["holds"])
    console.print(table)


@cache_app.command("clear")
def clear(kind: str = typer.Argument(..., metavar="KIND", help="onnx, pretrained, fid or all.")) -> None:
    """Delete one kind of cached file (or all): each is made or downloaded again when next needed."""
    from imtrans.errors import ImtransError

    if kind not in (*KINDS, "all"):
        raise ImtransError(f"imtrans cache clear: '{kind}' is not one of {', '.join(KINDS)}, all")
    for k, folder in folders().items():
        if kind not in (k, "all"):
            continue
        n, size = usage(folder)
        if k == "onnx":  # $IMTRANS_ONNX_CACHE may name a folder of the user's: only the graphs go
            n, size = 0, 0
            for p in folder.glob("*.onnx") if folder.is_dir() else []:
                n, size = n + 1, size + p.stat().st_size
                p.unlink()
        elif folder.is_dir():
            shutil.rmtree(folder)
        console.print(f"cleared {k}: {n} files, {size / 2**20:.1f} MB ({folder})", highlight=False, soft_wrap=True)
