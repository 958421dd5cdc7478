"""The local model cache: look up, download on first use, verify, and resolve names to checkpoints.

Layout (``cache_root()`` is ``$IMTRANS_HOME/pretrained`` or the platform cache)::

    <cache>/<name>/weights.safetensors   the converted generator (what translate/export load)
    <cache>/<name>/record.json           url, sha256 of the official file and of the weights file
    <cache>/<name>/<name>.pth(.part)     the official file while it downloads / converts

Checksums: an entry's published ``sha256`` is checked on download.  Without
one, the first download records the file's sha256 (trust on first use): a
later download of the same name must match it, and every load checks the
converted weights against the sha256 recorded when they were written.  A file
that fails a check, is truncated or holds another architecture is removed and
refused with the reason.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

from imtrans.errors import ImtransError
from imtrans.zoo import fetch, genfile
from imtrans.zoo.catalogue import FREE_PARAMS, Pretrained, check_name
from imtrans.zoo.convert import RefusedFileError, check_importable, convert

log = logging.getLogger("imtrans.zoo")

WEIGHTS = "weights.safetensors"
RECORD = "record.json"
#: (path, size, mtime_ns) of weights files already verified in this process
_verified: set[tuple[str, int, int]] = set()


def _catalogue():
    # the "pretrained" registry: filled by the plugins the entry points load (never loaded from here)
    from imtrans.registry import get_registry

    return get_registry("pretrained")


def names() -> list[str]:
    """Every zoo name (built-in and from plugins), sorted."""
    return _catalogue().names()


def get(name: str) -> Pretrained:
    """The catalogue entry ``name``; an unknown name suggests the closest ones."""
    from imtrans.suggest import suggest

    reg = _catalogue()
    if name not in reg:
        gone = _unregistered(name) if _PLAIN.fullmatch(name) else ""
        if gone:  # a model cached here whose plugin went away
            raise ImtransError(gone)
        close = suggest(name, reg.names())
        hint = ("; did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""
        raise ImtransError(f"unknown pretrained model '{name}'{hint} (see `imtrans pretrained list`)")
    entry = reg.get(name).factory
    if not isinstance(entry, Pretrained):
        plugin = reg.get(name).plugin
        raise ImtransError(
            f"pretrained '{name}' registered by plugin '{plugin}' is a {type(entry).__name__}, not an "
            "imtrans.zoo.Pretrained; register Pretrained(...) entries in register_pretrained"
        )
    return entry


def model_dir(name: str) -> Path:
    return fetch.cache_root() / check_name(name)


def weights_path(name: str) -> Path:
    """Where ``name``'s converted weights are (or will be) cached."""
    return model_dir(name) / WEIGHTS


def is_cached(name: str) -> bool:
    return weights_path(name).is_file()


def read_record(name: str) -> dict[str, Any]:
    """What the first download recorded (``{}`` if nothing, or if the record is unreadable)."""
    try:
        rec = json.loads((model_dir(name) / RECORD).read_text())
    except (OSError, ValueError):
        return {}
    return rec if isinstance(rec, dict) else {}


def _verify_cached(name: str, weights: Path) -> None:
    """Check cached weights against their recorded sha256 once per process; remove and refuse on mismatch."""
    st = weights.stat()
    key = (str(weights), st.st_size, st.st_mtime_ns)
    if key in _verified:
        return
    want = read_record(name).get("weights_sha256")
    got = fetch.sha256_file(weights)
    if want is None:
        # Weights without a record (the record was deleted): adopt them, as on a first download,
        # if they are a readable checkpoint at all.
        from imtrans.engine.checkpoint import CheckpointError, read_meta

        try:
            read_meta(weights)
        except CheckpointError as e:
            weights.unlink(missing_ok=True)
            raise ImtransError(f"the cached weights of pretrained '{name}' were unreadable and removed ({e})") from None
        _write_record(name, {**read_record(name), "weights_sha256": got})
    elif got != want:
        weights.unlink(missing_ok=True)
        raise fetch.ChecksumError(
            f"the cached weights of pretrained '{name}' ({weights}) have sha256 {got}, not the {want} recorded "
            "when they were written, so the file is corrupt or was changed; it was removed: run again to download "
            "it afresh"
        )
    _verified.add(key)


def _write_record(name: str, rec: dict[str, Any]) -> None:
    from imtrans.atomic import atomic_write_text

    atomic_write_text(model_dir(name) / RECORD, json.dumps(rec, indent=2, sort_keys=True) + "\n")


def _download(
    name: str, entry: Pretrained, pth: Path, expected: str | None, progress: bool, timeout: float
) -> tuple[str, str]:
    """Fetch the official file from the first URL that answers; returns ``(url, sha256)``."""
    errors = []
    for url in [fetch.mirrored(u) for u in entry.urls]:
        try:
            return url, fetch.download(url, pth, label=name, sha256=expected, progress=progress, timeout=timeout)
        except fetch.ChecksumError:
            raise
        except ImtransError as e:
            errors.append(str(e))
    raise ImtransError(
        f"{'; '.join(errors)}; to install pretrained '{name}' by hand, download {entry.urls[0]} another way and "
        f"save it as {pth}, or set {fetch.MIRROR_ENV}=http://host:port to a copy of the official folders"
    )


def _source(name: str, entry: Pretrained, src: Path, expected: str | None, progress: bool,
            timeout: float) -> tuple[str, str]:
    """The published file at ``src``, placed by hand (checked) or downloaded; returns ``(url, sha256)``."""
    if not src.is_file():
        return _download(name, entry, src, expected, progress, timeout)
    digest = fetch.sha256_file(src)
    if expected and digest != expected.lower():
        src.unlink()
        raise fetch.ChecksumError(
            f"{src} has sha256 {digest} but {expected.lower()} was expected for pretrained '{name}'; "
            "it was removed: run again to download it, or place the published file there"
        )
    return fetch.mirrored(entry.urls[0]), digest


def _drop_if_replaced(name: str, entry: Pretrained) -> None:
    """Forget a cached model whose entry now names another file (a new sha256): the next lines download it."""
    def replaced() -> bool:
        had = read_record(name).get("source_sha256")
        return bool(entry.sha256 and had and had != entry.sha256.lower())

    if not replaced():  # the common case, without taking the lock
        return
    with fetch.DownloadLock(model_dir(name)):
        if replaced():  # (not already downloaded afresh by another process)
            log.info("pretrained %s: its entry names another file (sha256 %s); downloading it", name, entry.sha256)
            weights_path(name).unlink(missing_ok=True)
            (model_dir(name) / RECORD).unlink(missing_ok=True)


def ensure(name: str, *, progress: bool = True, timeout: float = 60.0) -> Path:
    """The path of ``name``'s weights, downloading (and, for an official ``.pth``, converting) them first if needed.

    Safe to call from several processes at once (one downloads, the others
    wait and then find it cached).  Raises :class:`ImtransError` for an
    unknown name, an architecture that cannot be imported, a failed download
    (naming the URL and how to place the file by hand) and a refused file.
    An entry of format ``imtrans`` (a generator ``.safetensors`` file) is
    checked (:func:`imtrans.zoo.genfile.accept`) and cached as it is.
    """
    from imtrans.atomic import atomic_write_bytes
    from imtrans.registry import part_origin

    entry = get(name)
    weights = weights_path(name)
    _drop_if_replaced(name, entry)
    if weights.is_file() and read_record(name):  # the common case, without taking the lock
        _verify_cached(name, weights)
        return weights
    official = entry.format == "official"
    if official:
        check_importable(name, entry)
    folder = model_dir(name)
    with fetch.DownloadLock(folder):
        if weights.is_file():  # another process finished it while we waited
            _verify_cached(name, weights)
            return weights
        expected = entry.sha256 or read_record(name).get("source_sha256")
        src = folder / (f"{name}.pth" if official else f"{name}.safetensors")
        url, digest = _source(name, entry, src, expected, progress, timeout)
        try:
            data = convert(name, entry, src, url) if official else None
            if not official:
                genfile.accept(name, entry, src, url)
        except RefusedFileError:
            src.unlink(missing_ok=True)
            raise
        # The record goes first: weights on disk always have the checksum they must match.  It also keeps
        # who registered the name, for the `pip install` hint once that plugin is gone.
        _write_record(name, {"name": name, "url": url, "format": entry.format, "source_sha256": digest,
                             "weights_sha256": hashlib.sha256(data).hexdigest() if official else digest,
                             "bytes": len(data) if official else src.stat().st_size,
                             "origin": part_origin("pretrained", name)})
        if official:
            atomic_write_bytes(weights, data)
            src.unlink(missing_ok=True)
        else:
            os.replace(src, weights)  # used as published: its sha256 is the one just checked
        log.info("pretrained %s cached in %s", name, weights)
    return weights


def _unregistered(name: str) -> str:
    """For a name no plugin registers but the cache remembers: the ``pip install`` that brings it back ("" if none)."""
    rec = read_record(name)
    origin = rec.get("origin") if isinstance(rec.get("origin"), dict) else {}
    dist, version = str(origin.get("dist") or ""), str(origin.get("version") or "")
    pins = [f"{dist}=={version}" if version else dist] if dist and dist != "imtrans" else []
    weights = weights_path(name)
    if weights.is_file():
        from imtrans.engine.checkpoint import CheckpointError, read_meta

        try:
            pins += genfile.missing_pins(read_meta(weights))
        except CheckpointError:
            pass  # an unreadable cached file names nothing more
    pins = list(dict.fromkeys(pins))
    if not pins:
        return ""
    who = f"the plugin distribution '{dist}' {version}" if dist and dist != "imtrans" else "a plugin"
    return (f"pretrained '{name}' (cached in {model_dir(name)}) comes from {who}, which is not installed here "
            f"(or failed to load: see `imtrans plugins`); install it with `pip install {' '.join(pins)}`")


_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def resolve_model(model: str | os.PathLike, *, direction: str = "a2b", progress: bool = True) -> str | os.PathLike:
    """A run directory, checkpoint or weights file as given; a zoo name as its cached weights file.

    This is the one place where a model argument becomes a zoo model: an
    existing path always wins, then a registered zoo name (downloaded on first
    use).  A plain word that is neither gets the closest zoo names as a hint;
    anything path-like is returned unchanged, for the checkpoint reader's own
    "does not exist" message.  A zoo model translates one way (``a2b``): asked
    for ``b2a``, the message names its ``reverse`` model.  An
    ``hf-hub:owner/name[@revision]`` id is pulled from the Hugging Face Hub
    (:mod:`imtrans.zoo.hub`).
    """
    from imtrans.zoo import hub

    if hub.is_hub_id(model):
        return hub.resolve(model, direction)
    if Path(model).exists():
        return model
    text = os.fspath(model)
    if text in _catalogue():
        entry = get(text)
        if direction != "a2b":
            other = f"use pretrained '{entry.reverse}' instead" if entry.reverse else "no model for the other way is listed"
            raise ImtransError(
                f"pretrained '{text}' translates one way only ({entry.source} -> {entry.target}, direction a2b); "
                f"for direction '{direction}' {other}"
            )
        path = ensure(text, progress=progress)
        genfile.check_parts(text, path)  # a plugin's generator that is missing: its `pip install`
        return path
    if _PLAIN.fullmatch(text) and not Path(text).suffix:
        from imtrans.suggest import suggest

        hint = _unregistered(text)
        if hint:
            raise ImtransError(hint)

        close = suggest(text, names())
        hint = ("; did you mean " + " or ".join(repr(c) for c in close) + "?") if close else ""
        raise ImtransError(
            f"'{text}' is neither an existing run directory or checkpoint nor a pretrained model name{hint} "
            "(see `imtrans pretrained list`)"
        )
    return model


#: parameters that do not change the weights' layout: fine-tuning may choose them freely
_FREE = FREE_PARAMS


def init_from_pretrained(net: Any, name: str, part: str, params: dict[str, Any]) -> None:
    """Load zoo model ``name`` into ``net`` (a ``part`` built with ``params``) to fine-tune it.

    What a generator's ``pretrained = "horse2zebra"`` parameter runs.  The
    entry's architecture must be the network's (apart from dropout and
    initialisation); otherwise one sentence names the first differing parameter.
    ``name`` may also be an ``hf-hub:owner/name[@revision]`` id.
    """
    from imtrans.zoo import hub

    if hub.is_hub_id(name):
        return hub.init_from_hub(net, name, part, params)
    from imtrans.engine.checkpoint import load_into, load_weights, read_meta
    from imtrans.registry import get_registry
    from imtrans.zoo.catalogue import describe_spec

    entry = get(name)
    path = ensure(name) if not entry.architecture else None  # an imtrans entry may leave its architecture to the file
    meta = read_meta(path) if path is not None else {}
    spec = meta["nets"][genfile.translating_net(meta, str(path))]["spec"] if path is not None else entry.architecture
    spec_part = str(spec["name"])
    reg = get_registry("generator")
    # compare with the entry's full architecture: the parameters it leaves out are the part's defaults
    full = {**(reg.get(spec_part).defaults() if spec_part in reg else {}), **spec}
    full.pop("name", None)
    wrong = [k for k, v in full.items() if k not in _FREE and k in params and params[k] != v]
    if spec_part != part or wrong:
        what = f"'{part}'" if spec_part != part else f"{wrong[0]}={params[wrong[0]]!r}"
        fix = f"{wrong[0]}={full[wrong[0]]!r}" if wrong and spec_part == part else f"the part '{spec_part}'"
        raise ImtransError(
            f"generator parameter pretrained='{name}' needs a {describe_spec(spec)} network but this "
            f"generator has {what}; use {fix}, or leave out pretrained"
        )
    path = path or ensure(name)
    meta = meta or read_meta(path)
    load_into(net, load_weights(path, genfile.translating_net(meta, str(path))), f"pretrained '{name}' ({path})")
