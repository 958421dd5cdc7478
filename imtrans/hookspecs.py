"""Hook specifications: the whole plugin API of imtrans.

A plugin is a module (or object) with functions marked ``@imtrans.hookimpl``
whose names match the hooks below; it is found through the entry-point group
``imtrans`` in its package metadata, or loaded from a ``--plugins-dir``.
Every ``register_*`` hook receives a ``register`` callback::

    register(name, factory, *, params=None, doc=None)

``factory`` is a class or function; its keyword parameters (with type hints)
become the part's parameter model unless ``params`` (a pydantic model) is
given.  ``register`` also works as a decorator: ``@register("name")``.  The
first line of the factory's docstring (or ``doc``) is what ``imtrans list``
shows.

A plugin may declare the imtrans plugin-API versions it supports with a
module attribute ``IMTRANS_API = [1]``; if none of them is
:data:`imtrans.plugins.API_VERSION`, the plugin is skipped with one message.
"""

import pluggy

hookspec = pluggy.HookspecMarker("imtrans")
hookimpl = pluggy.HookimplMarker("imtrans")


@hookspec
def register_generators(register):
    """Register generators (image -> image networks, output in [-1, 1])."""


@hookspec
def register_discriminators(register):
    """Register discriminators (image -> real/fake logits, usually a patch map)."""


@hookspec
def register_losses(register):
    """Register losses (``nn.Module`` factories; see docs/plugins.md for call conventions)."""


@hookspec
def register_augmentations(register):
    """Register augmentation presets (device-side kornia pipelines on [-1, 1] batches)."""


@hookspec
def register_d_augmentations(register):
    """Register discriminator augmentations: applied to every discriminator input, real and fake (see imtrans.d_augment)."""


@hookspec
def register_domains(register):
    """Register domains: image sources built as ``factory(split, **params)``."""


@hookspec
def register_schemes(register):
    """Register training schemes built as ``factory(recipe, **params)``."""


@hookspec
def register_feature_extractors(register):
    """Register feature extractors for FID/KID (``imtrans.eval.FeatureExtractor`` subclasses)."""


@hookspec
def register_pretrained(register):
    """Register pretrained translators for the model zoo: ``register(name, imtrans.zoo.Pretrained(...))``."""


@hookspec
def register_loggers(register):
    """Register metric loggers built as ``factory(run_dir, **params)`` (see :mod:`imtrans.engine.loggers`)."""


@hookspec
def register_commands(app):
    """Add commands to the ``imtrans`` CLI; ``app`` is the root ``typer.Typer``."""
