"""Entry point of the ``textures`` plugin: registers the ``textures`` domain."""

from imtrans import hookimpl

from imtrans_textures import __version__  # noqa: F401  (shown by `imtrans plugins`)

#: plugin API versions this plugin is written for (imtrans skips it otherwise)
IMTRANS_API = [1]


@hookimpl
def register_domains(register):
    from imtrans_textures.domain import TexturesDomain

    register("textures", TexturesDomain)
