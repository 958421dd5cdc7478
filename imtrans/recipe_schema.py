"""The recipe schema: the pydantic models of a recipe's structure (no file reading, no registry).

:mod:`imtrans.recipe` re-exports every name here and adds loading and the
per-part validation; :mod:`imtrans.recipe_files` asks this schema which tables
name a part.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import pydantic
from pydantic import BaseModel, ConfigDict, Field


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

    weight: Optional[float] = Field(None, ge=0, allow_inf_nan=False,
                                    description="How much this term counts; 0 turns it off (a negative weight would reward the loss).")


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
    d_augment: Optional[PartSpec] = Field(
        None, description="Discriminator augmentation (e.g. diffaugment, ada) on every D input, real and fake; "
        "default: none.")


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

    # where it came from (not part of the TOML): the file or PACKAGE:NAME, its name without .toml,
    # and one line per recipe read (the recipe, then what it extends) for recipe.resolved.toml
    _source: str = pydantic.PrivateAttr(default="<recipe>")
    _stem: str = pydantic.PrivateAttr(default="")
    _origins: list[str] = pydantic.PrivateAttr(default_factory=list)

    @property
    def source(self) -> str:
        return self._source

    @property
    def origins(self) -> list[str]:
        """Where the recipe and each recipe it extends were read from (file path, or PACKAGE:NAME = location)."""
        return list(self._origins)

    def origin_comment(self) -> str:
        """``# recipe: ...`` then ``# extends: ...`` lines (TOML comments): where the recipe came from."""
        return "".join(f"# {'extends' if i else 'recipe'}: {o}\n" for i, o in enumerate(self._origins))

    def run_name(self) -> str:
        if self.output.name:
            return self.output.name
        if self._stem:
            return self._stem
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
