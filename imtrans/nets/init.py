"""Weight initialisation as in the official ``init_weights``.

Convolution and linear weights are drawn by ``init_type`` (with ``gain``
0.02 by default, which is also the standard deviation for ``normal``); their
biases are zeroed.  BatchNorm weights are drawn from N(1, gain) and their
biases zeroed.  Kaiming ignores ``gain`` (fan-in, ``a=0``), like the official
code.  Instance norm in our networks is not affine, so it has nothing to
initialise.
"""

from __future__ import annotations

from typing import Literal

from torch import nn

from imtrans.errors import ImtransError

InitName = Literal["normal", "xavier", "kaiming", "orthogonal"]
INITS: tuple[str, ...] = ("normal", "xavier", "kaiming", "orthogonal")


def init_weights(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """Initialise ``net`` in place like the official code and return it.

    Call this before :func:`imtrans.nets.blocks.apply_spectral_norm`, which
    replaces ``weight`` by a computed property.
    """
    if init_type not in INITS:
        raise ImtransError(f"unknown init '{init_type}'; use one of: {', '.join(INITS)}")

    def _init(m: nn.Module) -> None:
        # Official code matches on the class name ('Conv' / 'Linear'), which
        # also covers ConvTranspose2d; isinstance does the same, more robustly.
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            w = m.weight.data
            if init_type == "normal":
                nn.init.normal_(w, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(w, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(w, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(w, gain=gain)
            if m.bias is not None:
                nn.init.constant_(m.bias.data, 0.0)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight.data, 1.0, gain)
            nn.init.constant_(m.bias.data, 0.0)

    net.apply(_init)
    return net
