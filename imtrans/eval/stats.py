"""Cached features of reference image sets, so repeated evaluations pay only for the translated side.

A set's features are stored in ``<cache>/stats/<key>.safetensors`` (``<cache>``
as for the weights: ``$IMTRANS_HOME/eval`` or the platform cache).  The key
is a sha256 of

* the set's content: for image folders, every file's relative name and the
  sha256 of its bytes (renaming, adding, removing or editing a file changes
  it; copying the folder elsewhere does not); for generated domains
  (``synthetic``), the part spec, split and length;
* the extractor's :meth:`~imtrans.eval.features.FeatureExtractor.identity`
  (name, weights checksum, resize mode, dimension) and any preprocessing
  applied before it (``--size``), plus the feature precision.

The features themselves are kept (float32, as the network produced them), not
only their mean and covariance, because KID needs them; a 120-image split
takes 1 MB.  Writes are atomic, and an unreadable cache file is recomputed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
import torch

from imtrans.eval.weights import eval_home
from imtrans.registry import record_of
from imtrans.zoo.fetch import sha256_file

log = logging.getLogger("imtrans.eval")

FORMAT = 1


def stats_dir() -> Path:
    return eval_home() / "stats"


def set_fingerprint(domain: Any) -> Optional[str]:
    """A content hash of an image set (``None`` when it cannot be told, e.g. a plugin's domain)."""
    h = hashlib.sha256()
    paths, root = getattr(domain, "paths", None), getattr(domain, "root", None)
    if paths is not None and root is not None:
        h.update(b"files\0")
        for p in paths:
            p = Path(p)
            try:
                digest = sha256_file(p)
            except OSError:
                digest = "unreadable"  # the set's result will list it as skipped; still a stable key
            h.update(Path(p).relative_to(root).as_posix().encode() + b"\0" + digest.encode() + b"\n")
        return h.hexdigest()
    rec = record_of(domain)
    if rec is not None and rec.kind == "domain":
        payload = {"spec": rec.spec, "split": getattr(domain, "split", None), "n": len(domain)}
        h.update(b"spec\0" + json.dumps(payload, sort_keys=True, default=str).encode())
        return h.hexdigest()
    return None


def cache_key(fingerprint: str, identity: dict[str, Any], extra: Optional[dict[str, Any]] = None) -> str:
    payload = {"format": FORMAT, "set": fingerprint, "extractor": identity, "extra": extra or {}}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def load_features(key: str) -> Optional[np.ndarray]:
    path = stats_dir() / f"{key}.safetensors"
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    try:
        return load_file(str(path))["features"].double().numpy()
    except Exception as e:  # noqa: BLE001 - a broken cache entry is recomputed, never fatal
        log.warning("ignoring unreadable cached features %s (%s); recomputing", path, e)
        return None


def save_features(key: str, feats: np.ndarray, meta: dict[str, Any]) -> Path:
    from safetensors.torch import save

    from imtrans.atomic import atomic_write_bytes

    path = stats_dir() / f"{key}.safetensors"
    data = save({"features": torch.from_numpy(np.ascontiguousarray(feats, dtype=np.float32))},
                metadata={"imtrans_eval": json.dumps(meta, default=str)})
    atomic_write_bytes(path, data)
    return path


def cached_features(domain: Any, identity: dict[str, Any], compute: Callable[[], np.ndarray],
                    extra: Optional[dict[str, Any]] = None, use_cache: bool = True) -> tuple[np.ndarray, bool]:
    """``(features, came_from_cache)`` of ``domain``; ``compute()`` runs on a miss and its result is stored.

    Only complete results are stored: ``compute`` should raise rather than
    return features of a partly unreadable set it wants recomputed later.
    """
    fp = set_fingerprint(domain) if use_cache else None
    if fp is None:
        return compute(), False
    key = cache_key(fp, identity, extra)
    hit = load_features(key)
    if hit is not None:
        return hit, True
    feats = compute()
    # Stored as float32 (what the network produced), so a later hit gives the same numbers bit for bit.
    feats = feats.astype(np.float32).astype(np.float64)
    save_features(key, feats, {"extractor": identity, "extra": extra or {}, "n": len(feats), "set": repr(domain)})
    return feats, False
