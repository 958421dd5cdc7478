"""A U-Net decoder over any timm encoder: the ``timm_unet`` generator (not in the official code)."""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from imtrans.errors import ImtransError
from imtrans.nets.blocks import NormName, conv_bias, get_norm_layer
from imtrans.nets.base import GeneratorBase
from imtrans.nets.init import InitName, init_weights


class _DecoderBlock(nn.Sequential):
    """Two 3x3 conv-norm-ReLU layers (optional dropout between them)."""

    def __init__(self, cin: int, cout: int, norm: str, dropout: bool):
        norm_layer = get_norm_layer(norm)
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(cin, cout, 3, padding=1, bias=bias), norm_layer(cout), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.Conv2d(cout, cout, 3, padding=1, bias=bias), norm_layer(cout), nn.ReLU(True)]
        super().__init__(*layers)


class TimmUnetGenerator(GeneratorBase):
    """U-Net decoder over any timm encoder (``features_only=True``), output at input resolution with tanh.

    The encoder is ``timm.create_model(encoder, features_only=True,
    in_chans=in_channels)``; its stage outputs (strides e.g. 2, 4, ..., 32)
    are decoded from the deepest up: each step upsamples bilinearly to the
    next shallower stage, concatenates it and applies two conv-norm-ReLU
    layers with ``min(ngf * 2**stage, 8 * ngf)`` channels.  A last step
    upsamples to the input size, concatenates the input image itself (a
    full-resolution skip) and maps to ``out_channels`` with a 3x3 conv and
    tanh.  With 3 input channels the encoder sees the image renormalised from
    [-1, 1] to the encoder's ImageNet mean/std (not stored in the state_dict).
    H and W must be divisible by the encoder's largest stride (32 for most).

    Feature interface: ``encode(x, layers)`` returns the encoder stage outputs
    by index (0 = shallowest timm feature, ``len(encoder.feature_info) - 1``
    the deepest).

    Parameters: ``encoder`` any timm model name that supports
    ``features_only``; ``pretrained`` loads timm's weights (needs network or a
    filled Hugging Face cache); ``pretrained_file`` a local weights file
    (``.safetensors``/``.pth``) to load instead, passed to timm as
    ``pretrained_cfg_overlay=dict(file=...)``; ``ngf`` decoder width; ``norm``
    and ``dropout`` for the decoder; ``init``/``init_gain`` for the decoder
    (the encoder keeps timm's init or its pretrained weights).
    """

    part_name = "timm_unet"

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        norm: NormName = "instance",
        dropout: bool = False,
        encoder: str = "resnet18",
        pretrained: bool = False,
        pretrained_file: str = "",
        init: InitName = "normal",
        init_gain: float = 0.02,
    ):
        super().__init__()
        import timm  # imported lazily: timm is slow to import and only this part needs it

        self.in_channels = in_channels
        self.out_channels = out_channels
        self.encoder_name = encoder
        if not timm.is_model(encoder):
            from imtrans.suggest import did_you_mean

            raise ImtransError(
                f"timm_unet encoder '{encoder}' is not a timm model{did_you_mean(encoder, timm.list_models())}; "
                f"see timm.list_models()"
            )
        kwargs: dict = dict(features_only=True, in_chans=in_channels)
        if pretrained_file:
            if not os.path.isfile(pretrained_file):
                raise ImtransError(
                    f"timm_unet pretrained_file '{pretrained_file}' does not exist; give the path of a local "
                    f"weights file (.safetensors or .pth) for encoder '{encoder}'"
                )
            kwargs.update(pretrained=True, pretrained_cfg_overlay=dict(file=pretrained_file))
        else:
            kwargs.update(pretrained=pretrained)
        try:
            self.encoder = timm.create_model(encoder, **kwargs)
        except Exception as e:  # noqa: BLE001 - any failure here is a weights/setup problem for the user
            if not kwargs["pretrained"]:
                raise
            raise ImtransError(
                f"could not load pretrained weights for timm encoder '{encoder}' ({type(e).__name__}: {e}); "
                f"without network, download them elsewhere and pass pretrained_file='path/to/weights.safetensors', "
                f"or copy them into the Hugging Face cache (HF_HOME) and set HF_HUB_OFFLINE=1"
            ) from e

        info = self.encoder.feature_info
        chs: list[int] = list(info.channels())
        reds: list[int] = list(info.reduction())
        self.size_multiple = max(reds)
        self.num_stages = len(chs)

        cfg = getattr(self.encoder, "pretrained_cfg", None) or {}
        mean = cfg.get("mean", (0.485, 0.456, 0.406))
        std = cfg.get("std", (0.229, 0.224, 0.225))
        self._renorm = in_channels == 3 and len(mean) == 3
        # Non-persistent: derived from the encoder config, not learned.
        self.register_buffer("_mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)

        widths = [min(ngf * 2**i, ngf * 8) for i in range(len(chs))]
        blocks = []
        cur = chs[-1]
        for i in range(len(chs) - 2, -1, -1):
            blocks.append(_DecoderBlock(cur + chs[i], widths[i], norm, dropout))
            cur = widths[i]
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Sequential(
            _DecoderBlock(cur + in_channels, ngf, norm, False),
            nn.Conv2d(ngf, out_channels, 3, padding=1),
            nn.Tanh(),
        )
        init_weights(self.decoder, init, init_gain)
        init_weights(self.head, init, init_gain)

    def _features(self, x: torch.Tensor) -> list[torch.Tensor]:
        if self._renorm:
            x = ((x + 1) * 0.5 - self._mean) / self._std
        return list(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x.shape[-2], x.shape[-1])
        feats = self._features(x)
        y = feats[-1]
        for block, skip in zip(self.decoder, reversed(feats[:-1])):
            y = F.interpolate(y, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            y = block(torch.cat([y, skip], 1))
        y = F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(torch.cat([y, x], 1))

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """Encoder stage outputs by index (see the class docstring)."""
        self.check_input_size(x.shape[-2], x.shape[-1])
        if not layers:
            return []
        self._check_layers(layers, self.num_stages, "encoder stage")
        feats = self._features(x)
        return [feats[int(i)] for i in layers]
