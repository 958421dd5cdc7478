"""Generators: ``resnet`` and ``unet`` (official layouts) and ``timm_unet``.

Every generator maps ``[B, in_channels, H, W]`` in [-1, 1] to
``[B, out_channels, H, W]`` in [-1, 1] (tanh), exposes ``in_channels``,
``out_channels`` and ``size_multiple``, checks the input size with
:meth:`check_input_size` at the start of ``forward`` and offers the feature
interface ``encode(x, layers)`` used by feature losses such as PatchNCE.
"""

from __future__ import annotations


import torch
from torch import nn

from imtrans.errors import ImtransError
from imtrans.nets.base import GeneratorBase  # noqa: F401  (defined there; imported from here too)
from imtrans.nets.blocks import (
    NormName,
    PaddingName,
    ResnetBlock,
    UnetSkipBlock,
    conv_bias,
    get_norm_layer,
)
from imtrans.nets.init import InitName, init_weights


class ResnetGenerator(GeneratorBase):
    """ResNet generator of CycleGAN (official ``ResnetGenerator``): 2 downsamplings, residual blocks, 2 upsamplings.

    Layout of ``self.model`` (an ``nn.Sequential``; indices are also the
    official state_dict key numbers): 0 reflect-pad 3, 1 conv 7x7, 2 norm,
    3 ReLU, 4 conv stride 2, 5 norm, 6 ReLU, 7 conv stride 2, 8 norm, 9 ReLU,
    10 .. 9+n_blocks residual blocks, then per upsampling a transposed conv,
    norm and ReLU, then reflect-pad 3, conv 7x7 and tanh.

    Feature interface: ``encode(x, layers)`` returns, for each index ``i`` in
    ``layers`` (in the order given), the output of ``self.model[i]`` when the
    sequential is run in order starting from the input, exactly like the
    ``layers`` argument of the CUT code (the input itself is not an entry:
    index 0 is the output of the first reflection pad).  The pass stops after
    the largest requested index.  CUT's defaults ``0, 4, 8, 12, 16`` are valid
    here; note CUT inserts anti-aliasing ``Downsample`` layers by default, so
    with this (official CycleGAN) layout they point at slightly different
    depths (4 = first strided conv, 8 = second downsampling norm, 12 and 16 =
    the 3rd and 7th residual blocks).

    Parameters: ``in_channels``/``out_channels`` image channels; ``ngf``
    filters of the first conv; ``norm`` instance | batch | none; ``dropout``
    0.5 dropout inside residual blocks; ``n_blocks`` residual blocks (9 for
    256 px images, 6 for 128 px in the official recipes); ``padding_type``
    padding inside residual blocks; ``init``/``init_gain`` weight init;
    ``pretrained`` a model-zoo name (``imtrans pretrained list``) whose
    weights replace the initialisation, for fine-tuning (loaded by
    :func:`imtrans.build.build_part` after the network is built).
    """

    part_name = "resnet"
    #: the parameters that decide the weights' layout (what a zoo model to fine-tune from must match)
    layout_params = ("in_channels", "out_channels", "ngf", "norm", "n_blocks", "padding_type")
    size_multiple = 4
    # Reflection padding of 1 inside the residual blocks needs at least 2x2
    # activations at the bottleneck, i.e. 8x8 input.
    min_size = 8

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        norm: NormName = "instance",
        dropout: bool = False,
        n_blocks: int = 9,
        padding_type: PaddingName = "reflect",
        init: InitName = "normal",
        init_gain: float = 0.02,
        pretrained: str = "",
    ):
        super().__init__()
        if n_blocks < 0:
            raise ImtransError(f"resnet generator needs n_blocks >= 0; got {n_blocks}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.n_blocks = n_blocks
        norm_layer = get_norm_layer(norm)
        use_bias = conv_bias(norm)

        layers: list[nn.Module] = [
            nn.ReflectionPad2d(3),
            nn.Conv2d(in_channels, ngf, kernel_size=7, padding=0, bias=use_bias),
            norm_layer(ngf),
            nn.ReLU(True),
        ]
        n_down = 2
        for i in range(n_down):
            c = ngf * 2**i
            layers += [
                nn.Conv2d(c, c * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
                norm_layer(c * 2),
                nn.ReLU(True),
            ]
        c = ngf * 2**n_down
        layers += [ResnetBlock(c, padding_type, norm, dropout, use_bias) for _ in range(n_blocks)]
        for i in range(n_down):
            c = ngf * 2 ** (n_down - i)
            layers += [
                # output_padding=1 makes each step an exact x2 upsampling.
                nn.ConvTranspose2d(c, c // 2, kernel_size=3, stride=2, padding=1, output_padding=1, bias=use_bias),
                norm_layer(c // 2),
                nn.ReLU(True),
            ]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_weights(self, init, init_gain)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x.shape[-2], x.shape[-1])
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """Outputs of ``self.model[i]`` for each ``i`` in ``layers`` (see the class docstring)."""
        self.check_input_size(x.shape[-2], x.shape[-1])
        if not layers:
            return []
        self._check_layers(layers, len(self.model), "layer")
        wanted = {int(i) for i in layers}
        last = max(wanted)
        found: dict[int, torch.Tensor] = {}
        feat = x
        for i, layer in enumerate(self.model):
            feat = layer(feat)
            if i in wanted:
                found[i] = feat
            if i == last:  # nothing deeper is needed: skip the decoder
                break
        return [found[int(i)] for i in layers]


class UnetGenerator(GeneratorBase):
    """U-Net generator of pix2pix (official ``UnetGenerator``): ``num_downs`` stride-2 levels with skip connections.

    ``num_downs=8`` takes 256x256 to a 1x1 bottleneck (official ``unet_256``),
    ``num_downs=7`` is ``unet_128``.  The nested blocks are stored as
    ``model.model.1.model.3...`` exactly as in the official code.  H and W must
    be divisible by ``2**num_downs``.

    Feature interface: ``encode(x, layers)`` returns encoder activations by
    level: index ``i`` (0 <= i < num_downs) is the output of the ``i``-th
    downsampling step (its strided conv, followed by its norm on the middle
    levels), i.e. a map of size H/2**(i+1); 0 is the outermost level and
    ``num_downs - 1`` the bottleneck.  The pass stops at the deepest requested
    level and never runs the decoder.

    Parameters: ``in_channels``/``out_channels``; ``ngf`` filters at the
    outermost level (capped at 8*ngf deeper); ``norm`` (pix2pix uses batch);
    ``dropout`` 0.5 dropout in the ``num_downs - 5`` innermost middle levels
    (as official); ``num_downs`` levels (>= 5); ``init``/``init_gain``;
    ``residual`` (not in the official code): output ``clamp(x + 2 * net(x))``, so the
    network only draws the change and unchanged pixels pass through exactly.
    ``pretrained`` a model-zoo name whose weights replace the initialisation (see ``resnet``).
    """

    part_name = "unet"
    layout_params = ("in_channels", "out_channels", "ngf", "norm", "num_downs")

    def __init__(
        self,
        in_channels: int = 3,
        out_channels: int = 3,
        ngf: int = 64,
        norm: NormName = "instance",
        dropout: bool = False,
        num_downs: int = 8,
        init: InitName = "normal",
        init_gain: float = 0.02,
        residual: bool = False,
        pretrained: str = "",
    ):
        super().__init__()
        if num_downs < 5:
            raise ImtransError(f"unet generator needs num_downs >= 5; got {num_downs}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.num_downs = num_downs
        self.size_multiple = 2**num_downs
        block = UnetSkipBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, dropout=dropout)
        block = UnetSkipBlock(ngf * 4, ngf * 8, submodule=block, norm=norm)
        block = UnetSkipBlock(ngf * 2, ngf * 4, submodule=block, norm=norm)
        block = UnetSkipBlock(ngf, ngf * 2, submodule=block, norm=norm)
        self.model = UnetSkipBlock(out_channels, ngf, input_nc=in_channels, submodule=block, outermost=True, norm=norm)
        init_weights(self, init, init_gain)
        if residual and in_channels != out_channels:
            raise ImtransError(
                f"unet generator: residual = true needs in_channels == out_channels; got {in_channels} and {out_channels}"
            )
        self.residual = residual
        if residual:
            # Start as an exact copy of the input: the last layer draws no change until
            # training asks for one (its weights still get gradients, so it learns at once).
            last = self.model.model[-2]
            nn.init.zeros_(last.weight)
            if last.bias is not None:
                nn.init.zeros_(last.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input_size(x.shape[-2], x.shape[-1])
        if self.residual:
            # The network draws a change on top of the input (twice tanh's range, so a
            # pixel can move across the whole [-1, 1]); clamping keeps the output range.
            return (x + 2 * self.model(x)).clamp(-1, 1)
        return self.model(x)

    def encode(self, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
        """Encoder activations per level (see the class docstring)."""
        self.check_input_size(x.shape[-2], x.shape[-1])
        if not layers:
            return []
        self._check_layers(layers, self.num_downs, "encoder level")
        wanted = {int(i) for i in layers}
        found: dict[int, torch.Tensor] = {}
        block: nn.Module = self.model
        feat = x
        for level in range(max(wanted) + 1):
            # Run only the "down" half of this level; its submodule (the next
            # level) sits right after it in block.model.
            for j in range(block.down_len):
                feat = block.model[j](feat)
            if level in wanted:
                found[level] = feat
            if not block.innermost:
                block = block.model[block.down_len]
        return [found[int(i)] for i in layers]


from imtrans.nets.timm_unet import TimmUnetGenerator  # noqa: E402

GENERATORS = {
    "resnet": ResnetGenerator,
    "unet": UnetGenerator,
    "timm_unet": TimmUnetGenerator,
}
