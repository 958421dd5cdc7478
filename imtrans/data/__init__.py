"""Data: image decoding, domains (image sources), the unpaired and paired datasets and dataset download.

``DOMAINS`` maps the built-in domain names to factories called as
``factory(split, **params)`` with ``split`` in {"train", "test"}; see
``docs/data.md`` and ``docs/CONTRACTS.md``.
"""

from imtrans.data.folder import FolderDomain, folder, layout
from imtrans.data.imageio import (
    IMAGE_EXTENSIONS,
    ImageDecodeError,
    list_images,
    open_rgb,
    pil_to_uint8_tensor,
    tensor_to_pil,
)
from imtrans.data.paired import aligned, paired_folders
from imtrans.data.synthetic import SyntheticDomain
from imtrans.data.synthetic_paired import synthetic_paired

DOMAINS = {
    "folder": folder,
    "layout": layout,
    "synthetic": SyntheticDomain,
    # paired sources (load_pair): read by PairedDataset for paired schemes such as pix2pix
    "aligned": aligned,
    "paired_folders": paired_folders,
    "synthetic_paired": synthetic_paired,
}

__all__ = [
    "DOMAINS",
    "FolderDomain",
    "IMAGE_EXTENSIONS",
    "ImageDecodeError",
    "SyntheticDomain",
    "folder",
    "layout",
    "list_images",
    "open_rgb",
    "pil_to_uint8_tensor",
    "tensor_to_pil",
]
