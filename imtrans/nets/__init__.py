"""Network parts: generators, discriminators, their blocks, init and official-weight mapping.

``GENERATORS`` and ``DISCRIMINATORS`` map part names to classes; the
built-in plugin registers them.  See docs/parts.md for every parameter.
"""

from imtrans.nets.discriminators import DISCRIMINATORS
from imtrans.nets.generators import GENERATORS, GeneratorBase
from imtrans.nets.init import init_weights

__all__ = ["GENERATORS", "DISCRIMINATORS", "GeneratorBase", "init_weights"]
