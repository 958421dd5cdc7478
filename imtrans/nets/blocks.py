"""Building blocks shared by the generators and discriminators.

The layer order inside every block mirrors the official
pytorch-CycleGAN-and-pix2pix ``models/networks.py`` so that the
``state_dict`` keys of our networks are literally the official ones
(``model.10.conv_block.1.weight`` and so on).  That is what lets
:mod:`imtrans.nets.official` load published ``.pth`` files with an
(almost) identity key mapping.
"""

from __future__ import annotations

from typing import Callable, Literal

import torch
from torch import nn

from imtrans.errors import ImtransError

NormName = Literal["instance", "batch", "none"]
PaddingName = Literal["reflect", "replicate", "zero"]

NORMS: tuple[str, ...] = ("instance", "batch", "none")


def get_norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """A factory ``f(num_channels) -> nn.Module`` for the named normalisation.

    * ``instance``: ``InstanceNorm2d(affine=False, track_running_stats=False)``,
      exactly the current official choice (so instance norm has no parameters
      and no buffers in the ``state_dict``).
    * ``batch``: ``BatchNorm2d(affine=True)``.
    * ``none``: ``nn.Identity``.  An Identity still occupies a slot in an
      ``nn.Sequential``, which keeps the layer indices (and therefore the
      state_dict keys and the :meth:`encode` layer numbers) the same for all
      three choices.
    """
    if norm == "instance":
        return lambda c: nn.InstanceNorm2d(c, affine=False, track_running_stats=False)
    if norm == "batch":
        return lambda c: nn.BatchNorm2d(c, affine=True)
    if norm == "none":
        return lambda c: nn.Identity()
    raise ImtransError(f"unknown norm '{norm}'; use one of: {', '.join(NORMS)}")


def conv_bias(norm: str) -> bool:
    """Whether a convolution followed by ``norm`` should carry a bias.

    Official code sets ``use_bias`` only for instance norm: batch norm has its
    own learnable shift, so a conv bias before it is redundant.  Official code
    also drops the bias for ``norm='none'`` (its ``use_bias`` test only looks
    for InstanceNorm), which leaves those convolutions without any shift at
    all; we keep the bias there.  This is the one place where ``norm='none'``
    networks differ from the official ones (see docs/parts.md).
    """
    return norm in ("instance", "none")


def padding_layer(padding_type: str, amount: int) -> tuple[list[nn.Module], int]:
    """Explicit padding modules and the conv ``padding=`` that goes with them."""
    if padding_type == "reflect":
        return [nn.ReflectionPad2d(amount)], 0
    if padding_type == "replicate":
        return [nn.ReplicationPad2d(amount)], 0
    if padding_type == "zero":
        return [], amount
    raise ImtransError(f"unknown padding_type '{padding_type}'; use reflect, replicate or zero")


class ResnetBlock(nn.Module):
    """Residual block ``x + conv(pad(relu(norm(conv(pad(x))))))`` as in the official code.

    The inner layers live in ``self.conv_block`` (pad, conv, norm, relu,
    [dropout], pad, conv, norm) so checkpoint keys match the official ones.
    """

    def __init__(self, dim: int, padding_type: str, norm: str, dropout: bool, use_bias: bool):
        super().__init__()
        norm_layer = get_norm_layer(norm)
        layers: list[nn.Module] = []
        pad, p = padding_layer(padding_type, 1)
        layers += pad + [nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias), norm_layer(dim), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        pad, p = padding_layer(padding_type, 1)
        layers += pad + [nn.Conv2d(dim, dim, kernel_size=3, padding=p, bias=use_bias), norm_layer(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class UnetSkipBlock(nn.Module):
    """One level of the pix2pix U-Net: ``x -> [x, up(sub(down(x)))]`` (concatenated).

    The outermost level returns ``up(sub(down(x)))`` alone (with tanh).  The
    layout of ``self.model`` matches official ``UnetSkipConnectionBlock``:

    * outermost: ``[downconv, submodule, uprelu, upconv, tanh]``
    * middle:    ``[downrelu, downconv, downnorm, submodule, uprelu, upconv, upnorm, (dropout)]``
    * innermost: ``[downrelu, downconv, uprelu, upconv, upnorm]``

    ``down_len`` counts the layers before the submodule, which is what
    :meth:`UnetGenerator.encode` uses to read each level's encoder activation.
    """

    def __init__(
        self,
        outer_nc: int,
        inner_nc: int,
        input_nc: int | None = None,
        submodule: "UnetSkipBlock | None" = None,
        outermost: bool = False,
        innermost: bool = False,
        norm: str = "batch",
        dropout: bool = False,
    ):
        super().__init__()
        self.outermost = outermost
        self.innermost = innermost
        norm_layer = get_norm_layer(norm)
        use_bias = conv_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        downconv = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
        downrelu = nn.LeakyReLU(0.2, True)
        uprelu = nn.ReLU(True)
        if outermost:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            down: list[nn.Module] = [downconv]
            layers = down + [submodule, uprelu, upconv, nn.Tanh()]
        elif innermost:
            upconv = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            down = [downrelu, downconv]
            layers = down + [uprelu, upconv, norm_layer(outer_nc)]
        else:
            assert submodule is not None
            upconv = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=use_bias)
            down = [downrelu, downconv, norm_layer(inner_nc)]
            layers = down + [submodule, uprelu, upconv, norm_layer(outer_nc)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.down_len = len(down)
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)


def apply_spectral_norm(module: nn.Module) -> nn.Module:
    """Wrap the weight of every Conv/Linear layer in ``module`` with spectral normalisation.

    Uses ``torch.nn.utils.parametrizations.spectral_norm``; the parametrised
    weight is stored as ``...parametrizations.weight.original`` in the
    state_dict, so spectrally normalised networks have no official layout.
    """
    sn = torch.nn.utils.parametrizations.spectral_norm
    for m in list(module.modules()):
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            sn(m)
    return module
