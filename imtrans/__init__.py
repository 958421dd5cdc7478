"""imtrans: a pluggable image-to-image translation toolkit.

CycleGAN (Zhu et al., 2017) assembled from registered parts by a TOML recipe.
"""

__version__ = "0.1.0"

from imtrans.errors import ImtransError  # noqa: E402
from imtrans.hookspecs import hookimpl  # noqa: E402

__all__ = ["ImtransError", "hookimpl", "__version__", "load_translator"]


def load_translator(model, **kwargs):
    """Load a translator from a run directory, checkpoint or pretrained model name (see :mod:`imtrans.translate`)."""
    from imtrans.translate import load_translator as _load

    return _load(model, **kwargs)
