"""``imtrans push``: a run's generators, recipe, newest samples and a model card, as a Hub repository.

:func:`stage` writes the folder (what ``--dry-run`` leaves to inspect);
:func:`upload` creates the repository if needed and uploads that folder in
one commit with ``huggingface_hub``.  The layout is described in
:mod:`imtrans.zoo.hub`; the card in :mod:`imtrans.zoo.card`.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from imtrans.errors import ImtransError
from imtrans.zoo import card, hub

DIRECTIONS = ("both", "a2b")
#: metadata keys copied from the checkpoint (state, optimiser and discriminators stay behind)
_KEEP = ("scheme", "step", "epoch", "recipe", "parts")


def run_folder(run: str | Path, ckpt: Path) -> Path | None:
    """The run directory around checkpoint ``ckpt`` (samples, metrics), or ``None`` for a lone weights file."""
    p = Path(run)
    if (p / "checkpoints").is_dir():
        return p
    if ckpt.parent.name == "checkpoints":
        return ckpt.parent.parent
    return None


def _chosen(meta: dict[str, Any], run: Any, direction: str) -> dict[str, str]:
    if direction not in DIRECTIONS:
        raise ImtransError(f"--direction '{direction}' is not one of {', '.join(DIRECTIONS)}")
    translators = hub.translators(meta)
    if direction == "a2b":
        translators = {k: v for k, v in translators.items() if k == "a2b"}
    if not translators:
        raise ImtransError(f"{run} holds no generator translating a2b, so there is nothing to push")
    missing = [n for n in translators.values() if n not in (meta.get("nets") or {})]
    if missing:
        raise ImtransError(f"{run} names generator '{missing[0]}' but holds no such network; the file is corrupt")
    return translators


def _last_eval(folder: Path | None, step: int) -> dict[str, Any]:
    """``{"step": N, metric: value...}`` of the last evaluation at or before ``step`` (``{}`` if none)."""
    from imtrans.engine.report import read_metrics

    if folder is None:
        return {}
    evals = [r for r in read_metrics(folder / "metrics.jsonl")
             if r.get("kind") == "eval" and isinstance(r.get("step"), int) and r["step"] <= step]
    metrics = card.finite_metrics(evals[-1].get("metrics")) if evals else {}
    return {"step": evals[-1]["step"], **metrics} if metrics else {}


def _recipe(text: str) -> dict[str, Any]:
    """The recipe TOML as a table (``{}`` when there is none or it does not parse)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    try:
        return tomllib.loads(text) if text else {}
    except tomllib.TOMLDecodeError:
        return {}


def _dataset(recipe: dict[str, Any]) -> str:
    """The data set's name: ``data.dataset``, the folder of ``data.root``, else the domain parts' names."""
    data = recipe.get("data") if isinstance(recipe.get("data"), dict) else {}
    if data.get("dataset") or data.get("root"):
        return str(data.get("dataset") or Path(str(data["root"])).name)
    names = []
    for side in ("a", "b"):
        spec = data.get(side) if isinstance(data.get(side), dict) else {}
        if spec.get("name"):
            names.append("-".join(str(x) for x in (spec["name"], spec.get("task")) if x))
    return "+".join(dict.fromkeys(names))


def _write_folder(dest: Path, files: dict[str, bytes]) -> None:
    """Write ``files`` (repository path -> bytes) as exactly the folder ``dest`` (replaced whole)."""
    from imtrans.atomic import default_dir_mode

    if dest.exists() and not (dest.is_dir() and (not any(dest.iterdir()) or (dest / hub.CARD).is_file())):
        raise ImtransError(f"{dest} exists and is not a folder written by `imtrans push`; choose another --out")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        tmp.chmod(default_dir_mode())
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        if dest.exists():
            shutil.rmtree(dest)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def contents(run: str | Path, repo_id: str, direction: str = "both") -> tuple[dict[str, bytes], dict[str, Any]]:
    """What a push of ``run`` to ``repo_id`` uploads: ``({path in repo: bytes}, card info)``."""
    from imtrans.engine.checkpoint import load_weights, read_meta, resolve_checkpoint, weights_bytes

    hub.check_repo_id(repo_id)
    ckpt = resolve_checkpoint(run)
    meta = read_meta(ckpt)
    translators = _chosen(meta, run, direction)
    nets = {n: meta["nets"][n] for n in dict.fromkeys(translators.values())}
    out_meta = {**{k: meta[k] for k in _KEEP if k in meta}, "nets": nets, "translators": translators}
    files = {hub.WEIGHTS: weights_bytes({n: load_weights(ckpt, n) for n in nets}, out_meta)}
    folder = run_folder(run, ckpt)
    recipe = str(meta.get("recipe") or "")
    if not recipe and folder is not None and (folder / hub.RECIPE).is_file():
        recipe = (folder / hub.RECIPE).read_text(encoding="utf-8")
    if recipe:
        files[hub.RECIPE] = recipe.encode("utf-8")
    samples = sorted((folder / "samples").glob("*.png")) if folder is not None else []
    sample = f"samples/{samples[-1].name}" if samples else None
    if sample:
        files[sample] = samples[-1].read_bytes()
    parsed = _recipe(recipe)
    used = [i.get("origin") for i in nets.values() if isinstance(i, dict)]
    plugins = card.plugin_pins(used)
    info = {"repo_id": repo_id, "scheme": str(meta.get("scheme") or ""), "step": int(meta.get("step") or 0),
            "directions": translators, "dataset": _dataset(parsed), "plugins": plugins,
            "description": str(parsed.get("description") or ""),
            "trained_with": [p for p in card.plugin_pins(list((meta.get("parts") or {}).values())) if p not in plugins],
            "evaluation": _last_eval(folder, int(meta.get("step") or 0)), "sample": sample}
    files[hub.CARD] = card.model_card(info).encode("utf-8")
    return dict(sorted(files.items())), info


def stage(run: str | Path, repo_id: str, dest: str | Path, direction: str = "both") -> Path:
    """Write the folder a push of ``run`` uploads into ``dest`` (replacing an earlier one); returns ``dest``."""
    files, _ = contents(run, repo_id, direction)
    _write_folder(Path(dest), files)
    return Path(dest)


def upload(folder: str | Path, repo_id: str, *, private: bool = False, message: str = "imtrans push") -> str:
    """Create ``repo_id`` if missing (``private`` then) and upload ``folder`` as one commit; returns its URL."""
    hf = hub.client()
    from huggingface_hub import errors

    api = hf.HfApi(endpoint=hub.endpoint())
    try:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        # the samples folder is replaced, not accumulated, by each push
        info = api.upload_folder(repo_id=repo_id, folder_path=str(folder), repo_type="model",
                                 commit_message=message, delete_patterns=["samples/*"])
    except errors.LocalTokenNotFoundError:
        raise ImtransError(
            f"pushing to the Hub needs a token with write access and none is set; run `hf auth login` or set "
            f"HF_TOKEN, then push {repo_id} again"
        ) from None
    except errors.HFValidationError as e:
        raise ImtransError(
            f"'{repo_id}' is not a valid Hub repository id ({hub._first_line(e)}); check the owner/name"
        ) from None
    except errors.HfHubHTTPError as e:
        raise ImtransError(
            f"the Hub refused the push to '{repo_id}' ({hub._first_line(e)}); check that your token (`hf auth login` "
            "or HF_TOKEN) may write to that owner"
        ) from None
    return str(getattr(info, "commit_url", "") or f"{hub.endpoint() or 'https://huggingface.co'}/{repo_id}")


def push(run: str | Path, repo_id: str, *, private: bool = False, direction: str = "both") -> str:
    """Stage ``run`` in a temporary folder and upload it to ``repo_id``; returns the commit's URL."""
    hub.client()  # say how to install huggingface_hub before any work
    files, info = contents(run, repo_id, direction)
    with tempfile.TemporaryDirectory(prefix="imtrans-push-") as tmp:
        folder = Path(tmp) / "repo"
        _write_folder(folder, files)
        message = f"imtrans push of {Path(run).name} (step {info['step']})"
        return upload(folder, repo_id, private=private, message=message)
