"""The FID Inception weights: from a path, the cache folder, or a verified download.

The file is pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (the same
bytes torch-fidelity publishes as ``weights-inception-2015-12-05-6726825d.pth``):
a plain state dict of the TensorFlow graph's weights, 95,628,359 bytes, whose
sha256 is pinned below.  Resolution order:

1. an explicit path (any checksum loads, but a file other than the published
   one gets a warning; its checksum is recorded in every result);
2. ``<cache>/weights/pt_inception-2015-12-05-6726825d.pth`` where ``<cache>``
   is ``eval`` under the cache root of :mod:`imtrans.paths`;
3. a download into that cache (resumable, checked against the sha256 before
   it is renamed into place), unless ``download`` is false.

Offline, the error says in one sentence where to put the file.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Optional

import torch

from imtrans.errors import ImtransError
from imtrans.paths import HOME_ENV, cache_dir  # noqa: F401  (HOME_ENV: named here too)
from imtrans.statedict import check_keys, read_pth

FID_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
FID_WEIGHTS_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{FID_WEIGHTS_FILE}"
FID_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"


class WeightsUnavailableError(ImtransError):
    """The weights are not on this machine (no file, no cached copy, no download): the recipe may still be right.

    A plugin extractor raises it for the same case, so that ``imtrans check`` notes it instead of
    refusing the recipe and a run skips FID/KID with that sentence.
    """


class WeightsWarning(UserWarning):
    """Weights that load but are not the published file: results are not comparable with published ones."""


def eval_home() -> Path:
    """``eval`` under the cache root (:mod:`imtrans.paths`; the zoo's neighbour)."""
    return cache_dir("eval")


def cached_weights_path() -> Path:
    return eval_home() / "weights" / FID_WEIGHTS_FILE


def download_weights(dest: Path, url: str = FID_WEIGHTS_URL, sha256: str = FID_WEIGHTS_SHA256,
                     progress: bool = True, timeout: float = 60.0) -> Path:
    """Fetch ``url`` into ``dest`` (resumable, sha256-checked before the rename; the zoo's downloader)."""
    from imtrans.zoo.fetch import download

    dest.parent.mkdir(parents=True, exist_ok=True)
    download(url, dest, label=dest.name, sha256=sha256, progress=progress, timeout=timeout)
    return dest


def _sha256(path: Path) -> str:
    from imtrans.zoo.fetch import sha256_file

    return sha256_file(path)


def _offline_message(dest: Path, reason: str) -> str:
    return (f"the FID Inception weights are not in {dest.parent} and {reason}: download {FID_WEIGHTS_URL} "
            f"on a connected machine and put it at {dest} (or pass --weights FILE)")


def resolve_weights(path: Optional[str | os.PathLike] = None, *, download: bool = True,
                    url: str = FID_WEIGHTS_URL, progress: bool = True) -> tuple[Path, str]:
    """The weights file to use and its sha256 (see the module docstring for the order)."""
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise WeightsUnavailableError(f"FID weights file '{p}' does not exist; give the path of {FID_WEIGHTS_FILE}")
        digest = _sha256(p)
        if digest != FID_WEIGHTS_SHA256:
            warnings.warn(
                f"'{p}' is not the published {FID_WEIGHTS_FILE} (sha256 {digest[:12]}...); its FID/KID are "
                "labelled with that checksum and are not comparable with published numbers", WeightsWarning,
                stacklevel=2)
        return p, digest
    dest = cached_weights_path()
    if dest.is_file():
        digest = _sha256(dest)
        if digest != FID_WEIGHTS_SHA256:
            raise ImtransError(f"the cached FID weights '{dest}' have sha256 {digest}, not the published "
                               f"{FID_WEIGHTS_SHA256}; delete the file and run again")
        return dest, digest
    if not download:
        raise WeightsUnavailableError(_offline_message(dest, "downloads are off"))
    try:
        download_weights(dest, url=url, sha256=FID_WEIGHTS_SHA256, progress=progress)
    except ImtransError as e:
        if "sha256" in str(e):
            raise
        # "downloading 'URL' failed (reason); ..." -> "failed (reason)": the URL is named once, below.
        reason = re.sub(r"^downloading '.*?' ", "", str(e).split(";")[0])
        raise WeightsUnavailableError(_offline_message(dest, f"the download {reason}")) from None
    return dest, FID_WEIGHTS_SHA256


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """A ``.pth`` state dict read with ``weights_only=True`` (no code is unpickled)."""
    return read_pth(path, what="FID weights file", fix=f"pass {FID_WEIGHTS_FILE}")


def check_layout(sd: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: Path) -> dict[str, torch.Tensor]:
    """``sd`` with the keys and shapes of ``expected`` (batch-norm step counters filled in), else one clear error."""
    # ``num_batches_tracked`` counts training steps; files saved by old PyTorch versions lack it.
    out = {k: v for k, v in sd.items() if not k.endswith("num_batches_tracked")}
    want = {k: v for k, v in expected.items() if not k.endswith("num_batches_tracked")}
    check_keys(want, out, f"'{source}' is not the FID Inception-v3 layout",
               f"pass {FID_WEIGHTS_FILE} from pytorch-fid or torch-fidelity")
    for k, v in expected.items():
        if k.endswith("num_batches_tracked"):
            out[k] = sd.get(k, torch.zeros_like(v))
    return out


def load_inception_weights(net: torch.nn.Module, path: Optional[str | os.PathLike] = None, *,
                           download: bool = True) -> str:
    """Load the FID Inception weights into ``net`` (layout checked first); return the file's sha256."""
    return load_resolved_weights(net, *resolve_weights(path, download=download))


def load_resolved_weights(net: torch.nn.Module, path: Path, digest: str) -> str:
    """Load the file :func:`resolve_weights` returned (layout checked first, not hashed again); return ``digest``."""
    net.load_state_dict(check_layout(read_state_dict(path), net.state_dict(), path))
    return digest
