"""Training schemes (methods).  Each is a registered part built as ``factory(recipe, **params)``."""

from imtrans.schemes.base import Scheme
from imtrans.schemes.cyclegan import CycleGAN
from imtrans.schemes.pix2pix import Pix2Pix

SCHEMES = {"cyclegan": CycleGAN, "pix2pix": Pix2Pix}

__all__ = ["Scheme", "CycleGAN", "Pix2Pix", "SCHEMES"]
