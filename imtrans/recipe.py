"""Recipes: TOML files validated into a typed :class:`Recipe`.

A recipe names every part (``name`` plus that part's parameters), the losses
with their weights, the optimiser, the schedule, the training length and the
output.  Loading does, in order:

1. read TOML (``tomllib``) from a file or a recipe shipped in a package
   (``imtrans:quickstart``, :mod:`imtrans.recipe_refs`), follow ``extends = "base.toml"``
   (relative to the file) or ``extends = "imtrans:cyclegan_base"`` (deep-merged, chains
   allowed; see :mod:`imtrans.recipe_files`);
2. apply ``--set dotted.key=value`` overrides (values parsed as TOML, bare words
   as strings), merged by the same rule as ``extends``;
3. validate the structure (pydantic, unknown keys refused with suggestions);
4. validate every part's parameters against the registered part's own model.

Every failure is one :class:`~imtrans.errors.RecipeError` naming the file, the
dotted key and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import pydantic
from pydantic import BaseModel

from imtrans.errors import ImtransError, RecipeError
from imtrans.recipe_files import (  # noqa: F401  (re-exported: the recipe API in one place)
    MAX_DEPTH,
    _check_depth,
    apply_overrides,
    deep_merge,
    is_part_table,
    parse_override,
    read_chain,
    read_with_extends,
    tomllib,
)
from imtrans.recipe_schema import (  # noqa: F401  (re-exported: the recipe API in one place)
    DataConfig,
    LossSpec,
    ModelConfig,
    OptimConfig,
    OutputConfig,
    PartSpec,
    Recipe,
    TrainConfig,
    _drop_none,
    _Strict,
)
from imtrans.registry import get_registry
from imtrans.suggest import did_you_mean


# ---------------------------------------------------------------------------
# validation with messages a person can act on
# ---------------------------------------------------------------------------

def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str] | None:
    """Field names valid at ``loc`` (for did-you-mean), or None if not a strict model."""
    import typing

    cur: Any = model
    for step in loc:
        if isinstance(cur, type) and issubclass(cur, BaseModel):
            f = cur.model_fields.get(str(step))
            if f is None:
                return None
            cur = f.annotation
        else:
            return None
        # unwrap Optional[...] and dict[str, X]
        for _ in range(3):
            args = [a for a in typing.get_args(cur) if a is not type(None)]
            origin = typing.get_origin(cur)
            if origin is dict:
                cur = args[-1]
                break
            if args and origin is not None and origin not in (tuple, list, Literal):
                cur = args[0]
            else:
                break
    if isinstance(cur, type) and issubclass(cur, BaseModel):
        return list(cur.model_fields)
    return None


def _where(source: str, key: str, origin: dict[str, str], children: bool = True) -> str:
    """Where a key's value came from: the ``--set`` that wrote it (or a parent table), else the file."""
    for okey, text in origin.items():
        if key == okey or key.startswith(okey + "."):
            return f"--set {text}"
    if children:  # a table whose error may come from an override of one of its keys
        for okey, text in origin.items():
            if okey.startswith(key + "."):
                return f"--set {text}"
    return f"{source}: {key}" if key else source


def _format_errors(err: pydantic.ValidationError, source: str, origin: dict[str, str]) -> str:
    msgs = []
    for e in err.errors():
        loc = tuple(e["loc"])
        key = ".".join(str(x) for x in loc)
        where = _where(source, key, origin)
        if e["type"] == "extra_forbidden":
            valid = _fields_at(Recipe, loc[:-1]) if len(loc) > 1 else list(Recipe.model_fields)
            hint = did_you_mean(str(loc[-1]), valid or [])
            msgs.append(
                f"{where}: unknown key '{loc[-1]}'{hint}"
                + ("" if hint else f"; valid keys here: {', '.join(valid or [])}")
            )
        elif e["type"] == "missing":
            msgs.append(f"{where}: required key is missing; add it")
        else:
            msgs.append(f"{where}: {e['msg']} (got {e.get('input')!r}); fix the value")
    return "; ".join(msgs)


#: kinds a recipe easily confuses: kind -> (the other kind, where that one belongs, what it is)
_CONFUSED = {
    "d_augment": ("augmentation", "data.augment",
                  "a data augmentation preset (it crops and flips the training images before G, reals only)"),
    "augmentation": ("d_augment", "model.d_augment",
                     "a discriminator augmentation (it transforms every discriminator input, real and fake, "
                     "inside the training step)"),
}


def _wrong_kind(kind: str, name: str, key: str) -> str | None:
    """The sentence for a part table naming a part of the kind it is easily confused with, else None."""
    if kind not in _CONFUSED or name in get_registry(kind):
        return None
    other, place, what = _CONFUSED[kind]
    if name not in get_registry(other):
        return None
    names = ", ".join(get_registry(kind).names())
    return (f"`{key}` names '{name}', {what}, not a {kind}; choose one of `imtrans list {kind}` ({names}), "
            f"or put it under {place}")


def _validate_parts(recipe: Recipe, source: str, origin: dict[str, str]) -> None:
    """Check every part's parameters against its registered parameter model."""

    def check(kind: str, spec: PartSpec | None, key: str, drop: tuple[str, ...] = ()) -> None:
        if spec is None:
            return
        params = {k: v for k, v in spec.params.items() if k not in drop}
        reg = get_registry(kind)
        where = _where(source, f"{key}.name", origin, children=False)
        confused = _wrong_kind(kind, spec.name, key)
        if confused:
            raise RecipeError(f"{where}: {confused}")
        try:
            entry = reg.get(spec.name)
            unknown = [p for p in params if p not in entry.params.model_fields]
            # name the override (or file key) that brought the first parameter the part does not know
            where = _where(source, f"{key}.{unknown[0]}" if unknown else key, origin, children=not unknown)
            reg.validate(spec.name, params, where=f"{kind} '{spec.name}'")
        except ImtransError as e:
            raise RecipeError(f"{where}: {e}") from None

    check("scheme", recipe.scheme, "scheme")
    for k in ("generator", "discriminator", "generator_b", "discriminator_b"):
        check("generator" if k.startswith("generator") else "discriminator", getattr(recipe.model, k), f"model.{k}")
    for k in ("a", "b", "test_a", "test_b"):
        check("domain", getattr(recipe.data, k), f"data.{k}")
    check("augmentation", recipe.data.augment, "data.augment")
    check("d_augment", recipe.model.d_augment, "model.d_augment")
    if recipe.train.eval_fid:
        check("feature_extractor", recipe.train.eval_features, "train.eval_features")
    for term, spec in recipe.losses.items():
        check("loss", spec, f"losses.{term}")
    for label, spec in recipe.output.loggers.items():
        check("logger", spec, f"output.loggers.{label}")


def recipe_from_dict(
    data: dict[str, Any], source: str = "<recipe>", origin: dict[str, str] | None = None, check_parts: bool = True
) -> Recipe:
    origin = origin or {}
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe must be a table of keys")
    _check_depth(data, source)
    data = {k: v for k, v in data.items() if k != "extends"}
    try:
        recipe = Recipe.model_validate(data)
    except pydantic.ValidationError as e:
        raise RecipeError(_format_errors(e, source, origin)) from None
    recipe._source = source
    if check_parts:  # the registries must be filled: the entry points load the plugins first
        _validate_parts(recipe, source, origin)
    return recipe


def load_recipe(path: str | Path, overrides: list[str] | None = None, check_parts: bool = True) -> Recipe:
    """Read, merge, override and validate a recipe: a file, or ``PACKAGE:NAME`` shipped in a package.

    The recipe records where it and each recipe it extends came from (``Recipe.origins``).
    """
    data, chain = read_chain(path)
    data, origin = apply_overrides(data, list(overrides or []))
    recipe = recipe_from_dict(data, chain[0].label, origin, check_parts)
    recipe._stem = chain[0].stem
    recipe._origins = [s.describe() for s in chain]
    return recipe
