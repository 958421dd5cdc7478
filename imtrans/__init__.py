"""imtrans: a pluggable image-to-image translation toolkit.

CycleGAN (Zhu et al., 2017) assembled from registered parts by a TOML recipe.
"""

from imtrans._version import __version__
from imtrans.errors import ImtransError
from imtrans.hookspecs import hookimpl

__all__ = ["ImtransError", "hookimpl", "__version__", "load_recipe", "load_translator", "train"]

# The functions below are entry points, like the CLI: each loads the plugins (once; idempotent)
# before it reaches the layers that look parts up.  Nothing below the entry points loads plugins.


def load_translator(model, **kwargs):
    """Load a translator from a run directory, checkpoint or pretrained model name (see :mod:`imtrans.translate`)."""
    from imtrans.plugins import load_plugins
    from imtrans.translate import load_translator as _load

    load_plugins()  # the checkpoint's parts may come from plugins
    return _load(model, **kwargs)


def load_recipe(path, overrides=None, **kwargs):
    """Read and validate a recipe (a file, or ``"PACKAGE:NAME"`` shipped in a package such as ``"imtrans:quickstart"``),
    its ``extends`` chain and ``--set`` style ``overrides`` (see :mod:`imtrans.recipe`)."""
    from imtrans.plugins import load_plugins
    from imtrans.recipe import load_recipe as _load

    load_plugins()  # every part the recipe names is checked against its registered parameters
    return _load(path, overrides, **kwargs)


def train(recipe, **kwargs):
    """Train ``recipe`` (a :class:`~imtrans.recipe.Recipe`, a recipe file's path or ``"PACKAGE:NAME"``) and return the run's result.

    Keyword arguments go to :class:`imtrans.engine.trainer.Trainer` (``run_dir``, ``resume``, ...).
    """
    from imtrans.engine.trainer import Trainer
    from imtrans.plugins import load_plugins

    load_plugins()
    if not hasattr(recipe, "train"):
        recipe = load_recipe(recipe)
    return Trainer(recipe, **kwargs).fit()
