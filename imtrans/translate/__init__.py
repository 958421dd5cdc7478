"""Translating images with a trained generator: Python API, tiling, export.

* :func:`load_translator` / :class:`Translator`: images and folders (``imtrans translate``);
* :mod:`imtrans.translate.tiling`: padding and seam-free tiled inference;
* :mod:`imtrans.translate.export`: ONNX / torch.export (.pt2) export (``imtrans export``).
"""

from imtrans.translate.batch import TranslateReport
from imtrans.translate.translator import Translator, load_translator

__all__ = ["Translator", "TranslateReport", "load_translator"]
