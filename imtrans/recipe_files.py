"""Recipe files: TOML reading, ``extends`` chains and ``--set`` overrides, merged by one rule.

A recipe is a file or a recipe shipped in a package (``imtrans:quickstart``; see
:mod:`imtrans.recipe_refs`), and so is what its ``extends`` names.

Tables merge key by key and values replace, except that a *part* table
(a generator, discriminator, loss, domain, the augmentation or the scheme)
naming a *different* part replaces the table it overrides whole: the old
part's parameters mean nothing to the new one.  A child recipe and
``--set`` follow the same rule (docs/recipes.md).
"""

from __future__ import annotations

import copy
import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from imtrans.errors import RecipeError
from imtrans.recipe_refs import Source, recipe_source
from imtrans.recipe_schema import PartSpec, Recipe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: how deeply recipe values may nest before loading refuses them (Python would hit its recursion limit)
MAX_DEPTH = 32


def _read_toml(source: Source) -> dict[str, Any]:
    text = source.read_text()
    where = source.label
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise RecipeError(f"{where}: invalid TOML: {e}; fix the syntax there") from None
    except RecursionError:
        raise RecipeError(f"{where}: values are nested too deeply for a recipe; flatten them") from None
    _check_depth(data, where)
    return data


def _check_depth(obj: Any, where: str, depth: int = 0) -> None:
    """Refuse values nested deeper than :data:`MAX_DEPTH` (before anything recurses into them)."""
    if depth > MAX_DEPTH:
        raise RecipeError(f"{where}: values are nested more than {MAX_DEPTH} levels deep; flatten them")
    if isinstance(obj, dict):
        for v in obj.values():
            _check_depth(v, where, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _check_depth(v, where, depth + 1)


def is_part_table(path: tuple[str, ...]) -> bool:
    """Whether the table at ``path`` (e.g. ``("model", "generator")``, ``("losses", "nce")``) names a part."""
    cur: Any = Recipe
    for step in path:
        if isinstance(cur, type) and issubclass(cur, BaseModel):
            f = cur.model_fields.get(step)
            if f is None:
                return False
            cur = f.annotation
        elif typing.get_origin(cur) is dict:
            cur = typing.get_args(cur)[1]
        else:
            return False
        args = [a for a in typing.get_args(cur) if a is not type(None)]
        if typing.get_origin(cur) in (typing.Union, types.UnionType) and len(args) == 1:
            cur = args[0]  # Optional[X] -> X
    return isinstance(cur, type) and issubclass(cur, PartSpec)


def deep_merge(base: dict[str, Any], over: dict[str, Any], path: tuple[str, ...] = ()) -> dict[str, Any]:
    """``over`` on top of ``base`` (the table at ``path``): tables merge key by key, values replace.

    Only a *part* table (generator, discriminator, a loss, a domain, the augmentation,
    the scheme) that names a *different* part replaces the base's table whole: the old
    part's parameters mean nothing to the new one.  Other tables with a ``name`` key
    (``[output]``, ``[optim]``) merge like any table.
    """
    out = copy.deepcopy(base)
    for k, v in over.items():
        here = (*path, k)
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            swapped = is_part_table(here) and "name" in v and v["name"] != out[k].get("name", v["name"])
            out[k] = copy.deepcopy(v) if swapped else deep_merge(out[k], v, here)
        else:
            out[k] = copy.deepcopy(v)
    return out


def read_chain(recipe: str | Path | Source, _chain: tuple[Source, ...] = ()) -> tuple[dict[str, Any], list[Source]]:
    """Read a recipe (a file path or a ``PACKAGE:NAME`` reference) and its ``extends`` chain, merged.

    Returns the merged table and the sources read, the recipe first.  ``extends`` names a file
    relative to the recipe (inside the package, for a packaged recipe) or another ``PACKAGE:NAME``.
    """
    source = recipe_source(recipe)
    if source.key() in {s.key() for s in _chain}:
        chain = " -> ".join(s.label for s in (*_chain, source))
        raise RecipeError(f"{source.label}: `extends` forms a cycle ({chain}); remove one of the links")
    data = _read_toml(source)
    parent = data.pop("extends", None)
    if parent is None:
        return data, [source]
    if not isinstance(parent, str):
        raise RecipeError(f"{source.label}: key 'extends' must be a file name or PACKAGE:NAME string, got {parent!r}")
    base, chain = read_chain(source.extended(parent), (*_chain, source))
    return deep_merge(base, data), [source, *chain]


def read_with_extends(recipe: str | Path | Source) -> dict[str, Any]:
    """The merged table of a recipe and its ``extends`` chain (see :func:`read_chain`)."""
    return read_chain(recipe)[0]


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=3"`` -> (["train", "epochs"], 3).  Values are TOML; bare words are strings."""
    if "=" not in text:
        raise RecipeError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.epochs=3")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p.strip() for p in parts):
        raise RecipeError(f"--set {text!r}: the key {key!r} is not a dotted key like train.epochs")
    raw = raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except (tomllib.TOMLDecodeError, ValueError, TypeError, IndexError):
        value = raw  # a bare word: treat it as a string
    except RecursionError:
        raise RecipeError(f"--set {text[:60]!r}...: the value is nested too deeply; flatten it") from None
    _check_depth(value, f"--set {text[:60]!r}")
    return [p.strip() for p in parts], value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Apply ``--set`` overrides; returns the new data and {dotted key: original text}.

    The overrides are gathered into one table and merged like a child recipe
    (:func:`deep_merge`): ``--set model.generator.name=unet`` swaps the part and
    drops the old part's parameters, whatever order the ``--set`` options come in.
    """
    overlay: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for text in overrides:
        parts, value = parse_override(text)
        node, base = overlay, data
        for i, p in enumerate(parts[:-1]):
            base = base.get(p) if isinstance(base, dict) else None
            if node.get(p) is None:
                node[p] = {}
            if not isinstance(node[p], dict) or (base is not None and not isinstance(base, dict)):
                raise RecipeError(
                    f"--set {text}: '{'.'.join(parts[: i + 1])}' is a value, not a table; set it directly"
                )
            node = node[p]
        node[parts[-1]] = value
        origin[".".join(parts)] = text
    return deep_merge(data, overlay), origin
