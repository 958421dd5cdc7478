"""PatchNCE: the patch-wise contrastive loss of CUT (Park et al., ECCV 2020).

For a source image ``src`` and its translation ``out = G(src)``, a patch of
``out`` should be more similar to the patch of ``src`` *at the same place*
(the positive) than to patches at other places of the same source image (the
negatives).  Similarity is measured on the translator's own encoder features:

1. ``G.encode(src, layers)`` and ``G.encode(out, layers)`` give one feature
   map per layer;
2. per layer, ``num_patches`` positions are drawn on the *source* map and the
   same positions are read from the output map (one draw shared by the images
   of the batch, as the official ``PatchSampleF``);
3. each picked feature vector goes through a small per-layer MLP head
   (Linear-ReLU-Linear, ``nc`` wide) and is L2-normalised;
4. per output patch, cross-entropy over ``[positive, negatives...] / T`` with
   the positive as the target class; negatives are the other sampled patches
   of the same image (official ``nce_includes_all_negatives_from_minibatch
   = False``); the source side is a constant (no gradient), as official;
5. mean over patches and images, then mean over layers.

The heads are built on the first call, when the channel counts are known; a
scheme runs its extra terms once in ``setup`` so that the heads exist before
the optimisers are made.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from imtrans.errors import ImtransError
from imtrans.nets.init import init_weights

#: similarity given to a patch paired with itself among the negatives: the
#: official code masks those logits with -10 (before the temperature), which
#: removes them from the softmax in practice while keeping the matrix shape.
_SELF_LOGIT = -10.0


def _l2_normalise(x: torch.Tensor) -> torch.Tensor:
    # The small epsilon (official Normalize) keeps an all-zero feature finite.
    return x / (x.norm(p=2, dim=1, keepdim=True) + 1e-7)


class PatchNCELoss(nn.Module):
    """PatchNCE contrastive loss of CUT on the generator's encoder features: ``loss(src, out, generator)``.

    Call convention of extra generator terms: ``loss(src, out, generator) ->
    scalar`` with ``out = generator(src)``; the features come only from
    ``generator.encode(x, layers)``.  An optional keyword ``flip_out=True``
    mirrors the output features back along the width before they are matched
    (FastCUT's flip-equivariance: ``out`` was made from the mirrored source).

    Parameters: ``num_patches`` positions sampled per layer and image (all
    positions when a map has fewer); ``layers`` encoder layer indices (CUT's
    ``0,4,8,12,16`` of the resnet generator); ``temperature`` of the softmax
    (CUT's ``nce_T``); ``nc`` width of the MLP heads; ``use_mlp`` False
    compares raw (normalised) features, official ``netF=sample``;
    ``init``/``init_gain`` initialisation of the heads (CUT: xavier, 0.02).
    """

    default_weight: float = 1.0
    #: as an extra generator term it is called loss(src, out, generator) (imtrans.schemes.terms)
    term_kind = "translation"

    def __init__(
        self,
        num_patches: int = 256,
        layers: tuple[int, ...] = (0, 4, 8, 12, 16),
        temperature: float = 0.07,
        nc: int = 256,
        use_mlp: bool = True,
        init: Literal["normal", "xavier", "kaiming", "orthogonal"] = "xavier",
        init_gain: float = 0.02,
    ) -> None:
        super().__init__()
        if num_patches < 1:
            raise ImtransError(f"patchnce num_patches must be at least 1, got {num_patches}")
        if not layers:
            raise ImtransError("patchnce layers is empty; give encoder layer indices, e.g. layers = [0, 4, 8, 12, 16]")
        if temperature <= 0:
            raise ImtransError(f"patchnce temperature must be positive, got {temperature}")
        if nc < 1:
            raise ImtransError(f"patchnce nc must be at least 1, got {nc}")
        self.num_patches = int(num_patches)
        self.layers = [int(i) for i in layers]
        self.temperature = float(temperature)
        self.nc = int(nc)
        self.use_mlp = use_mlp
        self.init = init
        self.init_gain = init_gain
        # One head per layer; empty until the first call tells us the channel counts.
        self.heads = nn.ModuleList()

    # -- heads ------------------------------------------------------------------
    @property
    def ready(self) -> bool:
        """True once the heads exist (always true without MLP heads)."""
        return not self.use_mlp or len(self.heads) == len(self.layers)

    def _build_heads(self, feats: list[torch.Tensor]) -> None:
        for f in feats:
            c = f.shape[1]
            head = nn.Sequential(nn.Linear(c, self.nc), nn.ReLU(inplace=True), nn.Linear(self.nc, self.nc))
            init_weights(head, self.init, self.init_gain)
            self.heads.append(head.to(device=f.device))

    def _check_heads(self, feats: list[torch.Tensor]) -> None:
        for i, (f, head) in enumerate(zip(feats, self.heads)):
            if head[0].in_features != f.shape[1]:
                raise ImtransError(
                    f"patchnce head {i} was built for {head[0].in_features} channels but layer {self.layers[i]} "
                    f"now gives {f.shape[1]}; use one patchnce loss per generator architecture"
                )

    # -- sampling -----------------------------------------------------------------
    def _pick(self, feat: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] features at flat positions ``ids`` -> [B * P, C]."""
        b, c = feat.shape[:2]
        flat = feat.flatten(2)  # [B, C, H*W]
        picked = flat.index_select(2, ids)  # [B, C, P]
        return picked.permute(0, 2, 1).reshape(b * ids.numel(), c)

    def _project(self, i: int, x: torch.Tensor) -> torch.Tensor:
        if self.use_mlp:
            x = self.heads[i](x)
        return _l2_normalise(x.float())

    # -- the loss -----------------------------------------------------------------
    def nce(self, q: torch.Tensor, k: torch.Tensor, batch: int) -> torch.Tensor:
        """Contrastive loss of queries ``q`` (output patches) against keys ``k`` (source patches).

        ``q`` and ``k`` are [B * P, D], L2-normalised, row ``j`` of both from the
        same place; returns the mean cross-entropy over the B * P queries.
        """
        k = k.detach()  # the source side is the fixed target of the contrast (official)
        d = q.shape[1]
        pos = (q * k).sum(dim=1, keepdim=True)  # [B*P, 1]
        qb = q.view(batch, -1, d)
        kb = k.view(batch, -1, d)
        p = qb.shape[1]
        neg = torch.bmm(qb, kb.transpose(1, 2))  # [B, P, P]: every output patch vs every source patch
        eye = torch.eye(p, dtype=torch.bool, device=q.device).unsqueeze(0)
        neg = neg.masked_fill(eye, _SELF_LOGIT).view(-1, p)
        logits = torch.cat([pos, neg], dim=1) / self.temperature
        target = torch.zeros(logits.shape[0], dtype=torch.long, device=q.device)
        return F.cross_entropy(logits, target)

    def forward(self, src: torch.Tensor, out: torch.Tensor, generator: nn.Module, flip_out: bool = False) -> torch.Tensor:
        if not hasattr(generator, "encode"):
            raise ImtransError(
                f"patchnce needs a generator with the feature interface encode(x, layers); "
                f"{type(generator).__name__} has none: use e.g. the 'resnet' generator"
            )
        feat_src = generator.encode(src, self.layers)
        feat_out = generator.encode(out, self.layers)
        if flip_out:
            feat_out = [torch.flip(f, dims=[3]) for f in feat_out]
        if self.use_mlp:
            if not len(self.heads):
                self._build_heads(feat_src)
            self._check_heads(feat_src)
        batch = src.shape[0]
        total = src.new_zeros((), dtype=torch.float32)
        for i, (fs, fo) in enumerate(zip(feat_src, feat_out)):
            hw = fs.shape[2] * fs.shape[3]
            # Positions are drawn on the source map and reused for the output map,
            # so row j of both sides describes the same place.
            ids = torch.randperm(hw, device=fs.device)[: min(self.num_patches, hw)]
            k = self._project(i, self._pick(fs, ids))
            q = self._project(i, self._pick(fo, ids))
            total = total + self.nce(q, k, batch)
        return total / len(self.layers)
