"""When and what a run saves, and how it resumes: ``latest``, snapshots, ``best``.

The on-disk format lives in :mod:`imtrans.engine.checkpoint` (atomic writes: :mod:`imtrans.atomic`); this module
decides *what* goes into a checkpoint of a run (weights with the part specs that rebuild them,
less a loss's frozen parameters, which its spec rebuilds; the scheme's training state, RNG streams, the position in the data) and *which* checkpoint:
``latest`` keeps everything (exact resume), ``epoch_N`` snapshots keep weights only unless
``train.snapshot_state`` asks for all, ``best`` the weights with the lowest evaluation score.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from imtrans.engine import checkpoint as ckpt
from imtrans.engine import distributed as D
from imtrans.engine.runtime import rng_state, set_rng_state
from imtrans.errors import ImtransError
from imtrans.provenance import check_meta, net_origin, recipe_origins
from imtrans.registry import record_of
from imtrans.schemes.base import schedule_settings


@dataclass
class Position:
    """Where training stands: global step, epoch, and steps done in the current epoch."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0


@dataclass
class Resumed:
    """What :meth:`CheckpointManager.resume` found."""

    pos: Position
    schedule_changes: dict[str, tuple[Any, Any]]  # key -> (checkpoint's value, recipe's value)


class CheckpointManager:
    """Saves and resumes one run's checkpoints (rank 0 writes; every rank joins the collectives)."""

    def __init__(self, run_dir: Path, recipe, dist: D.DistInfo, log=None) -> None:
        self.dir = Path(run_dir) / "checkpoints"
        self.recipe = recipe
        self.dist = dist
        self.log = log  # a RunLogger (replica checks are recorded there)
        self.saved_step: Optional[int] = None  # step of the newest checkpoint on disk
        self.best_score: Optional[float] = None
        self._digests: dict[str, tuple[tuple, str]] = {}  # net -> (tensor stamps, sha256 of its frozen part)

    # -- what goes in ------------------------------------------------------------
    def meta(self, scheme, pos: Position) -> dict[str, Any]:
        """Metadata that rebuilds every network without the recipe (part name + parameters)."""
        nets = {}
        for name, net in scheme.networks().items():
            rec = record_of(net)
            # a network not built by a registry has no spec to rebuild it from: recorded as such, never guessed
            nets[name] = {"kind": rec.kind, "spec": rec.spec, "origin": net_origin(net)} if rec is not None else {}
            frozen = ckpt.frozen_keys(net)
            if frozen:  # left out of the weights (rebuilt from the spec): what they were, to compare on resume
                nets[name]["frozen"] = {"tensors": len(frozen), "sha256": self._frozen_digest(name, net, frozen)}
        meta = {"scheme": self.recipe.scheme.name, "step": pos.step, "epoch": pos.epoch, "nets": nets,
                "translators": dict(scheme.translators), "parts": recipe_origins(self.recipe),
                "recipe": self.recipe.to_toml()}
        if getattr(scheme, "test_mode", None) in ("train", "eval"):
            meta["test_mode"] = scheme.test_mode  # how `imtrans translate` runs G by default (imtrans.nets.norm_mode)
        return meta

    def _frozen_digest(self, name: str, net: torch.nn.Module, keys: set[str]) -> str:
        # Hashed once: frozen tensors do not change, and a large backbone would cost a copy at every save.
        sd = net.state_dict()
        stamp = tuple((k, sd[k].data_ptr(), sd[k]._version) for k in sorted(keys))
        hit = self._digests.get(name)
        if hit is None or hit[0] != stamp:
            hit = self._digests[name] = (stamp, ckpt.frozen_digest(net, keys))
        return hit[1]

    def state(self, scheme, pos: Position) -> dict[str, Any]:
        return {"step": pos.step, "epoch": pos.epoch, "step_in_epoch": pos.step_in_epoch,
                **scheme.training_state(), "rng": rng_state()}

    def _gather_ranks(self, scheme, step: int, state: dict[str, Any]) -> None:
        """Distributed: every rank's RNG streams and pools into ``state``; check the replicas agree."""
        sums = {}
        with torch.no_grad():
            for name, net in scheme.networks().items():
                ps = [p.detach().double() for p in net.parameters()]
                sums[name] = (float(sum(p.abs().sum() for p in ps)), float(sum((p * p).sum() for p in ps)))
        mine = {"rng": rng_state(), "scheme": _to_cpu(scheme.extra_state()), "sums": sums}
        ranks = D.gather_objects(mine)
        identical = all(r["sums"] == ranks[0]["sums"] for r in ranks)
        if self.dist.is_main and self.log is not None:
            self.log.write({"kind": "replicas", "step": step, "world": self.dist.world, "identical": identical})
        if not identical:
            raise ImtransError(
                f"the {self.dist.world} processes no longer hold identical weights at step {step}; the run stopped "
                "so that no diverged checkpoint is written — report this with the recipe"
            )
        state["ranks"] = [{"rng": r["rng"], "scheme": r["scheme"]} for r in ranks]

    # -- saving --------------------------------------------------------------------
    def save(self, scheme, pos: Position, snapshot: Optional[str] = None) -> Optional[Path]:
        """Write ``latest`` (and ``snapshot`` if named); a collective under torchrun."""
        if self.saved_step == pos.step and not snapshot:
            return None  # already on disk (e.g. the epoch end was also the last step)
        state = self.state(scheme, pos)
        if self.dist.enabled:
            self._gather_ranks(scheme, pos.step, state)  # every rank takes part
            if not self.dist.is_main:
                self.saved_step = pos.step
                return None
        meta = self.meta(scheme, pos)
        keep_state = self.recipe.train.snapshot_state
        path = self._write("latest", scheme, meta, state)
        if snapshot:
            self._write(snapshot, scheme, meta, state if keep_state else None)
        self.saved_step = pos.step
        return path

    def consider_best(self, scheme, pos: Position, score: float) -> bool:
        """Keep ``best`` (weights only) when ``score`` is the lowest so far; rank 0 only."""
        if not self.dist.is_main or score != score:  # NaN never wins
            return False
        if self.best_score is not None and score >= self.best_score:
            return False
        self.best_score = score
        meta = dict(self.meta(scheme, pos), best_score=score)
        self._write("best", scheme, meta, None)
        return True

    def _write(self, name: str, scheme, meta: dict[str, Any], state: Optional[dict[str, Any]]) -> Path:
        try:
            return ckpt.save_checkpoint(self.dir / name, scheme.networks(), meta, state)
        except OSError as e:
            raise ImtransError(
                f"writing the checkpoint in {self.dir} failed ({e.strerror or e}); the previous checkpoint is kept — "
                "free disk space or fix permissions, then resume with --resume"
            ) from None

    # -- resuming ------------------------------------------------------------------
    def resume(self, scheme) -> Resumed:
        """Load ``latest``; if it is unreadable and ``latest.old`` exists, fall back to that one."""
        path = ckpt.resolve_checkpoint(self.dir.parent)
        try:
            res = self._load(scheme, path)
        except ckpt.CheckpointError as e:
            old = self.dir / "latest.old"
            if path == old or not (old / ckpt.WEIGHTS).is_file():
                raise
            logging.getLogger("imtrans.train").warning("%s; resuming from %s instead", e, old)
            res = self._load(scheme, old)
        self.saved_step = res.pos.step
        self.best_score = self._best_score()
        return res

    def _best_score(self) -> Optional[float]:
        """The score of the ``best`` kept so far, so that a resumed run replaces it only with a better one."""
        best = self.dir / "best"
        if not (best / ckpt.WEIGHTS).is_file():
            return None
        try:
            return float(ckpt.read_meta(best)["best_score"])
        except (ckpt.CheckpointError, KeyError, TypeError, ValueError):
            return None  # unreadable: the next evaluation writes a new one

    def _load(self, scheme, path: Path) -> Resumed:
        try:
            return self._load_unchecked(scheme, path)
        except ckpt.CheckpointError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, RuntimeError) as e:
            # a readable file whose state does not fit this run (another recipe, or garbage metadata)
            raise ckpt.CheckpointError(
                f"{path} cannot resume this run: its training state does not fit ({type(e).__name__}: {e}); "
                "resume with the recipe that made it, or start a new run"
            ) from None

    def _load_unchecked(self, scheme, path: Path) -> Resumed:
        for name, net in scheme.networks().items():
            frozen = ckpt.frozen_keys(net)
            weights = ckpt.load_weights(path, name)
            ckpt.load_into(net, weights, f"{path} ({name})", optional=frozen)
            if frozen - weights.keys():
                self._check_rebuilt(path, name, net, frozen)
        st = ckpt.load_state(path)
        pos = Position(int(st["step"]), int(st["epoch"]), int(st["step_in_epoch"]))
        mine = st
        ranks = st.get("ranks") or []
        if self.dist.rank < len(ranks):
            mine = ranks[self.dist.rank]  # this rank's own pools and random streams
        elif self.dist.rank > 0:
            mine = {}  # a rank the checkpoint did not have: fresh pools, its own seeded streams
        changes = self._schedule_changes(path)
        scheme.load_training_state(st, extra=mine.get("scheme", {}),
                                   restart_schedule_at=pos.epoch if changes else None)
        if "rng" in mine:
            set_rng_state(mine["rng"])
        return Resumed(pos, changes)

    def _check_rebuilt(self, path: Path, name: str, net: torch.nn.Module, frozen: set[str]) -> None:
        """Warn when a loss's frozen part, rebuilt from its spec, is not the one the run was trained with."""
        info = (ckpt.read_meta(path).get("nets") or {}).get(name) or {}
        want = (info.get("frozen") or {}).get("sha256")
        if want and want != self._frozen_digest(name, net, frozen):
            logging.getLogger("imtrans.train").warning(
                "%s: the frozen parameters of %s, rebuilt from its spec, differ from those the run was trained with "
                "(its pretrained weights changed?); training goes on with the rebuilt ones, so it is not an exact "
                "resume — restore the original weights for one", path, name)

    def _schedule_changes(self, path: Path) -> dict[str, tuple[Any, Any]]:
        """Schedule keys whose value in the checkpoint's recipe differs from this run's recipe."""
        from imtrans.recipe import Recipe

        try:
            meta = ckpt.read_meta(path)
            table = ckpt.stored_recipe(meta)
            if not table and meta.get("recipe"):
                return {}  # a recipe that is not valid TOML: nothing to compare
            old = Recipe.model_validate(table)
        except Exception:  # an old or foreign checkpoint: nothing to compare, keep its schedule
            return {}
        before, now = schedule_settings(old), schedule_settings(self.recipe)
        return {k: (before[k], now[k]) for k in now if before[k] != now[k]}


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def check_run(recipe_path: str | Path, overrides: list[str], run_dir: str | Path | None = None) -> None:
    """Before a recipe is validated: if its run directory holds a checkpoint, check that checkpoint's plugins.

    ``run --resume`` and ``check`` call this so that a missing plugin is named
    with its ``pip install`` rather than as an unknown part.
    """
    from imtrans.recipe import load_recipe

    if run_dir is None:
        r = load_recipe(recipe_path, overrides, check_parts=False)
        run_dir = Path(r.output.root) / r.run_name()
    try:
        found = ckpt.resolve_checkpoint(run_dir)
        meta = ckpt.read_meta(found)
    except ckpt.CheckpointError:
        return  # no (readable) checkpoint: nothing recorded to check; resume reports its own errors
    check_meta(meta, str(found))
