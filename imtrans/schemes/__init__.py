"""Training schemes (methods).  Each is a registered part built as ``factory(recipe, **params)``."""

from imtrans.schemes.base import Scheme
from imtrans.schemes.cyclegan import CycleGAN

SCHEMES = {"cyclegan": CycleGAN}

__all__ = ["Scheme", "CycleGAN", "SCHEMES"]
