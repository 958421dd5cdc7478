"""pix2pix (Isola, Zhu, Zhou, Efros, CVPR 2017) assembled from registered parts.

A conditional GAN for *paired* data: ``G: A -> B`` and a discriminator ``D``
that judges the input and an output stacked on the channel axis
(``[a, G(a)]`` vs ``[a, b]``: 6 channels for RGB).  The step mirrors the
official ``Pix2PixModel.optimize_parameters``: one forward ``fake_b = G(a)``,
then the discriminator update ``0.5 * (gan(D([a, fake_b]), fake) + gan(D([a, b]), real))``,
then the generator update ``gan(D([a, fake_b]), real) + lambda_L1 * |fake_b - b|``
against the *updated* D, with D frozen.

Official defaults (set by the recipes, not forced here): ``unet`` 8 levels with
batch norm and dropout 0.5, ``patchgan`` with ``in_channels = 6`` and batch
norm, ``gan`` mode ``vanilla``, ``lambda_L1 = 100``, no history pool, Adam
2e-4 / beta1 0.5, batch 1.

At test time the official script runs G in *train* mode unless ``--eval``:
dropout stays on and batch norm normalises with the statistics of the test
batch (batch 1: the image itself), as in the paper.  ``test_mode = "train"``
(default) does the same for the sample grids and every evaluation (paired
metrics, FID), one image per forward with the dropout stream seeded for each
(:mod:`imtrans.nets.norm_mode`), without changing any training state.
``test_mode = "eval"`` uses running statistics and no dropout.  The checkpoint
records the mode, and ``imtrans translate`` uses it by default (see
docs/parts.md).
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Literal, Optional

import torch
from torch import nn

from imtrans import registry
from imtrans.errors import ImtransError
from imtrans.nets.norm_mode import batch_statistics, forward_per_image
from imtrans.schemes.base import Scheme, build_network, set_requires_grad
from imtrans.schemes.gan import ImagePool, discriminator_loss

TestMode = Literal["train", "eval"]


@contextlib.contextmanager
def test_forward_mode(net: nn.Module, mode: TestMode, seed: int = 0) -> Iterator[Callable[[torch.Tensor], torch.Tensor]]:
    """Inside the block, a function that runs ``net`` as at test time in ``mode``; the training state is untouched.

    ``train``: each image alone with its own batch statistics and dropout seeded
    with ``seed`` (:func:`~imtrans.nets.norm_mode.forward_per_image`), as the
    official test script with batch 1; running statistics are neither used nor
    updated, and the global random streams do not move.  ``eval``: running
    statistics and no dropout.  The network's train/eval flags are restored on exit.
    """
    if mode == "train":
        with batch_statistics(net):
            yield lambda x: forward_per_image(net, x, seed)
        return
    was_training = net.training
    net.eval()
    try:
        yield net
    finally:
        net.train(was_training)


class Pix2Pix(Scheme):
    """pix2pix: conditional GAN on paired data — U-Net G, PatchGAN D on [input, output], GAN + lambda_L1 * L1.

    Parameters: ``lambda_L1`` weight of the L1 term (default: the weight of
    ``[losses.l1]`` if the recipe has one, else the official 100);
    ``pool_size`` history of fake pairs for D (official pix2pix: 0, none);
    ``test_mode`` ``train`` (official test default: batch statistics, dropout)
    or ``eval`` (running statistics, no dropout) for sample grids and evaluation.
    """

    translators = {"a2b": "G"}
    sample_labels = (("A: input", "G(A): translated", "B: real target"),)
    loss_labels = {
        "G_total": "what the generator minimises (G_GAN + G_L1)",
        "G_GAN": "adversarial loss of G: how well (input, G(input)) fools D",
        "G_L1": "|G(a) - b| against the real target, weighted by lambda_L1",
        "D_real": "discriminator D on real (input, target) pairs",
        "D_fake": "discriminator D on (input, G(input)) pairs",
    }
    #: the trainer feeds pairs: batch["a"][i] and batch["b"][i] belong together
    paired = True

    def __init__(
        self,
        recipe,
        lambda_L1: Optional[float] = None,
        pool_size: int = 0,
        test_mode: TestMode = "train",
    ) -> None:
        super().__init__(recipe)
        if pool_size < 0:
            raise ImtransError(f"scheme.pool_size must be 0 (no pool, the pix2pix default) or more, got {pool_size}")
        m = recipe.model
        self.nets["G"] = build_network("generator", m.generator)
        self.nets["D"] = build_network("discriminator", m.discriminator)
        self._check_channels(recipe)
        self.build_d_augment("D")  # [model.d_augment]: on the stacked pair, real and fake alike

        from imtrans.recipe import LossSpec

        def loss(role: str, default: LossSpec) -> tuple[nn.Module, Optional[float]]:
            spec = recipe.losses.get(role) or default
            mod = registry.build_spec("loss", {k: v for k, v in spec.as_dict().items() if k != "weight"})
            return mod, spec.weight

        self.gan, w_gan = loss("gan", LossSpec(name="gan", mode="vanilla"))  # official --gan_mode vanilla
        self.w_gan = float(getattr(self.gan, "default_weight", 1.0)) if w_gan is None else w_gan
        self.l1, w_l1 = loss("l1", LossSpec(name="l1"))
        self.lambda_L1 = float(lambda_L1 if lambda_L1 is not None else (w_l1 if w_l1 is not None else 100.0))
        unknown = sorted(set(recipe.losses) - {"gan", "l1"})
        if unknown:
            raise ImtransError(
                f"{recipe.source}: losses.{unknown[0]} is not a pix2pix term; pix2pix uses [losses.gan] and [losses.l1] only"
            )
        self.pool = ImagePool(pool_size, recipe.train.seed + 303)
        self.test_mode: TestMode = test_mode

    def _check_channels(self, recipe) -> None:
        G, D = self.nets["G"], self.nets["D"]
        want = getattr(G, "in_channels", 3) + getattr(G, "out_channels", 3)
        have = getattr(D, "in_channels", want)
        if have != want:
            raise ImtransError(
                f"{recipe.source}: model.discriminator.in_channels is {have}, but the pix2pix discriminator sees the "
                f"input and the output stacked ({want} channels); set model.discriminator.in_channels = {want}"
            )

    # -- set-up -----------------------------------------------------------------
    def setup(self, batch: dict[str, torch.Tensor]) -> None:
        self.make_gan_optimizers(self.parameters_of("G"), self.parameters_of("D"))

    # -- the training step --------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        real_a, real_b = batch["a"], batch["b"]
        G, D = self.run("G"), self.run("D")
        opt_g, opt_d = self._optimizers["G"], self._optimizers["D"]
        amp = self.precision
        L: dict[str, torch.Tensor] = {}
        with amp.autocast():
            fake_b = G(real_a)

        # discriminator first (official order): fake pairs from the (by default empty) pool
        set_requires_grad([self.nets["D"]], True)
        opt_d.zero_grad(set_to_none=True)
        fake_ab = self.pool.query(torch.cat([real_a, fake_b.detach()], 1))
        aug = self.augment_d  # identity without [model.d_augment]
        with amp.autocast():
            pred_fake = D(aug("D", fake_ab))
            pred_real = D(aug("D", torch.cat([real_a, real_b], 1)))
            loss_d, real, fake = discriminator_loss(self.gan, pred_real, pred_fake)
            L["D_fake"], L["D_real"] = fake, real
        amp.backward(loss_d)
        amp.step(opt_d)
        self.update_d_augment("D", pred_real)

        # generator against the updated D, which is frozen; D unwrapped: a DDP forward would wait for its grads
        set_requires_grad([self.nets["D"]], False)
        opt_g.zero_grad(set_to_none=True)
        with amp.autocast():
            pred = self.nets["D"](aug("D", torch.cat([real_a, fake_b], 1)))  # G's gradient passes through
            L["G_GAN"] = self.w_gan * self.gan(pred, True, for_discriminator=False)
            L["G_L1"] = self.lambda_L1 * self.l1(fake_b.float(), real_b.float())
            loss_g = L["G_GAN"] + L["G_L1"]
        amp.backward(loss_g)
        amp.step(opt_g)
        amp.update()
        set_requires_grad([self.nets["D"]], True)
        L["G_total"] = loss_g
        return {k: v.detach() for k, v in L.items()}

    # -- outputs ------------------------------------------------------------------
    @torch.no_grad()
    def test_forward(self, x: torch.Tensor, seed: int = 0) -> torch.Tensor:
        """G(x) as at test time (``test_mode``), leaving every training state untouched; float32 out."""
        with test_forward_mode(self.nets["G"], self.test_mode, seed) as G, self.precision.autocast():
            return G(x).float()

    @torch.no_grad()
    def sample_rows(self, a: torch.Tensor, b: torch.Tensor) -> list[list[torch.Tensor]]:
        """One row: input | G(input) | real target (a[i] and b[i] are a pair)."""
        return [[a.float(), self.test_forward(a), b.float()]]

    def extra_state(self) -> dict[str, Any]:
        return {"pool": self.pool.state()} if self.pool.size else {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        if "pool" in state:
            self.pool.load(state["pool"], self.device)

    def distribute(self, wrap, rank: int) -> None:
        super().distribute(wrap, rank)
        self.pool.gen.manual_seed(self.recipe.train.seed + 303 + 1000 * rank)
