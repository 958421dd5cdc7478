"""Official ``.pth`` -> imtrans weights file, with the architecture metadata of a run's checkpoint.

The conversion is the one ``imtrans import-weights`` runs
(:func:`imtrans.nets.official.imported_weights`): the file is read with
``torch.load(..., weights_only=True)`` (never unpickled), its keys are mapped
to our layout, every key and shape is checked against the architecture the
catalogue entry declares, and the result is a safetensors file whose
``imtrans`` metadata names the network (``nets.G``), its direction
(``translators.a2b``) and the zoo entry it came from (``pretrained``).
"""

from __future__ import annotations

from pathlib import Path

from imtrans.errors import ImtransError
from imtrans.zoo.catalogue import Pretrained


class NotImportableError(ImtransError):
    """A zoo entry whose architecture has no importable official layout (yet)."""


class RefusedFileError(ImtransError):
    """A downloaded file that is truncated, corrupt or holds another architecture."""


def check_importable(name: str, entry: Pretrained) -> None:
    """Raise :class:`NotImportableError` before any download if ``entry``'s weights cannot be converted."""
    from imtrans.nets.official import OFFICIAL_LAYOUTS

    if entry.part not in OFFICIAL_LAYOUTS:
        raise NotImportableError(
            f"pretrained '{name}' is a {entry.describe_architecture()} network, and imtrans cannot import the "
            f"official weights of a '{entry.part}' part yet (importable parts: {', '.join(sorted(OFFICIAL_LAYOUTS))}); "
            "it is listed for reference and cannot be downloaded or used until that layout is added"
        )


def convert(name: str, entry: Pretrained, pth: Path, url: str) -> bytes:
    """The bytes of the imtrans weights file for ``entry`` from the official file ``pth``.

    A file that cannot be read as a tensor dict (truncated, corrupt, not a
    state_dict) or does not fit the declared architecture raises
    :class:`RefusedFileError` naming the first problem; the caller removes it.
    """
    from imtrans.nets.official import imported_weights

    check_importable(name, entry)
    extra = {
        "scheme": entry.scheme,
        "pretrained": {
            "name": name, "url": url, "source": entry.source, "target": entry.target,
            "dataset": entry.dataset, "paper": entry.paper, "licence": entry.licence,
        },
    }
    try:
        return imported_weights(pth, entry.part, entry.params, role=entry.kind, extra_meta=extra)
    except ImtransError as e:
        # The conversion's own advice ("build the part with other parameters") is for
        # hand imports; here the file itself is at fault, so keep only its finding.
        detail = str(e).split("; ")[0]
        raise RefusedFileError(
            f"the file downloaded for pretrained '{name}' from '{url}' was refused and removed from the cache "
            f"because it is truncated, corrupt or not a {entry.describe_architecture()} network ({detail})"
        ) from None
