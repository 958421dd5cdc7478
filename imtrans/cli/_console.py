"""Shared rich consoles: results to stdout, messages to stderr."""

from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def print_error(message: str) -> None:
    """One line, no traceback: the message already names the file/key/value and the fix."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
