"""Feature extractors: images -> vectors whose statistics FID and KID compare.

A feature extractor is a registered part (kind ``feature_extractor``, hook
``register_feature_extractors``), so a plugin can add DINOv2, CLIP or
domain-specific features.  It is a :class:`FeatureExtractor`: ``preprocess``
turns one ``uint8 [3, H, W]`` image into the network's input (on the CPU, one
image at a time, so a set may mix sizes) and ``forward`` maps a batch of them
to ``[B, dim]`` features.  ``identity`` names the extractor, its weights'
sha256 and its resize mode; every result carries it, because numbers from
different extractors (or resize modes) are not comparable.

The built-in ``inception_v3_fid`` is the FID network (:mod:`imtrans.eval.inception`)
with one of two resizes to 299 x 299:

* ``clean`` (default): clean-fid's antialiased resize — PIL bicubic on each
  channel as 32-bit float, clipped to [0, 255], no rounding to 8 bits, then
  ``(x - 128) / 128``;
* ``legacy_pytorch``: pytorch-fid's ``F.interpolate(..., 'bilinear',
  align_corners=False)`` of ``x / 255``, then ``2x - 1``; it aliases when it
  shrinks large images, which is why clean-fid introduced the other one.
"""

from __future__ import annotations

import collections
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Literal, Optional

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from imtrans.errors import ImtransError
# imtrans.eval.inception is imported where the network is built: it imports torchvision (seconds),
# which registering and listing the parts must not pay for; tests/test_eval_features.py checks these
INPUT_SIZE, POOL_DIM = 299, 2048  # inception.INPUT_SIZE, inception.POOL_DIM
from imtrans.registry import record_of

ResizeMode = Literal["clean", "legacy_pytorch"]
Precision = Literal["fp32", "bf16"]
RESIZE_MODES: tuple[str, ...] = ("clean", "legacy_pytorch")
#: extractor parameters that do not change its features beyond what identity() names already
_NOT_IDENTITY = ("weights", "download", "resize")


class FeatureExtractor(nn.Module):
    """Base class of registered feature extractors.

    Subclasses set ``dim`` and implement :meth:`preprocess` and :meth:`features`;
    :meth:`forward` handles precision.  ``weights_sha256`` is the checksum of
    the weights file (or a word such as ``"random-init"``); ``resize`` names the
    preprocessing.  Both go into :meth:`identity`.
    """

    dim: int = 0

    def __init__(self, weights_sha256: str, resize: str) -> None:
        super().__init__()
        self.weights_sha256 = weights_sha256
        self.resize = resize
        self.dtype = torch.float32

    @property
    def name(self) -> str:
        rec = record_of(self)
        return rec.name if rec is not None else type(self).__name__

    def identity(self) -> dict[str, Any]:
        """What a result must name so it is never compared with another extractor's by mistake.

        The part's other parameters (a plugin's ``layer``, say) are part of it too, so cached
        reference features of one setting are never reused for another; where the weights
        came from is not (their checksum is), nor whether they could be downloaded.
        """
        ident = {"extractor": self.name, "weights_sha256": self.weights_sha256, "resize": self.resize, "dim": self.dim}
        rec = record_of(self)
        params = {k: v for k, v in (rec.params if rec is not None else {}).items() if k not in _NOT_IDENTITY}
        if params:
            ident["params"] = params
        return ident

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """One ``uint8 [3, H, W]`` image -> the network's float input ``[3, S, S]`` (CPU)."""
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def set_precision(self, precision: Precision) -> "FeatureExtractor":
        """Run in fp32 or bf16 (weights stored in bf16; features are returned as float32)."""
        if precision not in ("fp32", "bf16"):
            raise ImtransError(f"feature precision '{precision}' is not one of fp32, bf16")
        self.dtype = torch.bfloat16 if precision == "bf16" else torch.float32
        self.to(self.dtype)
        return self

    @torch.inference_mode()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x.to(self.dtype)).float()


def clean_resize(image: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """clean-fid's resize: each channel as a float32 PIL image, bicubic (antialiased) to ``size``, clipped to [0, 255].

    The bicubic kernel overshoots at hard edges (label maps: values below 0 and
    above 255 next to every boundary); clean-fid clips them, and so does this.
    """
    arr = image.permute(1, 2, 0).numpy().astype(np.float32)
    chans = [np.asarray(Image.fromarray(arr[:, :, c], mode="F").resize((size, size), Image.Resampling.BICUBIC))
             for c in range(arr.shape[2])]
    return torch.from_numpy(np.clip(np.stack(chans, 0), 0.0, 255.0))


def legacy_pytorch_resize(image: torch.Tensor, size: int = INPUT_SIZE) -> torch.Tensor:
    """pytorch-fid's resize: bilinear ``F.interpolate`` (no antialiasing) of the image in [0, 1]."""
    x = image.float().unsqueeze(0) / 255.0
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)[0]


class InceptionFeatures(FeatureExtractor):
    """FID Inception-v3 (pt_inception-2015-12-05 weights): 2048-d pool features, the standard for FID/KID."""

    dim = POOL_DIM

    def __init__(self, net: nn.Module, weights_sha256: str, resize: ResizeMode = "clean",
                 input_size: int = INPUT_SIZE) -> None:
        if resize not in RESIZE_MODES:
            raise ImtransError(f"resize mode '{resize}' is not one of {', '.join(RESIZE_MODES)}")
        super().__init__(weights_sha256, resize)
        self.net = net.eval().requires_grad_(False)
        # Only tests change input_size (the network accepts >= 75 px); FID is defined at 299.
        self.input_size = input_size

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        if image.dtype != torch.uint8 or image.dim() != 3 or image.shape[0] != 3:
            raise ImtransError(f"feature extraction takes uint8 RGB images [3, H, W]; got {image.dtype} {tuple(image.shape)}")
        if self.resize == "clean":
            return (clean_resize(image, self.input_size) - 128.0) / 128.0
        return legacy_pytorch_resize(image, self.input_size) * 2.0 - 1.0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def inception_v3_fid(weights: Optional[str] = None, resize: ResizeMode = "clean", download: bool = True) -> InceptionFeatures:
    """FID Inception-v3 of the TTUR reference (pt_inception-2015-12-05 weights, 2048-d pool features).

    ``weights``: a ``.pth`` file; by default the cached copy, downloaded (sha256
    checked) when missing and ``download`` is true.  ``weights = "random"``
    builds the real architecture with random weights (tests and speed runs;
    its numbers mean nothing).  ``resize``: ``clean`` (clean-fid, antialiased)
    or ``legacy_pytorch`` (pytorch-fid's bilinear).
    """
    from imtrans.eval.weights import load_resolved_weights, resolve_weights

    # Resolved once: hashing the 95 MB file (and warning about a file other than the published one)
    # happens once per extractor; and first, so that missing weights cost no torchvision import.
    resolved = None if weights == "random" else resolve_weights(weights, download=download)
    from imtrans.eval.inception import FIDInceptionV3

    # Layer construction draws initial weights from the global RNG; a trainer building this
    # extractor mid-run must not see its random streams move (exact resume), so fork them.
    with torch.random.fork_rng(devices=[]):
        net = FIDInceptionV3()
    if resolved is None:
        return InceptionFeatures(net.random_init(0), "random-init", resize)
    return InceptionFeatures(net, load_resolved_weights(net, *resolved), resize)


FEATURE_EXTRACTORS: dict[str, Callable[..., FeatureExtractor]] = {"inception_v3_fid": inception_v3_fid}


def extract_features(
    images: Iterable[torch.Tensor],
    extractor: FeatureExtractor,
    batch_size: int = 16,
    device: torch.device | str = "cpu",
    workers: int = 2,
) -> np.ndarray:
    """Features ``[N, dim]`` (float64) of ``uint8 [3, H, W]`` images, in input order.

    Images are preprocessed one by one in ``workers`` threads (PIL releases the
    GIL), so sizes may differ; batching changes nothing but speed.
    """
    if batch_size < 1:
        raise ImtransError(f"feature batch size {batch_size} must be at least 1")
    extractor = extractor.to(device).eval()
    out: list[np.ndarray] = []
    batch: list[torch.Tensor] = []

    def flush() -> None:
        x = torch.stack(batch).to(device)
        f = extractor(x)
        if f.dim() != 2 or f.shape[1] != extractor.dim:
            # the FID would be labelled with the declared dimension while computed from another
            raise ImtransError(
                f"feature extractor '{extractor.name}' declares dim = {extractor.dim} but returned features of "
                f"shape {tuple(f.shape)} for a batch of {len(batch)}; set its dim to what features() returns")
        out.append(f.cpu().double().numpy())
        batch.clear()

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # A bounded window of pending resizes: memory stays at ~2 batches however long the input is.
        pending: collections.deque = collections.deque()
        for image in images:
            pending.append(pool.submit(extractor.preprocess, image))
            while len(pending) > 2 * batch_size or (pending and pending[0].done()):
                batch.append(pending.popleft().result())
                if len(batch) == batch_size:
                    flush()
        while pending:
            batch.append(pending.popleft().result())
            if len(batch) == batch_size:
                flush()
    if batch:
        flush()
    if not out:
        return np.zeros((0, extractor.dim))
    feats = np.concatenate(out, 0)
    if not np.isfinite(feats).all():
        bad = int((~np.isfinite(feats)).any(axis=1).sum())
        raise ImtransError(
            f"{bad} of {len(feats)} feature vectors from '{extractor.name}' are not finite (NaN or inf); "
            "the extractor's weights are broken or the precision overflowed: try --precision fp32"
        )
    return feats
