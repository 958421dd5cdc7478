"""The typer application every command module adds its commands to (its own module, so they import no cycle)."""

import json

import typer

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


def parse_assignments(items: list[str], option: str = "--set", example: str = "n_blocks=9") -> dict:
    """``KEY=VALUE`` options -> a parameter table; a value is read as JSON (numbers, true, lists), else kept as text.

    The one parser of part parameters given on the command line (``import-weights --set``,
    ``eval --feature-param``), so both read ``8``, ``1.5``, ``true`` and ``batch`` alike.
    """
    from imtrans.errors import ImtransError

    params: dict = {}
    for item in items:
        if "=" not in item:
            raise ImtransError(f"{option} '{item}' is not KEY=VALUE; e.g. {option} {example}")
        k, v = item.split("=", 1)
        try:
            params[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            params[k.strip()] = v  # a bare word such as norm=batch
    return params
