"""`imtrans eval`: FID and KID of a run's translations (or of a folder) against real images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from imtrans.cli._app import app
from imtrans.cli._console import console, err_console


@app.command("eval")
def eval_(
    run: Optional[str] = typer.Argument(None, help="Run directory, checkpoint directory, .safetensors file, pretrained model name or hf-hub:owner/name."),
    direction: str = typer.Option("a2b", "--direction", "-d", help="a2b or b2a: which generator, which split."),
    data: Optional[Path] = typer.Option(None, "--data", help="Unpaired layout ROOT with testA/testB (default: the run's recipe)."),
    real: Optional[Path] = typer.Option(None, "--real", help="Folder of real target-domain images (instead of the split)."),
    fake: Optional[Path] = typer.Option(None, "--fake", help="Folder of already translated images (nothing is translated)."),
    save: Optional[Path] = typer.Option(None, "--save", help="Also write the translated images here (PNG)."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    extractor: Optional[str] = typer.Option(None, "--extractor", help="Registered feature extractor (imtrans list feature_extractor); default: the run's train.eval_features, else inception_v3_fid."),
    weights: Optional[str] = typer.Option(None, "--weights", help="Extractor weights file (default: cache, then download)."),
    resize: Optional[str] = typer.Option(None, "--resize", help="clean (clean-fid, antialiased; inception_v3_fid's default) or legacy_pytorch (pytorch-fid): the extractor's resize parameter."),
    feature_param: list[str] = typer.Option([], "--feature-param", "-p", metavar="KEY=VALUE", help="Feature-extractor parameter: -p layer=3 (repeatable; imtrans list feature_extractor --params)."),
    size: Optional[int] = typer.Option(None, "--size", help="Resize the short side of real and source images to N px first."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N or mps."),
    precision: str = typer.Option("auto", "--precision", help="Translation precision: auto, fp32, bf16 or fp16."),
    feature_precision: str = typer.Option("fp32", "--feature-precision", help="fp32 (standard) or bf16 (check it against fp32 before trusting its numbers; see docs/eval.md)."),
    batch_size: int = typer.Option(16, "--batch-size", "-b", help="Images per feature-extractor forward pass."),
    kid_subsets: int = typer.Option(100, "--kid-subsets", help="KID: number of random subsets."),
    kid_subset_size: int = typer.Option(1000, "--kid-subset-size", help="KID: images per subset (capped at the set sizes)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Recompute the real images' features instead of using the cache."),
) -> None:
    """FID and KID (mean ± std over subsets) of translated images against real ones."""
    from imtrans.errors import ImtransError

    try:
        from imtrans.eval.evaluate import check_sources

        check_sources(run, real, fake, data)  # the folders first: building an extractor takes seconds
        extractor, base = (extractor, {}) if extractor else run_features(run)
        params = extractor_params(extractor, weights, resize, feature_param, base)
        res = _evaluate(run, direction, data, real, fake, save, extractor, params, size, device, precision,
                        feature_precision, batch_size, kid_subsets, kid_subset_size, no_cache)
    except ImtransError as e:
        if as_json:  # a script reading stdout gets JSON either way; the message also goes to stderr
            typer.echo(json.dumps({"error": str(e)}, indent=2))
        raise
    if as_json:
        typer.echo(json.dumps(res.as_dict(), indent=2))
        return
    _print(res)


#: eval options that set a parameter of the feature extractor, and what to do when it has none
_SUGAR = {"--resize": ("resize", "it resizes its input in its own preprocess"),
          "--weights": ("weights", "set its own weights parameter with --feature-param KEY=VALUE")}


def run_features(run: Optional[str]) -> tuple[str, dict]:
    """The extractor a run's recipe evaluates with (``train.eval_features``) and its parameters.

    So that ``imtrans eval RUN`` measures with the features the run reported during training (a
    plugin's extractor, say); a zoo model, a file without a recipe or no run at all: Inception.
    """
    from imtrans.engine.checkpoint import read_meta, stored_recipe
    from imtrans.errors import ImtransError

    spec: object = None
    if run is not None:
        try:
            spec = stored_recipe(read_meta(run)).get("train", {}).get("eval_features")
        except ImtransError:  # not a run or checkpoint (a zoo name, hf-hub:...): evaluate_run resolves it
            spec = None
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        return "inception_v3_fid", {}
    return spec["name"], {k: v for k, v in spec.items() if k != "name"}


def extractor_params(name: str, weights: Optional[str], resize: Optional[str], items: list[str],
                     base: Optional[dict] = None) -> dict:
    """The extractor's parameters: ``base`` (the run's recipe), then ``--feature-param``, ``--resize``
    and ``--weights``, validated.

    Checked before anything is built: a parameter the extractor does not have is refused by
    name, never dropped (``--resize`` used to be ignored for plugin extractors).
    """
    from imtrans import registry
    from imtrans.cli._app import parse_assignments
    from imtrans.errors import ImtransError

    params = parse_assignments(items, "--feature-param", "layer=3")
    reg = registry.get_registry("feature_extractor")
    accepted = sorted(reg.get(name).params.model_fields)
    for option, value in (("--resize", resize), ("--weights", weights)):
        key, fix = _SUGAR[option]
        if value is None:
            continue
        if key not in accepted:
            raise ImtransError(
                f"{option} {value} cannot apply: feature extractor '{name}' has no '{key}' parameter (its parameters: "
                f"{', '.join(accepted) or 'none'}); leave {option} out ({fix})")
        if key in params and params[key] != value:
            raise ImtransError(f"{option} {value} and --feature-param {key}={params[key]} disagree; give one of them")
        params[key] = value
    params = {**(base or {}), **params}
    reg.validate(name, params, where=f"feature extractor '{name}'")
    return params


def _evaluate(run, direction, data, real, fake, save, extractor, params, size, device, precision,
              feature_precision, batch_size, kid_subsets, kid_subset_size, no_cache):
    import warnings

    from imtrans.eval import build_extractor, evaluate_run

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ext = build_extractor(extractor, precision=feature_precision, **params)
        res = evaluate_run(run, direction, data_root=data, real=real, fake=fake, save=save, extractor=ext,
                           device=device, precision=precision, size=size, batch_size=batch_size,
                           kid_subsets=kid_subsets, kid_subset_size=kid_subset_size, use_cache=not no_cache)
    res.notes = [str(w.message) for w in caught if str(w.message) not in res.notes] + res.notes
    return res


def _print(res) -> None:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title="imtrans eval" + (f" ({res.direction})" if res.direction else ""), show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("FID", f"{res.fid:.2f}")
    table.add_row("KID", f"{res.kid_mean:.5f} ± {res.kid_std:.5f}")
    table.add_row("KID subsets", f"{res.kid_subsets} x {res.kid_subset_size}")
    table.add_row("real images", str(res.n_real) + (" (cached features)" if res.reference_cached else ""))
    table.add_row("translated images", str(res.n_fake))
    table.add_row("skipped (unreadable)", str(len(res.skipped)))
    ex = res.extractor
    table.add_row("extractor", f"{ex['extractor']} ({ex['resize']} resize)"
                  + "".join(f", {k}={v}" for k, v in (ex.get("params") or {}).items()))
    table.add_row("weights sha256", ex["weights_sha256"][:16] + ("..." if len(ex["weights_sha256"]) > 16 else ""))
    table.add_row("seconds", f"{res.seconds:.1f}")
    console.print(table)
    console.print(f"real: {escape(res.real)}\ntranslated: {escape(res.fake)}", highlight=False, soft_wrap=True)
    for note in res.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}", highlight=False, soft_wrap=True)
    for name, reason in res.skipped:
        err_console.print(f"[red]skipped[/] {escape(name)}: {escape(reason)}", highlight=False, soft_wrap=True)
