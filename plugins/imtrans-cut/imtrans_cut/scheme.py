"""CUT and FastCUT (Park, Efros, Zhang, Zhu, ECCV 2020) as an imtrans scheme.

One generator ``G: A -> B``, one discriminator ``D`` judging domain B, and no
second generator: content is kept by PatchNCE (``imtrans_cut.patchnce``)
between ``a`` and ``G(a)`` instead of a cycle.  No history pool (official
``pool_size=0``).

A step follows the official ``optimize_parameters``: one forward, then the
discriminator update on the detached fake, then the generator (and PatchNCE
heads) update with the discriminator frozen.
"""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch
from torch import nn

from imtrans import registry
from imtrans.build import build_part
from imtrans.errors import ImtransError
from imtrans.schemes.base import Scheme, set_requires_grad

#: [losses] keys with a role in this scheme; other keys are extra generator terms.
ROLES = ("gan", "nce")
#: pixel-loss roles of CycleGAN that have no meaning here (there is no F to cycle through).
_CYCLEGAN_ONLY = ("cycle", "identity")

# Official defaults per --CUT_mode.
_MODES: dict[str, dict[str, Any]] = {
    "cut": {"lambda_NCE": 1.0, "nce_idt": True, "flip_equivariance": False},
    "fastcut": {"lambda_NCE": 10.0, "nce_idt": False, "flip_equivariance": True},
}


class CUT(Scheme):
    """CUT / FastCUT: one generator A->B and one discriminator, adversarial + PatchNCE losses.

    ``mode = "cut"``: lambda_NCE 1, NCE identity term on (b, G(b)), no flips.
    ``mode = "fastcut"``: lambda_NCE 10, no identity term, flip-equivariance
    (with probability 1/2 the input is mirrored and the output features are
    mirrored back before PatchNCE).  ``lambda_GAN`` (default: the weight of
    ``[losses.gan]``, else 1), ``lambda_NCE`` (default: ``[losses.nce]``'s
    weight, else the mode's), ``nce_idt`` and ``flip_equivariance`` override
    the mode's choices.  The PatchNCE loss is built from ``[losses.nce]``
    (``name = "patchnce"`` plus its parameters) or with patchnce's defaults.
    """

    translators = {"a2b": "G"}
    sample_labels = (("A: input", "G(A): translated"), ("B: input", "G(B): should stay B"))
    loss_labels = {
        "G_total": "what the generator minimises: G_GAN plus the PatchNCE terms",
        "G_GAN": "adversarial loss of G: how well its fakes fool D, weighted by lambda_GAN",
        "NCE": "PatchNCE loss: each patch of G(a) should match the same patch of a, not others",
        "NCE_Y": "PatchNCE identity loss on B images: G(b) should keep b's patches (CUT, not FastCUT)",
        "D": "the discriminator's loss (mean of D_real and D_fake)",
        "D_real": "discriminator D on real B images",
        "D_fake": "discriminator D on G's fakes",
    }

    def __init__(
        self,
        recipe,
        mode: Literal["cut", "fastcut"] = "cut",
        lambda_GAN: Optional[float] = None,
        lambda_NCE: Optional[float] = None,
        nce_idt: Optional[bool] = None,
        flip_equivariance: Optional[bool] = None,
    ) -> None:
        super().__init__(recipe)
        defaults = _MODES[mode]
        self.mode = mode
        for key in _CYCLEGAN_ONLY:
            if key in recipe.losses:
                raise ImtransError(
                    f"the cut scheme has no backward generator, so [losses.{key}] has no use; remove it "
                    f"(PatchNCE keeps the content; its settings go in [losses.nce])"
                )
        m = recipe.model
        # Networks initialise themselves from their own `init`/`init_gain` parameters
        # (CUT's recipes set init = "xavier" there, the official CUT default).
        self.nets["G"] = build_part("generator", m.generator.as_dict())  # then zoo weights, if it names some
        self.nets["D"] = registry.build_spec("discriminator", m.discriminator.as_dict())
        self.build_d_augment("D")  # [model.d_augment]: every input of D, real and fake

        self.gan, self.lambda_GAN = self.build_loss("gan", default_weight=1.0)
        self.nce, self.lambda_NCE = self.build_loss("nce", "patchnce", default_weight=defaults["lambda_NCE"])
        # explicit scheme parameters win over the [losses] weights
        self.lambda_GAN = float(lambda_GAN if lambda_GAN is not None else self.lambda_GAN)
        self.lambda_NCE = float(lambda_NCE if lambda_NCE is not None else self.lambda_NCE)
        self.nce_idt = bool(defaults["nce_idt"] if nce_idt is None else nce_idt)
        self.flip_equivariance = bool(defaults["flip_equivariance"] if flip_equivariance is None else flip_equivariance)
        self.build_extra_terms(ROLES)
        # Its own RNG for the flip decisions, so a resumed run flips as an uninterrupted one.
        self.flip_gen = torch.Generator().manual_seed(recipe.train.seed + 303)

    # -- set-up -----------------------------------------------------------------
    def networks(self) -> dict[str, nn.Module]:
        # The PatchNCE heads ("F" in the paper's code) are trained weights: checkpoint them too
        # (and, from the base class, any extra term's own parameters).
        nets = super().networks()
        if any(True for _ in self.nce.parameters()):
            nets["F"] = self.nce
        return nets

    def setup(self, batch: dict[str, torch.Tensor]) -> None:
        """Build the lazily-sized PatchNCE heads on the first batch, then optimisers and schedulers."""
        with torch.no_grad(), self.precision.autocast():
            a = batch["a"]
            G = self.nets["G"]
            out = G(a)
            self.nce(a, out, G)
            for term in self.extra_terms.values():
                term(a, out, G)
        # Official CUT keeps a separate Adam for the heads (netF) with G's settings; Adam is
        # per-parameter, so one optimiser over both is the same update with one step call.
        g_params = list(self.parameters_of("G")) + list(self.nce.parameters()) + list(self.extra.parameters())
        self.make_gan_optimizers(g_params, self.parameters_of("D"))

    # -- the training step --------------------------------------------------------
    def _nce(self, src: torch.Tensor, out: torch.Tensor, flipped: bool) -> torch.Tensor:
        return self.lambda_NCE * self.nce(src, out, self.nets["G"], flip_out=flipped)

    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["a"], batch["b"]
        G, D = self.nets["G"], self.nets["D"]
        amp = self.precision
        L: dict[str, torch.Tensor] = {}
        n = real_a.shape[0]

        # one generator pass over a (and b for the NCE identity term), as official
        real = torch.cat([real_a, real_b], 0) if self.nce_idt else real_a
        flipped = self.flip_equivariance and bool(torch.rand((), generator=self.flip_gen).item() < 0.5)
        if flipped:
            real = torch.flip(real, dims=[3])
        with amp.autocast():
            fake = G(real)
        fake_b = fake[:n]
        idt_b = fake[n:] if self.nce_idt else None

        # discriminator: 0.5 * (fake + real), on the current fake (no pool)
        set_requires_grad([D], True)
        opt_d = self._optimizers["D"]
        opt_d.zero_grad(set_to_none=True)
        aug = self.augment_d  # identity without [model.d_augment]
        with amp.autocast():
            L["D_fake"] = self.gan(D(aug("D", fake_b.detach())), False)
            pred_real = D(aug("D", real_b))
            L["D_real"] = self.gan(pred_real, True)
            loss_d = 0.5 * (L["D_fake"] + L["D_real"])
        amp.backward(loss_d)
        amp.step(opt_d)
        self.update_d_augment("D", pred_real)
        L["D"] = loss_d

        # generator and PatchNCE heads, discriminator frozen
        set_requires_grad([D], False)
        opt_g = self._optimizers["G"]
        opt_g.zero_grad(set_to_none=True)
        with amp.autocast():
            L["G_GAN"] = self.lambda_GAN * self.gan(D(aug("D", fake_b)), True, for_discriminator=False)
            # src is never flipped: mirroring the output features back is what ties them
            # to the unflipped source (flip-equivariance)
            L["NCE"] = self._nce(real_a, fake_b, flipped)
            if idt_b is not None:
                L["NCE_Y"] = self._nce(real_b, idt_b, flipped)
                nce_both = 0.5 * (L["NCE"] + L["NCE_Y"])
            else:
                nce_both = L["NCE"]
            loss_g = L["G_GAN"] + nce_both
            for key, term in self.extra_terms.items():
                L[key] = term.weight * term(real_a, fake_b, G)
                loss_g = loss_g + L[key]
        amp.backward(loss_g)
        amp.step(opt_g)
        set_requires_grad([D], True)
        amp.update()
        L["G_total"] = loss_g
        return {k: v.detach() for k, v in L.items()}

    # -- outputs ------------------------------------------------------------------
    @torch.no_grad()
    def sample_rows(self, a: torch.Tensor, b: torch.Tensor) -> list[list[torch.Tensor]]:
        """Rows ``[a, G(a)]`` and ``[b, G(b)]`` (the second shows how much G changes B images)."""
        G = self.nets["G"]
        with self.precision.autocast():
            rows = [[a, G(a)], [b, G(b)]]
        return [[t.float() for t in row] for row in rows]

    def extra_state(self) -> dict[str, Any]:
        return {"flip_rng": self.flip_gen.get_state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "flip_rng" in state:
            self.flip_gen.set_state(state["flip_rng"])
