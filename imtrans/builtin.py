"""The built-in plugin: registers imtrans's own parts through the public hooks.

It is an ordinary plugin (entry point ``builtin`` in the group ``imtrans``), so
third-party parts and ours are found, listed and built the same way.  Modules
are imported inside the hooks so that a plugin listing does not pay for what
it does not use.
"""

from imtrans.hookspecs import hookimpl


def _register_all(register, parts: dict) -> None:
    for name, factory in parts.items():
        register(name, factory)


@hookimpl
def register_generators(register):
    from imtrans.nets.generators import GENERATORS

    _register_all(register, GENERATORS)


@hookimpl
def register_discriminators(register):
    from imtrans.nets.discriminators import DISCRIMINATORS

    _register_all(register, DISCRIMINATORS)


@hookimpl
def register_losses(register):
    from imtrans.losses import LOSSES

    _register_all(register, LOSSES)


@hookimpl
def register_augmentations(register):
    from imtrans.augment import AUGMENTATIONS

    _register_all(register, AUGMENTATIONS)


@hookimpl
def register_d_augmentations(register):
    from imtrans.d_augment import D_AUGMENTATIONS

    _register_all(register, D_AUGMENTATIONS)


@hookimpl
def register_domains(register):
    from imtrans.data import DOMAINS

    _register_all(register, DOMAINS)


@hookimpl
def register_schemes(register):
    from imtrans.schemes import SCHEMES

    _register_all(register, SCHEMES)


@hookimpl
def register_feature_extractors(register):
    from imtrans.eval.features import FEATURE_EXTRACTORS

    _register_all(register, FEATURE_EXTRACTORS)


@hookimpl
def register_loggers(register):
    from imtrans.engine.loggers import LOGGERS

    _register_all(register, LOGGERS)


@hookimpl
def register_pretrained(register):
    from imtrans.zoo.catalogue import PRETRAINED

    _register_all(register, PRETRAINED)
