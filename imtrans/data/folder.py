"""Domains backed by image files: a plain folder, and the standard unpaired layout."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

from PIL import Image
from pydantic import Field

from imtrans.data.imageio import IMAGE_EXTENSIONS, list_images, open_rgb
from imtrans.errors import ImtransError


class FolderDomain:
    """All images under a folder (recursively by default), in sorted path order.

    ``split`` is accepted for the domain contract but not used: the folder *is*
    the split.  Indices follow the sorted relative paths, so they are stable
    across machines.  ``limit`` keeps only the first ``limit`` of them: the same
    subset on every machine (limited-data experiments).
    """

    def __init__(self, split: str, path: str, recursive: bool = True, limit: Optional[int] = None):
        root = Path(path).expanduser()
        if not root.exists():
            raise ImtransError(f"image folder '{root}' does not exist; check the path")
        if not root.is_dir():
            raise ImtransError(f"'{root}' is a file, not a folder of images; give its folder")
        self.split = split
        self.root = root
        self.recursive = recursive
        self.paths: list[Path] = list_images(root, recursive=recursive)[:limit]
        if not self.paths:
            where = "under" if recursive else "directly in"
            raise ImtransError(
                f"no images found {where} '{root}' (looked for {', '.join(IMAGE_EXTENSIONS)}); "
                "put images there or point to another folder"
            )

    def __len__(self) -> int:
        return len(self.paths)

    def load(self, i: int) -> Image.Image:
        """Decode image ``i`` as RGB (raises :class:`~imtrans.data.imageio.ImageDecodeError`)."""
        return open_rgb(self.paths[i])

    def name(self, i: int) -> str:
        """Path of image ``i`` relative to the folder, with ``/`` separators."""
        return self.paths[i].relative_to(self.root).as_posix()

    def __repr__(self) -> str:
        return f"FolderDomain('{self.root}', {len(self)} images)"


#: at least one image, when a limit is given
Limit = Optional[Annotated[int, Field(ge=1)]]


def folder(split: str, path: str, recursive: bool = True, limit: Limit = None) -> FolderDomain:
    """Every image under a folder (``path``), searched recursively unless ``recursive=false``.

    ``limit``: only the first N images in sorted path order (a deterministic subset).
    """
    return FolderDomain(split, path, recursive=recursive, limit=limit)


def _candidates(split: str, side: str) -> list[str]:
    up, lo = side.upper(), side.lower()
    # The official layout is trainA/testB; the other spellings are common in forks.
    return [f"{split}{up}", f"{split}_{up}", f"{split}_{lo}", f"{split}{lo}"]


def layout(split: str, root: str, side: Literal["a", "b"], dataset: str = "", limit: Limit = None) -> FolderDomain:
    """One side of the standard unpaired layout ROOT/{trainA,trainB,testA,testB}.

    ``train_A`` and ``train_a`` spellings are accepted too.  ``dataset`` (e.g.
    ``horse2zebra``) only improves the error message when the folder is missing:
    it then names the download command.  ``limit``: only the first N images in
    sorted path order (a deterministic subset, e.g. 100 per side for limited-data runs).
    """
    base = Path(root).expanduser()
    names = _candidates(split, side)
    for n in names:
        if (base / n).is_dir():
            return FolderDomain(split, str(base / n), limit=limit)
    missing = base / names[0]
    msg = f"dataset folder '{missing}' not found (also looked for {', '.join(names[1:])})"
    if dataset:
        parent = base.parent.as_posix() if base.name == dataset else base.as_posix()
        msg += f"; download it with `imtrans data download {dataset} --root {parent}`"
    else:
        msg += f"; create it or set 'root' to a folder containing {names[0]}"
    raise ImtransError(msg)
