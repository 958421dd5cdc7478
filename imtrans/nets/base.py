"""The base class of every generator (ours and plugins'): input-size and feature-layer checks."""

from __future__ import annotations

from torch import nn

from imtrans.errors import ImtransError


class GeneratorBase(nn.Module):
    """Base class for generators (ours and plugins'): the size check and the ``encode`` layer check.

    A subclass sets ``in_channels``, ``out_channels`` and, if its input size is
    constrained, ``size_multiple`` (and ``min_size``); it calls
    :meth:`check_input_size` at the start of ``forward`` and ``encode``.
    """

    part_name = "generator"
    size_multiple: int = 1
    min_size: int = 1

    def check_input_size(self, h: int, w: int) -> None:
        """Raise :class:`ImtransError` unless ``h`` and ``w`` suit this network.

        Pure integer arithmetic: cheap enough to run on every forward call.
        """
        m, lo = self.size_multiple, self.min_size
        if h % m or w % m or h < lo or w < lo:
            extra = f" and at least {lo}" if lo > m else ""
            raise ImtransError(
                f"{self.part_name} generator needs height and width divisible by {m}{extra}; "
                f"got {h}x{w}: resize or pad the image"
            )

    def _check_layers(self, layers: list[int], n: int, what: str) -> None:
        bad = [i for i in layers if not 0 <= int(i) < n]
        if bad:
            raise ImtransError(
                f"{self.part_name} generator has {what} indices 0..{n - 1}; got {bad[0]}: "
                f"choose layers within that range"
            )
