"""Entry point of the ``cut`` plugin: registers the ``patchnce`` loss and the ``cut`` scheme.

Modules are imported inside the hooks so that listing plugins stays cheap.
"""

from imtrans import hookimpl

from imtrans_cut import __version__  # noqa: F401  (shown by `imtrans plugins`)

#: plugin API versions this plugin is written for (imtrans skips it otherwise)
IMTRANS_API = [1]


@hookimpl
def register_losses(register):
    from imtrans_cut.patchnce import PatchNCELoss

    register("patchnce", PatchNCELoss)


@hookimpl
def register_schemes(register):
    from imtrans_cut.scheme import CUT

    register("cut", CUT)
