"""Discriminators: ``patchgan`` and ``pixelgan`` (official layouts) and ``multiscale``.

All return raw logits (no sigmoid); the GAN loss in :mod:`imtrans.losses`
decides how to read them.  ``patchgan`` and ``pixelgan`` return one map
``[B, 1, h, w]``; ``multiscale`` returns a list of maps, finest first.
"""

from __future__ import annotations

import torch
from torch import nn

from imtrans.errors import ImtransError
from imtrans.nets.blocks import NormName, apply_spectral_norm, conv_bias, get_norm_layer
from imtrans.nets.init import InitName, init_weights


class PatchGANDiscriminator(nn.Module):
    """PatchGAN discriminator (official ``NLayerDiscriminator``): a map of real/fake logits, one per 70x70 patch at n_layers=3.

    Layout of ``self.model`` (official key numbers): conv 4x4 stride 2 +
    LeakyReLU(0.2); ``n_layers - 1`` times conv 4x4 stride 2 + norm +
    LeakyReLU with channels doubling up to 8*ndf; conv 4x4 stride 1 + norm +
    LeakyReLU; conv 4x4 stride 1 to one channel.  The receptive field is 16,
    34, 70, 142 px for n_layers 1, 2, 3, 4.

    Parameters: ``in_channels`` (6 for a conditional pix2pix D that sees
    input and output stacked); ``ndf`` filters of the first conv;
    ``n_layers`` strided layers; ``norm`` instance (official CycleGAN
    default ``--norm instance``) | batch | none; ``spectral_norm`` wraps every
    conv (goes beyond the official code); ``init``/``init_gain``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: NormName = "instance",
        spectral_norm: bool = False,
        init: InitName = "normal",
        init_gain: float = 0.02,
    ):
        super().__init__()
        if n_layers < 1:
            raise ImtransError(f"patchgan discriminator needs n_layers >= 1; got {n_layers}")
        self.in_channels = in_channels
        self.n_layers = n_layers
        norm_layer = get_norm_layer(norm)
        use_bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=2, padding=1, bias=use_bias),
                norm_layer(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, 4, stride=1, padding=1, bias=use_bias),
            norm_layer(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1),
        ]
        self.model = nn.Sequential(*layers)
        init_weights(self, init, init_gain)
        if spectral_norm:
            apply_spectral_norm(self)

    def output_size(self, s: int) -> int:
        """Side of the logit map for an input side ``s`` (pure arithmetic)."""
        for _ in range(self.n_layers):
            s = (s + 2 - 4) // 2 + 1
        return s - 2  # two stride-1 4x4 convs with padding 1 each lose one pixel

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2], x.shape[-1]
        if self.output_size(h) < 1 or self.output_size(w) < 1:
            raise ImtransError(
                f"patchgan discriminator with n_layers={self.n_layers} gets an empty output for a {h}x{w} image; "
                f"use larger images or fewer n_layers"
            )
        return self.model(x)


class PixelGANDiscriminator(nn.Module):
    """1x1 PixelGAN discriminator (official ``PixelDiscriminator``): a real/fake logit per pixel.

    ``self.net``: conv 1x1 + LeakyReLU, conv 1x1 to 2*ndf + norm + LeakyReLU,
    conv 1x1 to one channel.  As official, the two later convs carry a bias
    only with instance norm (and, here, with ``norm='none'``).

    Parameters: ``in_channels``; ``ndf``; ``norm``; ``spectral_norm`` (beyond
    the official code); ``init``/``init_gain``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        norm: NormName = "instance",
        spectral_norm: bool = False,
        init: InitName = "normal",
        init_gain: float = 0.02,
    ):
        super().__init__()
        self.in_channels = in_channels
        norm_layer = get_norm_layer(norm)
        use_bias = conv_bias(norm)
        # Named ``net`` (not ``model``) because that is the official key prefix.
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=use_bias),
            norm_layer(ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=use_bias),
        )
        init_weights(self, init, init_gain)
        if spectral_norm:
            apply_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiscaleDiscriminator(nn.Module):
    """Multi-scale PatchGAN (pix2pixHD style): ``num_scales`` patchgans on an image pyramid; returns a list of logit maps.

    Scale ``k`` sees the image average-pooled ``k`` times (3x3, stride 2,
    padding 1, padding not counted), so coarser scales judge larger
    structures.  The list is ordered finest first; the GAN loss averages over
    it.  Not in the official CycleGAN code (no official weights layout).

    Parameters: ``in_channels``; ``ndf``, ``n_layers``, ``norm`` and
    ``spectral_norm`` of each patchgan; ``num_scales``; ``init``/``init_gain``.
    """

    def __init__(
        self,
        in_channels: int = 3,
        ndf: int = 64,
        n_layers: int = 3,
        norm: NormName = "instance",
        num_scales: int = 3,
        spectral_norm: bool = False,
        init: InitName = "normal",
        init_gain: float = 0.02,
    ):
        super().__init__()
        if num_scales < 1:
            raise ImtransError(f"multiscale discriminator needs num_scales >= 1; got {num_scales}")
        self.in_channels = in_channels
        self.scales = nn.ModuleList(
            PatchGANDiscriminator(in_channels, ndf, n_layers, norm, spectral_norm, init, init_gain)
            for _ in range(num_scales)
        )
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for k, d in enumerate(self.scales):
            if k:
                x = self.downsample(x)
            out.append(d(x))
        return out


DISCRIMINATORS = {
    "patchgan": PatchGANDiscriminator,
    "pixelgan": PixelGANDiscriminator,
    "multiscale": MultiscaleDiscriminator,
}
