"""What the adversarial schemes share: the discriminator objective and the history pool of fakes."""

from __future__ import annotations

from typing import Any, Callable

import torch


def discriminator_loss(
    gan: Callable[[torch.Tensor, bool], torch.Tensor], pred_real: torch.Tensor, pred_fake: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(0.5 * (real + fake), real, fake)``: the official discriminator objective and its two terms.

    ``gan(pred, target_is_real)`` is the scheme's GAN loss; the predictions are
    the discriminator's outputs, computed by the caller in its own order (a
    discriminator with batch norm or dropout sees the same calls as before).
    Halving the sum slows D relative to G, as in the official code.
    """
    real, fake = gan(pred_real, True), gan(pred_fake, False)
    return 0.5 * (real + fake), real, fake


class ImagePool:
    """The history of generated images (Shrivastava et al.) that the discriminators see.

    Until ``size`` images are stored every fake is stored and returned; after that,
    each fake is, with probability 1/2, swapped for a random stored one (which is
    returned) — as the official ``ImagePool``.  Its own RNG makes it resumable.
    """

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.images: list[torch.Tensor] = []
        self.gen = torch.Generator().manual_seed(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif torch.rand((), generator=self.gen).item() > 0.5:
                j = int(torch.randint(0, self.size, (), generator=self.gen).item())
                out.append(self.images[j].clone())
                self.images[j] = img.clone()
            else:
                out.append(img)
        return torch.cat(out, 0)

    def state(self) -> dict[str, Any]:
        return {"images": list(self.images), "rng": self.gen.get_state()}

    def load(self, state: dict[str, Any], device: torch.device) -> None:
        self.images = [t.to(device) for t in state.get("images", [])]
        self.gen.set_state(state["rng"])
