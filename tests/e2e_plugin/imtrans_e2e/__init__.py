"""imtrans-e2e-example: one part of each kind a researcher adds, written from docs/plugins.md only.

A perceptual loss on a frozen timm backbone, a spectral-norm PatchGAN, a discriminator
augmentation, an FID feature extractor and a pretrained entry; its recipes ship inside the
package (``imtrans_e2e/recipes``) and extend imtrans's own.
"""

from __future__ import annotations

import os
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from imtrans import hookimpl

__version__ = "0.3.0"
IMTRANS_API = [1]


class PerceptualLoss(nn.Module):
    """L1 between frozen timm-backbone features of the translation and of its source.

    ``backbone``: a timm model name; ``layer``: which feature stage; ``seed``: the backbone's
    weights are drawn from this seed (a stand-in for pretrained weights, which a test cannot
    download), so rebuilding the loss from its spec gives the same backbone every time.
    """

    default_weight = 1.0
    term_kind = "pixel"

    def __init__(self, backbone: str = "resnet10t", layer: Annotated[int, Field(ge=0, le=4)] = 1, seed: int = 0):
        super().__init__()
        import timm

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.backbone = timm.create_model(backbone, pretrained=False, features_only=True, out_indices=(layer,))
        self.backbone.requires_grad_(False)
        self.backbone.eval()

    def train(self, mode: bool = True) -> "PerceptualLoss":
        # the backbone never trains: its batch norms keep their statistics whatever mode the scheme sets
        super().train(mode)
        self.backbone.eval()
        return self

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        (f_pred,) = self.backbone(pred)
        (f_target,) = self.backbone(target)
        return (f_pred - f_target.detach()).abs().mean()


class SNPatchGAN(nn.Module):
    """A PatchGAN without normalisation layers, every convolution spectrally normalised (Miyato et al. 2018)."""

    def __init__(self, in_channels: int = 3, ndf: Annotated[int, Field(ge=1)] = 64,
                 n_layers: Annotated[int, Field(ge=1, le=5)] = 3):
        super().__init__()
        self.in_channels = in_channels
        sn = nn.utils.parametrizations.spectral_norm
        layers: list[nn.Module] = [sn(nn.Conv2d(in_channels, ndf, 4, 2, 1)), nn.LeakyReLU(0.2)]
        ch = ndf
        for i in range(1, n_layers + 1):
            out = ndf * min(2 ** i, 8)
            layers += [sn(nn.Conv2d(ch, out, 4, 2 if i < n_layers else 1, 1)), nn.LeakyReLU(0.2)]
            ch = out
        layers.append(sn(nn.Conv2d(ch, 1, 4, 1, 1)))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class RandomShift(nn.Module):
    """Shift each image by up to ``ratio`` of its size with zero fill: a differentiable discriminator augmentation."""

    def __init__(self, ratio: Annotated[float, Field(gt=0, le=0.5)] = 0.125):
        super().__init__()
        self.ratio = ratio

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        limit = torch.tensor([w, h], device=x.device) * self.ratio
        shift = (torch.rand(b, 2, device=x.device) * 2 - 1) * limit  # pixels, per image
        theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
        theta[:, 0, 0] = theta[:, 1, 1] = 1
        theta[:, :, 2] = (2 * shift.round() / torch.tensor([w, h], device=x.device)).to(x.dtype)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def _colour_stats_factory():
    from imtrans.eval import FeatureExtractor

    class ColourStats(FeatureExtractor):
        """Per-channel means and standard deviations at ``levels`` scales: a tiny FID feature extractor."""

        def __init__(self, levels: Annotated[int, Field(ge=1, le=4)] = 2, size: Annotated[int, Field(ge=8)] = 32):
            super().__init__(weights_sha256="no-weights", resize=f"bilinear-{size}")
            self.levels, self.size = levels, size
            self.dim = 6 * levels

        def preprocess(self, image: torch.Tensor) -> torch.Tensor:
            x = image.float().unsqueeze(0) / 127.5 - 1
            return F.interpolate(x, size=(self.size, self.size), mode="bilinear", antialias=True)[0]

        def features(self, x: torch.Tensor) -> torch.Tensor:
            out = []
            for _ in range(self.levels):
                out += [x.mean(dim=(2, 3)), x.std(dim=(2, 3))]
                x = F.avg_pool2d(x, 2)
            return torch.cat(out, 1).float()

    return ColourStats


@hookimpl
def register_losses(register):
    register("perceptual", PerceptualLoss)


@hookimpl
def register_discriminators(register):
    register("sn_patchgan", SNPatchGAN)


@hookimpl
def register_d_augmentations(register):
    register("random_shift", RandomShift)


@hookimpl
def register_feature_extractors(register):
    register("colour_stats", _colour_stats_factory())


@hookimpl
def register_pretrained(register):
    # The model is published wherever the test serves it: its address and checksum come from the
    # environment (a real plugin writes them here, as printed by `imtrans export ... -o model.safetensors`).
    url = os.environ.get("IMTRANS_E2E_URL")
    if not url:
        return
    from imtrans.zoo import Pretrained

    register("e2e_glow", Pretrained(
        urls=(url,), sha256=os.environ.get("IMTRANS_E2E_SHA256") or None,  # a .safetensors file: it names its network
        source="flat shapes", target="glowing shapes", dataset="imtrans synthetic glow",
    ))
