"""The ``imtrans`` command line (typer + rich).

Each command is thin: it parses arguments and calls the library.  Nothing
outside this package imports it.  Exit codes: 0 ok, 1 user error (one clear
message, no traceback), 2 usage error.
"""

from __future__ import annotations

import sys
import warnings
from typing import Optional

import typer

from imtrans import __version__
from imtrans.cli._console import err_console, print_error

app = typer.Typer(
    name="imtrans",
    help="Pluggable image-to-image translation: train CycleGAN from a recipe, translate folders, manage plugins.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


#: the arguments main() was called with (commands that relaunch themselves under torchrun reuse them)
ARGV: list[str] = []


def _version_cb(value: bool) -> None:
    if value:
        typer.echo(f"imtrans {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_cb, is_eager=True, help="Show the version and exit."),
    disable_plugin: list[str] = typer.Option(
        [], "--disable-plugin", help="Do not load this plugin (repeatable; also IMTRANS_DISABLE_PLUGINS=a,b)."
    ),
    plugins_dir: list[str] = typer.Option([], "--plugins-dir", help="Also load plain .py plugin files from DIR."),
) -> None:
    # The options are applied before parsing (see main), since plugin commands must exist by then;
    # they are declared here so that --help documents them and the parser accepts them.
    pass


def _prescan(argv: list[str]) -> tuple[list[str], list[str]]:
    """Find the global plugin options before typer parses (plugins may add commands)."""
    disable, dirs = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        for opt, dest in (("--disable-plugin", disable), ("--plugins-dir", dirs)):
            if a == opt and i + 1 < len(argv):
                dest.append(argv[i + 1])
            elif a.startswith(opt + "="):
                dest.append(a.split("=", 1)[1])
        if not a.startswith("-"):
            break  # global options stop at the command name
        i += 1
    return [d for x in disable for d in x.split(",")], dirs


def _optional_value(argv: list[str], opt: str, default: str) -> list[str]:
    """Let ``--resume`` stand alone (``--resume [RUN_DIR]``): typer options always take a value."""
    out = []
    for i, a in enumerate(argv):
        out.append(a)
        if a == opt and (i + 1 == len(argv) or argv[i + 1].startswith("-")):
            out.append(default)
    return out


def _install_commands() -> None:
    from imtrans.cli import data, parts, pretrained, train, translate, weights  # noqa: F401  (commands register on import)


def _plugin_commands() -> None:
    from imtrans.plugins import plugin_infos, plugin_manager

    pm = plugin_manager()
    for impl in pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(app=app)
        except Exception as e:  # noqa: BLE001 - a broken plugin must not break the CLI
            print_error(f"plugin '{impl.plugin_name}' failed to add its commands ({type(e).__name__}: {e}); skipped")
    for info in plugin_infos():
        if info.error:
            err_console.print(f"[yellow]warning:[/] plugin '{info.name}' was skipped: {info.error}")


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``imtrans`` console script and ``python -m imtrans``."""
    from imtrans import plugins
    from imtrans.errors import ImtransError

    argv = _optional_value(list(sys.argv[1:] if argv is None else argv), "--resume", "auto")
    global ARGV
    ARGV = list(argv)
    disable, dirs = _prescan(argv)
    plugins.configure(disable=disable, plugins_dirs=dirs)
    _install_commands()
    code = 0
    try:
        with warnings.catch_warnings():
            # plugin load errors are printed once by _plugin_commands, not as Python warnings
            warnings.simplefilter("ignore", plugins.PluginWarning)
            _plugin_commands()
            # standalone mode: the parser reports usage errors itself (exit 2) and exits;
            # our own user errors propagate to here and become one line + exit 1.
            app(args=argv, prog_name="imtrans", standalone_mode=True)
    except ImtransError as e:
        print_error(str(e))
        code = 1
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        code = 130
    sys.stdout.flush()
    sys.exit(code)
