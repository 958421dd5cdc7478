"""Where imtrans keeps files between runs: one cache root for the zoo, the FID weights and ONNX graphs.

``$IMTRANS_HOME`` when set, else this platform's per-user cache folder
(``platformdirs``: ``~/.cache/imtrans`` on Linux or ``$XDG_CACHE_HOME/imtrans``,
``~/Library/Caches/imtrans`` on macOS, ``%LOCALAPPDATA%\\imtrans\\Cache`` on Windows).
Each user of the cache takes one sub-folder: ``pretrained``, ``eval``, ``onnx``.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

#: root of everything imtrans keeps between runs (the zoo lives in ``$IMTRANS_HOME/pretrained``)
HOME_ENV = "IMTRANS_HOME"


def platform_cache_dir() -> Path:
    """This platform's per-user cache folder for imtrans (without ``$IMTRANS_HOME``)."""
    return Path(platformdirs.user_cache_dir("imtrans", appauthor=False))


def cache_root() -> Path:
    """``$IMTRANS_HOME``, else :func:`platform_cache_dir`."""
    home = os.environ.get(HOME_ENV)
    return Path(home).expanduser() if home else platform_cache_dir()


def cache_dir(name: str) -> Path:
    """The sub-folder ``name`` of the cache root (``pretrained``, ``eval``, ``onnx``); not created here."""
    return cache_root() / name
