"""The typer application every command module adds its commands to (its own module, so they import no cycle)."""

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
