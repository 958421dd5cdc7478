"""`imtrans run`: train a recipe."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from imtrans.cli._app import ARGV, app
from imtrans.cli._console import console, err_console


@app.command("run")
def run(
    recipe: str = typer.Argument(..., help="Recipe TOML file (recipes/quickstart.toml) or PACKAGE:NAME of an installed one (imtrans:quickstart; see `imtrans recipes`)."),
    set_: list[str] = typer.Option([], "--set", "-s", metavar="KEY=VALUE", help="Override a recipe key: --set train.epochs=3 (repeatable)."),
    resume: Optional[str] = typer.Option(
        None, "--resume", metavar="[RUN_DIR]",
        help="Continue exactly where training stopped: in RUN_DIR, or alone for the recipe's own run directory.",
        show_default=False,
    ),
    seed: Optional[int] = typer.Option(None, "--seed", help="Same as --set train.seed=N."),
    device: Optional[str] = typer.Option(None, "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: Optional[str] = typer.Option(None, "--precision", help="auto, fp32, bf16 or fp16."),
    deterministic: bool = typer.Option(False, "--deterministic", help="Use deterministic algorithms (slower)."),
    skip_nonfinite: int = typer.Option(0, "--skip-nonfinite", help="Skip up to N batches whose loss is NaN/Inf."),
    no_progress: bool = typer.Option(False, "--no-progress", help="No live progress bar: a plain log line every train.log_every steps instead (as when output goes to a file)."),
    nproc: Optional[int] = typer.Option(
        None, "--nproc", help="Train with N processes (DistributedDataParallel) through torchrun's launcher."
    ),
) -> None:
    """Train from a recipe into runs/NAME (checkpoints, metrics.jsonl, samples, index.html)."""
    from imtrans.engine import distributed
    from imtrans.engine.report import describe_eval
    from imtrans.engine.trainer import Trainer
    from imtrans.recipe import load_recipe

    if nproc is not None and distributed.env_info().world == 1:
        load_recipe(recipe, list(set_))  # fail fast, once, before starting N processes
        raise typer.Exit(distributed.launch(nproc, distributed.strip_option(ARGV, "--nproc")))

    overrides = list(set_)
    if seed is not None:
        overrides.append(f"train.seed={seed}")
    if device:
        overrides.append(f"train.device={device}")
    if precision:
        overrides.append(f"train.precision={precision}")
    if deterministic:
        overrides.append("train.deterministic=true")
    run_dir = None
    if resume and resume != "auto":
        run_dir = Path(resume)
    if resume is not None:
        from imtrans.engine.checkpointing import check_run

        check_run(recipe, overrides, run_dir)  # the checkpoint's plugins: `pip install` hints first
    r = load_recipe(recipe, overrides)
    trainer = Trainer(r, run_dir=run_dir, resume=resume is not None, progress=not no_progress,
                      console=err_console, skip_nonfinite=skip_nonfinite)
    res = trainer.fit()
    if distributed.env_info().rank != 0:
        return
    console.print(f"[green]{res.stopped}[/] after {res.steps} steps ({res.seconds:.1f} s): {res.run_dir}")
    for line in describe_eval(res.eval_after, res.eval_before):
        console.print(f"  {line}", highlight=False, soft_wrap=True)  # one line per direction in a log file
    console.print(f"  report: {res.run_dir / 'index.html'}")
