"""The FID Inception-v3: the network of the TTUR reference as pytorch-fid and torch-fidelity build it.

The FID of Heusel et al. is defined by one particular network: the TensorFlow
graph ``inception-2015-12-05`` (1008 classes).  pytorch-fid ported its weights
to ``pt_inception-2015-12-05-6726825d.pth`` (torch-fidelity republished the
same file) and fixed the three places where torchvision's Inception-v3 differs
from that graph:

* average pools in the ``Mixed_5*``/``Mixed_6*``/``Mixed_7b`` blocks do not
  count the zero padding (TensorFlow's ``SAME`` average pool);
* the last block (``Mixed_7c``) pools its fourth branch with a *max* pool;
* the classifier has 1008 outputs and there is no auxiliary head.

:class:`FIDInceptionV3` keeps torchvision's attribute names, so its state
dict has exactly the keys and shapes of the published file and that file
loads unchanged (``fc`` is kept only for that reason; the features are the
2048-d output of the final average pool).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models import inception as tvi

#: input side of the network (the TF graph resizes every image to this)
INPUT_SIZE = 299
#: length of the pool features FID and KID use
POOL_DIM = 2048
#: classifier outputs of the 2015-12-05 graph (1000 ImageNet classes + 8 unused)
NUM_CLASSES = 1008


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    # TensorFlow's SAME average pool divides by the number of real pixels under the window.
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(tvi.InceptionA):
    """``Mixed_5b..d``: torchvision's InceptionA with TensorFlow's average pool."""

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return [b1, b5, b3, self.branch_pool(_tf_avg_pool(x))]


class FIDInceptionC(tvi.InceptionC):
    """``Mixed_6b..e``: torchvision's InceptionC with TensorFlow's average pool."""

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3,
                      self.branch7x7dbl_4, self.branch7x7dbl_5):
            d = layer(d)
        return [b1, b7, d, self.branch_pool(_tf_avg_pool(x))]


class FIDInceptionE(tvi.InceptionE):
    """``Mixed_7b`` (average pool, TensorFlow style) and ``Mixed_7c`` (``max_pool=True``).

    The max pool in the last block is what the 2015-12-05 graph does (the paper
    describes an average pool); FID is defined by the graph, so we follow it.
    """

    def __init__(self, in_channels: int, max_pool: bool = False) -> None:
        super().__init__(in_channels)
        self.max_pool = max_pool

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b1 = self.branch1x1(x)
        t = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(t), self.branch3x3_2b(t)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return [b1, b3, bd, self.branch_pool(pooled)]


class FIDInceptionV3(nn.Module):
    """Inception-v3 of the FID reference: ``[B, 3, 299, 299]`` in [-1, 1] -> ``[B, 2048]`` pool features."""

    def __init__(self) -> None:
        super().__init__()
        conv = tvi.BasicConv2d  # conv (no bias) + batch norm (eps 1e-3) + ReLU, as in the graph
        self.Conv2d_1a_3x3 = conv(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = conv(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = conv(32, 64, kernel_size=3, padding=1)
        self.maxpool1 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Conv2d_3b_1x1 = conv(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = conv(80, 192, kernel_size=3)
        self.maxpool2 = nn.MaxPool2d(kernel_size=3, stride=2)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = tvi.InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = tvi.InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280)
        self.Mixed_7c = FIDInceptionE(2048, max_pool=True)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        # Not used for features; present so that the published state dict loads key for key.
        self.fc = nn.Linear(POOL_DIM, NUM_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1",
                     "Conv2d_4a_3x3", "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a",
                     "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c"):
            x = getattr(self, name)(x)
        return torch.flatten(self.avgpool(x), 1)

    def random_init(self, seed: int = 0) -> "FIDInceptionV3":
        """Random weights that keep activations at a sensible scale through all 94 layers.

        For tests and speed benchmarks only (features of a random network mean
        nothing): He-normal convolutions, identity batch norms.
        """
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    fan_in = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / fan_in) ** 0.5)
                elif isinstance(m, nn.BatchNorm2d):
                    m.reset_parameters()
                elif isinstance(m, nn.Linear):
                    m.weight.copy_(torch.randn(m.weight.shape, generator=g) / POOL_DIM**0.5)
                    m.bias.zero_()
        return self
