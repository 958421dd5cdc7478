"""CycleGAN (Zhu, Park, Isola, Efros, ICCV 2017) assembled from registered parts.

Naming follows the paper: ``G: A -> B``, ``F: B -> A``; ``D_A`` judges domain A
images (real a vs F(b)), ``D_B`` judges domain B images (real b vs G(a)).
(The official code calls them netG_A, netG_B, and swaps the D names: its
``netD_A`` judges domain B.  See docs/parts.md for the weight-import mapping.)

The training step mirrors the official ``optimize_parameters``: one forward of
both cycles, a generator step with the discriminators frozen, then one
discriminator step on history-pool fakes.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn

from imtrans.errors import ImtransError
from imtrans.schemes.base import Scheme, build_network, set_requires_grad
from imtrans.schemes.gan import ImagePool, discriminator_loss  # noqa: F401  (ImagePool: named here too)

#: loss terms whose role the scheme knows; any other key in [losses] is an extra generator term.
ROLES = ("gan", "cycle", "identity")


def check_channels(G: nn.Module, F: nn.Module, f_key: str, identity_weight: float) -> None:
    """Refuse, when the scheme is built, generators whose channel counts cannot run a CycleGAN step.

    F must undo G (B's channels back to A's); the identity loss feeds B images to G and A images
    to F, so it needs equal channel counts (the official code asserts input_nc == output_nc).
    """
    g_in, g_out = getattr(G, "in_channels", None), getattr(G, "out_channels", None)
    f_in, f_out = getattr(F, "in_channels", None), getattr(F, "out_channels", None)
    if None in (g_in, g_out, f_in, f_out):
        return  # a plugin generator that does not declare its channels meets its first batch instead
    if (f_in, f_out) != (g_out, g_in):
        raise ImtransError(
            f"{f_key} maps {f_in} to {f_out} channels but F must map B's {g_out} channels back to A's {g_in}; "
            f"add [model.generator_b] with in_channels = {g_out} and out_channels = {g_in}")
    if identity_weight > 0 and g_in != g_out:
        raise ImtransError(
            f"the identity loss feeds B images to model.generator, which maps {g_in} to {g_out} channels; "
            "set losses.identity.weight = 0 or give both domains the same number of channels")


class CycleGAN(Scheme):
    """CycleGAN: two generators, two discriminators, adversarial + cycle + identity losses."""

    translators = {"a2b": "G", "b2a": "F"}
    sample_labels = (("A: input", "G(A): translated", "F(G(A)): reconstructed"),
                     ("B: input", "F(B): translated", "G(F(B)): reconstructed"))
    loss_labels = {
        "G_total": "what the two generators minimise together: the sum of their terms",
        "G_gan_b": "adversarial loss of G (A -> B): how well its fakes fool D_B",
        "F_gan_a": "adversarial loss of F (B -> A): how well its fakes fool D_A",
        "cycle_a": "cycle loss A -> B -> A: |F(G(a)) - a|, weighted by lambda_A",
        "cycle_b": "cycle loss B -> A -> B: |G(F(b)) - b|, weighted by lambda_B",
        "idt_a": "identity loss of F: |F(a) - a| (F should leave A images alone)",
        "idt_b": "identity loss of G: |G(b) - b| (G should leave B images alone)",
        "D_A": "discriminator D_A telling real A images from F's fakes (lower: it tells them apart better)",
        "D_B": "discriminator D_B telling real B images from G's fakes (lower: it tells them apart better)",
    }

    def __init__(
        self,
        recipe,
        pool_size: int = 50,
        lambda_A: Optional[float] = None,
        lambda_B: Optional[float] = None,
    ) -> None:
        super().__init__(recipe)
        if pool_size < 0:
            raise ImtransError(f"scheme.pool_size must be 0 (no pool) or more, got {pool_size}")
        m = recipe.model
        self.nets["G"] = build_network("generator", m.generator)
        self.nets["F"] = build_network("generator", m.generator_b or m.generator)
        self.nets["D_A"] = build_network("discriminator", m.discriminator_b or m.discriminator)
        self.nets["D_B"] = build_network("discriminator", m.discriminator)
        self.build_d_augment("D_A", "D_B")  # [model.d_augment]: every input of both discriminators

        self.gan, self.w_gan = self.build_loss("gan")
        self.cycle, w_cycle = self.build_loss("cycle")
        self.idt, self.lambda_idt = self.build_loss("identity")
        check_channels(self.nets["G"], self.nets["F"], "model.generator_b" if m.generator_b else "model.generator",
                       self.lambda_idt)
        # lambda_A/B default to the cycle weight (official: --lambda_A 10 --lambda_B 10)
        self.lambda_A = w_cycle if lambda_A is None else lambda_A
        self.lambda_B = w_cycle if lambda_B is None else lambda_B
        self.build_extra_terms(ROLES)
        seed = recipe.train.seed
        self.pool_a = ImagePool(pool_size, seed + 101)  # fakes of domain A, for D_A
        self.pool_b = ImagePool(pool_size, seed + 202)  # fakes of domain B, for D_B

    # -- set-up -----------------------------------------------------------------
    def setup(self, batch: dict[str, torch.Tensor]) -> None:
        if len(self.extra):
            # extra terms may create parameters lazily on their first batch (e.g. PatchNCE's MLP head)
            with torch.no_grad(), self.precision.autocast():
                a, b = batch["a"], batch["b"]
                G, F = self.nets["G"], self.nets["F"]
                for term in self.extra_terms.values():
                    term(a, G(a), G)
                    term(b, F(b), F)
        g_params = list(self.parameters_of("G", "F")) + list(self.extra.parameters())
        self.make_gan_optimizers(g_params, self.parameters_of("D_A", "D_B"))

    # -- the training step --------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["a"], batch["b"]
        # run(): DDP wrappers when distributed.  The discriminators are called unwrapped in the
        # generator step: they are frozen there, and a DDP forward would wait for their gradients.
        G, F = self.run("G"), self.run("F")
        D_A, D_B = self.nets["D_A"], self.nets["D_B"]
        opt_g, opt_d = self._optimizers["G"], self._optimizers["D"]
        amp = self.precision
        L: dict[str, torch.Tensor] = {}

        # generators: adversarial + cycle + identity (+ extra terms), discriminators frozen
        set_requires_grad([D_A, D_B], False)
        opt_g.zero_grad(set_to_none=True)
        with amp.autocast():
            fake_b = G(real_a)
            rec_a = F(fake_b)
            fake_a = F(real_b)
            rec_b = G(fake_a)
            aug = self.augment_d  # identity without [model.d_augment]; G's gradient flows through it
            L["G_gan_b"] = self.w_gan * self.gan(D_B(aug("D_B", fake_b)), True, for_discriminator=False)
            L["F_gan_a"] = self.w_gan * self.gan(D_A(aug("D_A", fake_a)), True, for_discriminator=False)
            L["cycle_a"] = self.lambda_A * self.cycle(rec_a, real_a)
            L["cycle_b"] = self.lambda_B * self.cycle(rec_b, real_b)
            if self.lambda_idt > 0:
                # identity: G should leave B images alone and F should leave A images alone
                L["idt_b"] = self.lambda_idt * self.lambda_B * self.idt(G(real_b), real_b)
                L["idt_a"] = self.lambda_idt * self.lambda_A * self.idt(F(real_a), real_a)
            for key, term in self.extra_terms.items():
                # raw generators: feature losses call generator.encode(), which DDP does not expose
                L[key] = term.weight * (term(real_a, fake_b, self.nets["G"]) + term(real_b, fake_a, self.nets["F"]))
            loss_g = sum(L.values())
        amp.backward(loss_g)
        self.sync_grads(self.extra.parameters())
        amp.step(opt_g)
        set_requires_grad([D_A, D_B], True)

        # discriminators: 0.5 * (real + fake), fakes from the history pools
        opt_d.zero_grad(set_to_none=True)
        pool_b = self.pool_b.query(fake_b.detach())
        pool_a = self.pool_a.query(fake_a.detach())
        D_A, D_B = self.run("D_A"), self.run("D_B")
        with amp.autocast():
            real_pred_b = D_B(aug("D_B", real_b))
            L["D_B"] = discriminator_loss(self.gan, real_pred_b, D_B(aug("D_B", pool_b)))[0]
            real_pred_a = D_A(aug("D_A", real_a))
            L["D_A"] = discriminator_loss(self.gan, real_pred_a, D_A(aug("D_A", pool_a)))[0]
        amp.backward(L["D_A"] + L["D_B"])
        amp.step(opt_d)
        self.update_d_augment("D_B", real_pred_b)  # ADA: how sure each D is of the reals
        self.update_d_augment("D_A", real_pred_a)
        amp.update()
        L["G_total"] = loss_g
        return {k: v.detach() for k, v in L.items()}

    # -- outputs ------------------------------------------------------------------
    @torch.no_grad()
    def sample_rows(self, a: torch.Tensor, b: torch.Tensor) -> list[list[torch.Tensor]]:
        G, F = self.nets["G"], self.nets["F"]
        with self.precision.autocast():
            fb = G(a)
            fa = F(b)
            rows = [[a, fb, F(fb)], [b, fa, G(fa)]]
        return [[t.float() for t in row] for row in rows]

    def distribute(self, wrap, rank: int) -> None:
        super().distribute(wrap, rank)
        # per-rank history pools with their own streams
        seed = self.recipe.train.seed
        self.pool_a.gen.manual_seed(seed + 101 + 1000 * rank)
        self.pool_b.gen.manual_seed(seed + 202 + 1000 * rank)

    def extra_state(self) -> dict[str, Any]:
        return {"pool_a": self.pool_a.state(), "pool_b": self.pool_b.state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        dev = self.device
        if "pool_a" in state:
            self.pool_a.load(state["pool_a"], dev)
            self.pool_b.load(state["pool_b"], dev)

