"""Losses: the adversarial ``gan`` loss and the pixel losses ``cycle``, ``identity``, ``l1``, ``l2``.

Call conventions (see docs/CONTRACTS.md):

* ``gan``: ``loss(pred, target_is_real, for_discriminator=True) -> scalar``;
  ``pred`` is a logit map or a list of maps (multi-scale: mean over scales).
* pixel losses: ``loss(pred, target) -> scalar``; they declare
  ``term_kind = "pixel"``, so as extra generator terms they are called
  ``loss(out, src)`` (see :mod:`imtrans.schemes.terms`).

Every class has ``default_weight``, the factor a scheme applies when a recipe
gives none.  :func:`gradient_penalty` is the WGAN-GP term (official
``cal_gradient_penalty`` with ``type='mixed'``).
"""

from __future__ import annotations

from typing import Literal, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from imtrans.errors import ImtransError

GanMode = Literal["lsgan", "vanilla", "hinge", "wgangp", "nonsaturating"]
Pred = Union[torch.Tensor, Sequence[torch.Tensor]]


class GANLoss(nn.Module):
    """Adversarial loss on discriminator logits: lsgan (official CycleGAN default), vanilla, hinge, wgangp or nonsaturating.

    ``loss(pred, target_is_real, for_discriminator=True)``.  For the
    generator, call with ``target_is_real=True, for_discriminator=False``.

    * ``lsgan``: mean squared error to ``real_label`` (1.0) or ``fake_label``
      (0.0), as official; same form for D and G.
    * ``vanilla``: binary cross-entropy on logits (``BCEWithLogits``) to the
      same labels; same form for D and G.  (Official pix2pix 'vanilla'.)
    * ``hinge``: D ``mean(relu(1 - x))`` on real, ``mean(relu(1 + x))`` on
      fake; G ``-mean(x)``.
    * ``wgangp``: D ``-mean(x)`` on real, ``mean(x)`` on fake; G
      ``-mean(x)``.  Add :func:`gradient_penalty` to the D loss.
    * ``nonsaturating``: D ``mean(softplus(-x))`` on real,
      ``mean(softplus(x))`` on fake; G ``mean(softplus(-x))`` (equal to
      vanilla with labels 1/0, written in the numerically stable form).

    For hinge/wgangp the G form with ``target_is_real=False`` is the mirror
    image (``mean(x)``).  A list ``pred`` (e.g. from the ``multiscale``
    discriminator) gives the mean of the per-scale losses; an element that is
    itself a list (pix2pixHD-style feature lists) contributes its last entry.

    Parameters: ``mode``; ``real_label``/``fake_label`` targets for lsgan and
    vanilla (label smoothing, e.g. ``real_label=0.9``).
    """

    default_weight: float = 1.0

    def __init__(self, mode: GanMode = "lsgan", real_label: float = 1.0, fake_label: float = 0.0):
        super().__init__()
        if mode not in ("lsgan", "vanilla", "hinge", "wgangp", "nonsaturating"):
            raise ImtransError(f"unknown gan mode '{mode}'; use lsgan, vanilla, hinge, wgangp or nonsaturating")
        self.mode = mode
        self.real_label = float(real_label)
        self.fake_label = float(fake_label)

    @property
    def decision_boundary(self) -> float:
        """The D output between "real" and "fake": lsgan's midpoint of its labels, 0 for logits (ADA's sign test)."""
        return (self.real_label + self.fake_label) / 2 if self.mode == "lsgan" else 0.0

    def _single(self, x: torch.Tensor, real: bool, for_d: bool) -> torch.Tensor:
        mode = self.mode
        if mode in ("lsgan", "vanilla"):
            target = torch.full_like(x, self.real_label if real else self.fake_label)
            if mode == "lsgan":
                return F.mse_loss(x, target)
            return F.binary_cross_entropy_with_logits(x, target)
        if mode == "nonsaturating":
            return F.softplus(-x).mean() if real else F.softplus(x).mean()
        if mode == "hinge" and for_d:
            return F.relu(1.0 - x).mean() if real else F.relu(1.0 + x).mean()
        # wgangp (D and G) and hinge for G: push the raw critic value up (real) or down (fake).
        return -x.mean() if real else x.mean()

    def forward(self, pred: Pred, target_is_real: bool, for_discriminator: bool = True) -> torch.Tensor:
        if isinstance(pred, torch.Tensor):
            return self._single(pred, target_is_real, for_discriminator)
        preds = [p[-1] if isinstance(p, (list, tuple)) else p for p in pred]
        if not preds:
            raise ImtransError("gan loss got an empty list of discriminator outputs; check the discriminator")
        return torch.stack([self._single(p, target_is_real, for_discriminator) for p in preds]).mean()


def gradient_penalty(
    discriminator: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    lambda_gp: float = 10.0,
    constant: float = 1.0,
) -> torch.Tensor:
    """WGAN-GP gradient penalty on random real/fake interpolations (official ``cal_gradient_penalty``, ``'mixed'``).

    ``lambda_gp * mean((||grad_x D(x_hat)||_2 - constant)**2)`` with
    ``x_hat = a * real + (1 - a) * fake`` and one ``a ~ U(0, 1)`` per sample.
    The graph is kept (``create_graph=True``) so the penalty can be
    backpropagated into D.  Unlike the official function, this returns only
    the scalar (not the gradients too); ``lambda_gp <= 0`` returns 0.  A
    discriminator returning a list (multi-scale) has its outputs summed.
    """
    if lambda_gp <= 0.0:
        return real.new_zeros(())
    fake = fake.detach()
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device, dtype=real.dtype)
    x_hat = (alpha * real.detach() + (1 - alpha) * fake).requires_grad_(True)
    out = discriminator(x_hat)
    outs = list(out) if isinstance(out, (list, tuple)) else [out]
    grads = torch.autograd.grad(
        outputs=outs,
        inputs=x_hat,
        grad_outputs=[torch.ones_like(o) for o in outs],
        create_graph=True,
        retain_graph=True,
    )[0]
    grads = grads.reshape(grads.shape[0], -1)
    # The tiny offset keeps the norm differentiable where the gradient is exactly 0 (as official).
    return (((grads + 1e-16).norm(2, dim=1) - constant) ** 2).mean() * lambda_gp


class L1Loss(nn.Module):
    """Mean absolute error between prediction and target (paired reconstruction)."""

    default_weight: float = 1.0
    #: as an extra generator term it is called loss(out, src) (see imtrans.schemes.terms)
    term_kind = "pixel"

    def __init__(self):
        super().__init__()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(pred, target)


class L2Loss(nn.Module):
    """Mean squared error between prediction and target (paired reconstruction)."""

    default_weight: float = 1.0
    term_kind = "pixel"

    def __init__(self):
        super().__init__()

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(pred, target)


class CycleLoss(L1Loss):
    """Cycle-consistency L1 loss ``|G_BA(G_AB(a)) - a|`` (official lambda_A/lambda_B = 10)."""

    default_weight: float = 10.0


class IdentityLoss(L1Loss):
    """Identity L1 loss ``|G_AB(b) - b|``; its weight is relative to the cycle weight (official lambda_identity = 0.5).

    As in the official code, the effective factor is
    ``identity weight * cycle weight`` (0.5 * 10 = 5 by default): a scheme
    multiplies this loss by both, so changing the cycle weight scales the
    identity term with it.
    """

    default_weight: float = 0.5


LOSSES = {
    "gan": GANLoss,
    "cycle": CycleLoss,
    "identity": IdentityLoss,
    "l1": L1Loss,
    "l2": L2Loss,
}
