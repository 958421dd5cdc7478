"""Recipes: TOML files validated into a typed :class:`Recipe`.

A recipe names every part (``name`` plus that part's parameters), the losses
with their weights, the optimiser, the schedule, the training length and the
output.  Loading does, in order:

1. read TOML (``tomllib``), follow ``extends = "base.toml"`` (relative to the
   file, deep-merged, chains allowed; see :mod:`imtrans.recipe_files`);
2. apply ``--set dotted.key=value`` overrides (values parsed as TOML, bare words
   as strings), merged by the same rule as ``extends``;
3. validate the structure (pydantic, unknown keys refused with suggestions);
4. validate every part's parameters against the registered part's own model.

Every failure is one :class:`~imtrans.errors.RecipeError` naming the file, the
dotted key and the fix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import pydantic
from pydantic import BaseModel, ConfigDict, Field

from imtrans.errors import ImtransError, RecipeError
from imtrans.recipe_files import (  # noqa: F401  (re-exported: the recipe API in one place)
    MAX_DEPTH,
    _check_depth,
    apply_overrides,
    deep_merge,
    is_part_table,
    parse_override,
    read_with_extends,
    tomllib,
)
from imtrans.registry import get_registry
from imtrans.suggest import did_you_mean


class _Strict(BaseModel):
    # inf/nan never make sense in a recipe (lr = inf trains straight into NaN); refuse them at load time
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


_Beta = Annotated[float, Field(ge=0, lt=1)]


class PartSpec(BaseModel):
    """A part: its registered ``name`` plus that part's own parameters."""

    model_config = ConfigDict(extra="allow")
    name: str

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


class LossSpec(PartSpec):
    """A loss term: a registered loss, its ``weight`` (default: the loss's own) and parameters."""

    weight: Optional[float] = Field(None, allow_inf_nan=False)


class DataConfig(_Strict):
    root: Optional[str] = Field(None, description="Unpaired layout root (ROOT/trainA, trainB, testA, testB).")
    dataset: str = Field("", description="Official data set name, used in the 'download it' hint.")
    a: Optional[PartSpec] = Field(None, description="Domain A (training); default: layout of `root`.")
    b: Optional[PartSpec] = Field(None, description="Domain B (training); default: layout of `root`.")
    test_a: Optional[PartSpec] = Field(None, description="Held-out domain A for evaluation and samples.")
    test_b: Optional[PartSpec] = Field(None, description="Held-out domain B for evaluation and samples.")
    direction: Literal["AtoB", "BtoA"] = Field(
        "AtoB", description="Paired schemes: AtoB translates each pair's A to its B; BtoA swaps them (official --direction)."
    )
    augment: PartSpec = Field(
        default_factory=lambda: PartSpec(name="resize_and_crop"), description="Augmentation preset."
    )
    batch_size: int = Field(1, ge=1)
    workers: int = Field(2, ge=0, description="DataLoader worker processes that decode images.")
    cache: bool = Field(False, description="Keep decoded, resized images in memory (small data sets).")


class ModelConfig(_Strict):
    generator: PartSpec = Field(default_factory=lambda: PartSpec(name="resnet"))
    discriminator: PartSpec = Field(default_factory=lambda: PartSpec(name="patchgan"))
    generator_b: Optional[PartSpec] = Field(None, description="Generator B->A if it differs from `generator`.")
    discriminator_b: Optional[PartSpec] = Field(None, description="D_A if it differs from `discriminator`.")


class OptimConfig(_Strict):
    name: Literal["adam", "adamw"] = "adam"
    lr: float = Field(2e-4, gt=0)
    lr_d: Optional[float] = Field(None, gt=0, description="Discriminator learning rate; default `lr`.")
    betas: tuple[_Beta, _Beta] = (0.5, 0.999)
    eps: float = Field(1e-8, gt=0, description="Adam's epsilon (official and PyTorch default 1e-8).")
    weight_decay: float = Field(0.0, ge=0)


class TrainConfig(_Strict):
    epochs: int = Field(100, ge=0, description="Epochs at the initial learning rate.")
    epochs_decay: int = Field(100, ge=0, description="Epochs of learning-rate decay after `epochs`.")
    lr_policy: Literal["linear", "step", "cosine", "plateau", "constant"] = "linear"
    lr_step_epochs: int = Field(50, ge=1, description="`step` policy: multiply the LR by 0.1 every N epochs.")
    steps_per_epoch: Optional[int] = Field(None, ge=1, description="Cap on steps per epoch (quick tries).")
    max_steps: Optional[int] = Field(None, ge=1, description="Stop after this many steps in total.")
    seed: int = Field(0, ge=-(2**62), le=2**62)
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    compile: bool = False
    channels_last: bool = Field(
        False, description="Networks in channels-last memory layout (pays on GPUs with tensor cores; slower on CPU here).")
    deterministic: bool = False
    log_every: int = Field(50, ge=1)
    sample_every: int = Field(500, ge=0, description="Steps between sample grids (0: only at epoch ends).")
    checkpoint_every: int = Field(0, ge=0, description="Steps between `latest` checkpoints (0: epoch ends).")
    save_every_epochs: int = Field(5, ge=0, description="Keep a snapshot every N epochs (0: never).")
    snapshot_state: bool = Field(
        False, description="Snapshots keep the training state too (exact resume from them); default: weights only."
    )
    eval_every: int = Field(0, ge=0, description="Steps between evaluations (0: epoch ends).")
    eval_images: int = Field(32, ge=1, description="Held-out images per ground-truth evaluation.")
    eval_fid: bool = Field(True, description="FID/KID on the held-out split when the extractor's weights are available.")
    eval_features: PartSpec = Field(
        default_factory=lambda: PartSpec(name="inception_v3_fid"),
        description="Feature extractor for FID/KID (weights are never downloaded during a run).",
    )
    eval_fid_images: Optional[int] = Field(None, ge=2, description="Held-out images per FID/KID (default: all).")


class OutputConfig(_Strict):
    root: str = "runs"
    name: Optional[str] = Field(None, description="Run directory name; default: the recipe file's stem.")
    tensorboard: bool = Field(False, description="Also log to TensorBoard: the same as [output.loggers.tensorboard].")
    loggers: dict[str, PartSpec] = Field(
        default_factory=dict,
        description="Metric loggers by label: [output.loggers.tensorboard] (`name` defaults to the label).",
    )

    @pydantic.field_validator("loggers", mode="before")
    @classmethod
    def _name_from_label(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({"name": k, **s} if isinstance(s, dict) else s) for k, s in v.items()}
        return v

    def logger_specs(self) -> dict[str, PartSpec]:
        """``loggers``, with ``tensorboard = true`` adding the tensorboard logger unless one is listed."""
        specs = dict(self.loggers)
        if self.tensorboard and not any(s.name == "tensorboard" for s in specs.values()):
            specs["tensorboard"] = PartSpec(name="tensorboard")
        return specs

    @pydantic.field_validator("name")
    @classmethod
    def _inside_root(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and (Path(v).is_absolute() or ".." in Path(v).parts or "\x00" in v):
            raise ValueError("must be a name (or sub/path) inside output.root, without '..' or a leading '/'")
        return v


class Recipe(_Strict):
    """A whole training recipe."""

    description: str = ""
    scheme: PartSpec = Field(default_factory=lambda: PartSpec(name="cyclegan"))
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    losses: dict[str, LossSpec] = Field(default_factory=dict)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    output: OutputConfig = Field(default_factory=OutputConfig)

    # where it came from (not part of the TOML)
    _source: str = pydantic.PrivateAttr(default="<recipe>")

    @property
    def source(self) -> str:
        return self._source

    def run_name(self) -> str:
        if self.output.name:
            return self.output.name
        return Path(self._source).stem if self._source != "<recipe>" else "run"

    def to_dict(self) -> dict[str, Any]:
        return _drop_none(self.model_dump(mode="json"))

    def to_toml(self) -> str:
        import tomli_w

        return tomli_w.dumps(self.to_dict())


def _drop_none(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _drop_none(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, list):
        return [_drop_none(v) for v in obj]
    return obj


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


def _validate_parts(recipe: Recipe, source: str, origin: dict[str, str]) -> None:
    """Check every part's parameters against its registered parameter model."""

    def check(kind: str, spec: PartSpec | None, key: str, drop: tuple[str, ...] = ()) -> None:
        if spec is None:
            return
        params = {k: v for k, v in spec.params.items() if k not in drop}
        reg = get_registry(kind)
        where = _where(source, f"{key}.name", origin, children=False)
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
    if check_parts:
        from imtrans.plugins import load_plugins

        load_plugins()  # checking parts needs them registered (idempotent)
        _validate_parts(recipe, source, origin)
    return recipe


def load_recipe(path: str | Path, overrides: list[str] | None = None, check_parts: bool = True) -> Recipe:
    """Read, merge, override and validate a recipe file."""
    path = Path(path)
    data = read_with_extends(path)
    data, origin = apply_overrides(data, list(overrides or []))
    return recipe_from_dict(data, str(path), origin, check_parts)
