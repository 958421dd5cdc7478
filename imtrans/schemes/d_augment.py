"""How a scheme applies ``[model.d_augment]``: one augmentation per discriminator, on every D input.

:class:`~imtrans.schemes.base.Scheme` inherits these methods; a scheme calls
``build_d_augment("D")`` in its constructor, ``augment_d("D", x)`` on every input of ``D`` (real
and fake, in D's step and in G's adversarial term) and ``update_d_augment("D", pred_real)`` after
D's step.  The augmentations' state (ADA's probability) travels in ``training_state``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from imtrans import registry
from imtrans.errors import ImtransError


def _centred(x: Any, centre: float) -> Any:
    """Detached D output minus ``centre``: a map, or a list of maps (of a feature list, its last entry, as the GAN loss)."""
    if isinstance(x, torch.Tensor):
        return x.detach() - centre if centre else x.detach()
    return [_centred(t if isinstance(t, torch.Tensor) else t[-1], centre) for t in x]


class DAugmentMixin:
    """The discriminator-augmentation half of a scheme (``self.d_augment``: name -> module, empty: none)."""

    recipe: Any
    d_augment: nn.ModuleDict

    def build_d_augment(self, *discriminators: str) -> None:
        """One augmentation per named discriminator from ``[model.d_augment]`` (none there: none here).

        Each discriminator gets its own instance, so an adaptive one (ADA) follows that
        discriminator's overfitting; the state is checkpointed by ``training_state``.
        """
        spec = getattr(self.recipe.model, "d_augment", None)
        if spec is None:
            return
        for name in discriminators:
            aug = registry.build_spec("d_augment", spec.as_dict())
            if not isinstance(aug, nn.Module):
                raise ImtransError(
                    f"d_augment '{spec.name}' builds a {type(aug).__name__}, not an nn.Module; a discriminator "
                    "augmentation must be an nn.Module whose forward(x) returns the augmented batch")
            self.d_augment[name] = aug

    def augment_d(self, name: str, x: torch.Tensor) -> torch.Tensor:
        """``x`` as discriminator ``name`` must see it: augmented (differentiably) if the recipe asks for it.

        Call it on every input of the discriminator, real and fake, in its step and in the generator's.
        """
        return self.d_augment[name](x) if name in self.d_augment else x

    def update_d_augment(self, name: str, real_logits: Any) -> None:
        """Tell discriminator ``name``'s augmentation what D said about the reals (ADA's feedback).

        The output is centred on the GAN loss's decision boundary (LSGAN's 0.5 is subtracted), so
        its sign says "real" (> 0) or "fake" whatever the loss; a multi-scale D gives a list of maps.
        """
        if name in self.d_augment:
            update = getattr(self.d_augment[name], "update", None)
            if update is not None:
                centre = float(getattr(getattr(self, "gan", None), "decision_boundary", 0.0))
                with torch.no_grad():
                    update(_centred(real_logits, centre))

    def d_augment_state(self) -> dict[str, Any]:
        """Each augmentation's state dict (ADA's p and counters), by discriminator; none without state."""
        return {k: dict(m.state_dict()) for k, m in self.d_augment.items() if m.state_dict()}

    def load_d_augment_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`d_augment_state` exactly (a checkpoint without it leaves fresh augmentations)."""
        for k, aug_state in (state or {}).items():
            if k in self.d_augment:
                self.d_augment[k].load_state_dict(aug_state)
