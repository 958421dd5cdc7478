"""Shared rich consoles: results to stdout, messages to stderr."""

from rich.console import Console
from rich.markup import escape

console = Console()
err_console = Console(stderr=True)


def print_error(message: str) -> None:
    """One line, no traceback: the message already names the file/key/value and the fix."""
    # escaped: messages quote TOML tables such as [data.a], which rich would read as markup
    err_console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)
