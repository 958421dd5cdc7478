"""Shared rich consoles: results to stdout, messages to stderr."""

import os
import sys

from rich.console import Console
from rich.markup import escape

_PIPE_WIDTH = 1000


def _stdout_console() -> Console:
    # Piped or redirected, rich would fold tables at 80 columns and cut names with an ellipsis
    # ("summer2winter_yose…"): names are what users type and grep, so a pipe gets whole lines.
    # COLUMNS, when set, still decides.
    if not sys.stdout.isatty() and "COLUMNS" not in os.environ:
        return Console(width=_PIPE_WIDTH)
    return Console()


console = _stdout_console()
err_console = Console(stderr=True)


def print_error(message: str) -> None:
    """One line, no traceback: the message already names the file/key/value and the fix."""
    # escaped: messages quote TOML tables such as [data.a], which rich would read as markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
