"""Models on the Hugging Face Hub: ``hf-hub:owner/name[@revision]`` wherever a model is accepted.

A Hub repository written by ``imtrans push`` (:mod:`imtrans.zoo.push`) holds::

    generators.safetensors   the generator(s): keys "<net>.<param>", metadata "imtrans" = the
                             checkpoint's own (architecture and plugin origin of each network,
                             translators, scheme, step, recipe)
    recipe.resolved.toml     the run's resolved recipe
    samples/step_N.png       the newest sample grid of the run
    README.md                the model card (YAML front matter, the command that uses it)

A pull downloads ``generators.safetensors`` only, through ``huggingface_hub``
into the Hub's own cache, so ``HF_HOME``/``HF_HUB_CACHE``, ``HF_HUB_OFFLINE``,
``HF_TOKEN`` and ``HF_ENDPOINT`` behave as with any Hub library; it is read
with safetensors, never unpickled.  :func:`imtrans.zoo.resolve_model` calls
:func:`resolve`, so ``translate``, ``demo``, ``eval``, ``export`` and
``load_translator`` take a Hub id; a generator's ``pretrained`` parameter
goes through :func:`init_from_hub`.

Example::

    from imtrans import load_translator
    t = load_translator("hf-hub:someone/glow-cyclegan@v1", direction="b2a")
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from imtrans.errors import ImtransError

PREFIX = "hf-hub:"
#: the one file a pull downloads
WEIGHTS = "generators.safetensors"
RECIPE = "recipe.resolved.toml"
CARD = "README.md"
INSTALL = "pip install 'imtrans[hub]'"
_REPO = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")


def is_hub_id(model: Any) -> bool:
    """Whether ``model`` is an ``hf-hub:`` reference (a string, not a path object)."""
    return isinstance(model, str) and model.startswith(PREFIX)


def check_repo_id(repo_id: str, given: str | None = None) -> str:
    """``repo_id`` if it reads ``owner/name``; otherwise one sentence naming what was given."""
    if not _REPO.fullmatch(repo_id) or ".." in repo_id:
        raise ImtransError(
            f"'{given or repo_id}' does not name a Hub repository; write it as owner/name "
            f"(letters, digits, '-', '_', '.'), e.g. {PREFIX}someone/horse2zebra@main"
        )
    return repo_id


def parse_id(ref: str) -> tuple[str, str | None]:
    """``"hf-hub:owner/name@rev"`` -> ``("owner/name", "rev")`` (revision ``None`` when left out)."""
    body = ref[len(PREFIX):] if ref.startswith(PREFIX) else ref
    repo, at, revision = body.partition("@")
    check_repo_id(repo, ref)
    if at and not revision.strip():
        raise ImtransError(f"'{ref}' has an empty revision after '@'; give a branch, tag or commit, or leave out '@'")
    return repo, (revision or None)


def client():
    """The ``huggingface_hub`` module, or one sentence saying how to install it."""
    try:
        import huggingface_hub
    except ImportError:
        raise ImtransError(
            f"Hugging Face Hub models need the huggingface_hub package, which is not installed; install it with "
            f"`{INSTALL}`"
        ) from None
    return huggingface_hub


def endpoint() -> str | None:
    """``$HF_ENDPOINT`` read now (huggingface_hub reads it once, at import); ``None``: the library's default."""
    return os.environ.get("HF_ENDPOINT", "").rstrip("/") or None


def download(ref: str) -> Path:
    """The cached path of ``ref``'s ``generators.safetensors``, downloaded first if needed."""
    from imtrans._version import __version__

    hub = client()
    from huggingface_hub import errors

    repo, revision = parse_id(ref)
    at = f" at revision '{revision}'" if revision else ""
    try:
        path = hub.hf_hub_download(repo, WEIGHTS, revision=revision, library_name="imtrans",
                                   library_version=__version__, endpoint=endpoint())
    except errors.LocalEntryNotFoundError:
        raise ImtransError(
            f"'{ref}' is not in the Hugging Face cache and the Hub could not be reached (offline: HF_HUB_OFFLINE "
            "is set, or no network); pull it once while online, or unset HF_HUB_OFFLINE"
        ) from None
    except errors.RevisionNotFoundError:
        raise ImtransError(
            f"the Hub repository '{repo}' has no revision '{revision}'; give a branch, tag or commit it has"
        ) from None
    except errors.EntryNotFoundError:
        raise ImtransError(
            f"the Hub repository '{repo}'{at} holds no {WEIGHTS}, so it is not an imtrans model; "
            "publish one with `imtrans push RUN owner/name`"
        ) from None
    except errors.RepositoryNotFoundError:
        raise ImtransError(
            f"the Hub repository '{repo}' was not found (or it is private or gated: log in with `hf auth login` "
            "or set HF_TOKEN); check the owner/name"
        ) from None
    except errors.HFValidationError as e:
        raise ImtransError(
            f"'{ref}' is not a valid Hub repository id ({_first_line(e)}); check the owner/name"
        ) from None
    except (errors.HfHubHTTPError, OSError) as e:
        raise ImtransError(
            f"could not download {WEIGHTS} of '{ref}' ({_first_line(e)}); check the network and HF_ENDPOINT"
        ) from None
    return Path(path)


def translators(meta: dict[str, Any]) -> dict[str, str]:
    """Direction -> network of a weights file; one without that map but with one generator translates a2b."""
    found = dict(meta.get("translators") or {})
    if not found:  # e.g. written by `imtrans import-weights`
        gens = [n for n, i in (meta.get("nets") or {}).items() if isinstance(i, dict) and i.get("kind") == "generator"]
        found = {"a2b": gens[0]} if len(gens) == 1 else {}
    return found


def _first_line(e: BaseException) -> str:
    """The first line of an exception's message (huggingface_hub's run over several), or its type."""
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _translator(meta: dict[str, Any], ref: str, direction: str) -> str:
    """The network of ``meta`` that translates in ``direction`` (one sentence when there is none)."""
    found = translators(meta)
    if direction not in found:
        has = ", ".join(sorted(found)) or "none"
        raise ImtransError(
            f"'{ref}' has no direction '{direction}' (it has {has}); pass --direction accordingly, or push the "
            "run again with --direction both"
        )
    return str(found[direction])


def resolve(ref: str, direction: str = "a2b") -> Path:
    """``ref``'s weights file, checked to translate in ``direction`` with parts that are installed.

    A generator whose plugin is missing gives the ``pip install`` of its
    distribution (recorded when it was trained), naming ``ref``.
    """
    from imtrans import registry
    from imtrans.engine.checkpoint import read_meta
    from imtrans.provenance import check_origin

    path = download(ref)
    meta = read_meta(path)
    info = (meta.get("nets") or {}).get(_translator(meta, ref, direction))
    spec = info.get("spec") if isinstance(info, dict) else None
    if isinstance(spec, dict) and isinstance(spec.get("name"), str) and info.get("kind") in registry.KINDS:
        # the entry point (CLI, imtrans.load_translator) has loaded the plugins: "missing" means missing
        if spec["name"] not in registry.get_registry(info["kind"]):  # (another version: the loader warns once)
            check_origin(info["kind"], spec["name"], info.get("origin"), f"'{ref}'")
    return path


def init_from_hub(net: Any, ref: str, part: str, params: dict[str, Any]) -> None:
    """Load the ``a2b`` generator of Hub model ``ref`` into ``net`` (a ``part`` built with ``params``) to fine-tune it.

    What ``model.generator.pretrained = "hf-hub:owner/name"`` runs.  The
    architecture must be the network's (apart from dropout and
    initialisation); otherwise one sentence names the first differing parameter.
    """
    from imtrans.engine.checkpoint import load_into, load_weights, read_meta
    from imtrans.registry import get_registry
    from imtrans.zoo.catalogue import FREE_PARAMS as _FREE

    path = resolve(ref, "a2b")
    meta = read_meta(path)
    name = _translator(meta, ref, "a2b")
    spec = dict(meta["nets"][name]["spec"])
    theirs = spec.pop("name")
    reg = get_registry("generator")
    full = {**(reg.get(theirs).defaults() if theirs in reg else {}), **spec}
    wrong = [k for k, v in full.items() if k not in _FREE and k in params and params[k] != v]
    if theirs != part or wrong:
        what = f"'{part}'" if theirs != part else f"{wrong[0]}={params[wrong[0]]!r}"
        fix = f"{wrong[0]}={full[wrong[0]]!r}" if theirs == part else f"the part '{theirs}'"
        raise ImtransError(
            f"generator parameter pretrained='{ref}' needs a '{theirs}' generator like the one on the Hub but this "
            f"generator has {what}; use {fix}, or leave out pretrained"
        )
    load_into(net, load_weights(path, name), f"'{ref}' ({path})")
