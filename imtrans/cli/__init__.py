"""The ``imtrans`` command line (typer + rich).

Each command is thin: it parses arguments and calls the library.  Nothing
outside this package imports it.  Exit codes: 0 ok, 1 user error (one clear
message, no traceback), 2 usage error.
"""

from __future__ import annotations

import os
import sys
import traceback
import warnings
from typing import Optional

import typer
from rich.markup import escape

from imtrans import __version__
from imtrans.cli._app import ARGV, app
from imtrans.cli._console import err_console, print_error



def _version_cb(value: bool) -> None:
    if value:
        typer.echo(f"imtrans {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_cb, is_eager=True, help="Show the version and exit."),
    disable_plugin: list[str] = typer.Option(
        [], "--disable-plugin", metavar="NAME", help="Do not load this plugin (repeatable; also IMTRANS_DISABLE_PLUGINS=a,b)."
    ),
    plugins_dir: list[str] = typer.Option([], "--plugins-dir", metavar="DIR", help="Also load plain .py plugin files from DIR."),
    verbose: bool = typer.Option(
        False, "--verbose", "-v", help="Show full tracebacks of plugin failures and errors (also IMTRANS_DEBUG=1)."
    ),
) -> None:
    # The options are applied before parsing (see main), since plugin commands must exist by then;
    # they are declared here so that --help documents them and the parser accepts them.
    pass


def _prescan(argv: list[str]) -> tuple[list[str], list[str], bool]:
    """Find the global plugin options before typer parses (plugins may add commands)."""
    disable, dirs = [], []
    verbose = os.environ.get("IMTRANS_DEBUG", "") not in ("", "0")
    i = 0
    while i < len(argv):
        a = argv[i]
        verbose = verbose or a in ("--verbose", "-v")
        for opt, dest in (("--disable-plugin", disable), ("--plugins-dir", dirs)):
            if a == opt and i + 1 < len(argv):
                dest.append(argv[i + 1])
                i += 1  # its value is not the command name
            elif a.startswith(opt + "="):
                dest.append(a.split("=", 1)[1])
        if not a.startswith("-"):
            break  # global options stop at the command name
        i += 1
    return [d for x in disable for d in x.split(",")], dirs, verbose


def _optional_value(argv: list[str], opt: str, default: str) -> list[str]:
    """Let ``--resume`` stand alone (``--resume [RUN_DIR]``): typer options always take a value."""
    out = []
    for i, a in enumerate(argv):
        out.append(a)
        if a == opt and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append(default)
    return out


#: commands that need only the pretrained catalogue, not the parts (so they import no torch)
_CATALOGUE_ONLY = (("pretrained",), ("pretrained", "list"), ("pretrained", "info"))
#: commands that need no part at all: they read files that packages ship
_NO_PARTS = (("recipes",),)


def _part_kinds(argv: list[str]) -> Optional[tuple[str, ...]]:
    """Which part hooks the command line needs: none for help, the version and `recipes`, the
    zoo's catalogue alone for `pretrained list/info`, all (None) for everything else.

    The quick ones answer at once: building the part registries imports torch and the
    networks (seconds).
    """
    if _help_only(argv):
        return ()
    words = _command_words(argv)
    if words[:1] in _NO_PARTS:
        return ()
    return ("pretrained",) if words[:2] in _CATALOGUE_ONLY else None


def _help_only(argv: list[str]) -> bool:
    args = argv[:argv.index("--")] if "--" in argv else argv
    return not args or any(a in ("-h", "--help", "--version") for a in args)


def _command_words(argv: list[str]) -> tuple[str, ...]:
    """The words of the command line that are not options (the command, its subcommand, ...)."""
    args = argv[:argv.index("--")] if "--" in argv else argv
    words, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a in ("--disable-plugin", "--plugins-dir"):
            skip = True  # its value is not a command word
        elif not a.startswith("-"):
            words.append(a)
    return tuple(words)


def _install_commands() -> None:
    from imtrans.cli import cache, data, demo, eval, parts, pretrained, push, recipes, train, translate, weights  # noqa: F401  (commands register on import)


def _load_plugins(disable: list[str], dirs: list[str], verbose: bool,
                  kinds: Optional[tuple[str, ...]] = None) -> None:
    """Load plugins (the part hooks of ``kinds``, default all), add their commands and say once
    what went wrong with any of them."""
    from imtrans import plugins

    with warnings.catch_warnings():
        # problems are printed once below, not as Python warnings
        warnings.simplefilter("ignore", plugins.PluginWarning)
        # no option given: keep what is already loaded (main() called in-process, e.g. by tests)
        infos = plugins.load_plugins(disable=disable or None, plugins_dirs=dirs or None, kinds=kinds)
    for msg in plugins.add_commands(app):
        print_error(msg)
    for info in infos:
        for msg in plugins.problems(info):
            err_console.print(f"[yellow]warning:[/] {escape(msg)}", highlight=False, soft_wrap=True)
        if info.traceback and verbose:
            err_console.print(info.traceback, highlight=False, markup=False, soft_wrap=True)
    if not verbose and any(i.traceback for i in infos):
        err_console.print("[dim](imtrans --verbose or IMTRANS_DEBUG=1 shows the full traceback)[/]")


_PYTHON_SHOWWARNING = warnings.showwarning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """imtrans's own warnings are messages for a person: one line, like errors, no source location."""
    from imtrans.errors import ImtransWarning

    if issubclass(category, ImtransWarning):
        err_console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
    else:
        _PYTHON_SHOWWARNING(message, category, filename, lineno, file, line)


def _tidy_help(command) -> None:
    """Help screens without Python types where they say nothing: flags (and -h/--help) take no
    value, and an argument taking several values already reads ``INPUT...``."""
    import click

    # the help option is made (and cached) per command from the context's names: give it ours
    ctx = click.Context(command, info_name=command.name, help_option_names=["-h", "--help"])
    for param in [*command.params, command.get_help_option(ctx)]:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
        elif getattr(param, "param_type_name", "") == "argument" and param.nargs != 1:
            param.display_type_rich = lambda ctx: None  # typer would print <list[str]>
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``imtrans`` console script and ``python -m imtrans``."""
    from imtrans.errors import ImtransError

    warnings.showwarning = _show_warning

    argv = _optional_value(list(sys.argv[1:] if argv is None else argv), "--resume", "auto")
    ARGV[:] = argv
    disable, dirs, verbose = _prescan(argv)
    _install_commands()
    code = 0
    try:
        _load_plugins(disable, dirs, verbose, kinds=_part_kinds(argv))
        # standalone mode: the parser reports usage errors itself (exit 2) and exits;
        # our own user errors propagate to here and become one line + exit 1.
        command = typer.main.get_command(app)
        _tidy_help(command)
        command.main(args=argv, prog_name="imtrans", standalone_mode=True)
    except ImtransError as e:
        if verbose:
            err_console.print(traceback.format_exc(), highlight=False, markup=False, soft_wrap=True)
        print_error(str(e))
        code = 1
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        code = 130
    sys.stdout.flush()
    sys.exit(code)
