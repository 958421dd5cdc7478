"""The Scheme interface: a training method the trainer can drive without knowing it.

A scheme owns its networks, optimisers and method-specific state (e.g. history
pools).  The trainer calls, in order::

    scheme = build("scheme", name, recipe, **params)
    scheme.to(device); scheme.configure(precision)
    scheme.setup(first_batch)          # data-dependent init, then optimisers
    loop: losses = scheme.train_step(batch)   # dict of detached 0-d tensors (no host sync)
    scheme.epoch_end(epoch)            # LR schedulers

and, for checkpoints, ``networks()`` / ``optimizers()`` / ``schedulers()`` /
``extra_state()``.  Schemes never import the trainer.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any, Iterator, Literal

import torch
from torch import nn

from imtrans import registry
from imtrans.build import build_part
from imtrans.errors import ImtransError
from imtrans.schemes.d_augment import DAugmentMixin
from imtrans.schemes.terms import ExtraTerm


class Precision:
    """Autocast and (fp16 only) gradient scaling for one device."""

    def __init__(self, mode: str, device: torch.device):
        self.mode = mode
        self.device = device
        self.dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
        self.scaler: torch.amp.GradScaler | None = None
        #: check each loss before its update and skip updates from non-finite losses
        #: (one host sync per step, so only when --skip-nonfinite asks for it)
        self.check_finite = False
        self._skip = False
        if mode == "fp16":
            if device.type != "cuda":
                raise ImtransError(
                    f"precision 'fp16' needs a CUDA device, this run uses '{device.type}'; "
                    "use precision = \"bf16\" or \"fp32\""
                )
            self.scaler = torch.amp.GradScaler("cuda")

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        if self.check_finite and not bool(torch.isfinite(loss.detach()).all()):
            self._skip = True
            return
        (self.scaler.scale(loss) if self.scaler else loss).backward()

    def step(self, opt: torch.optim.Optimizer) -> None:
        if self._skip:
            self._skip = False
            opt.zero_grad(set_to_none=True)
            return
        if self.scaler:
            self.scaler.step(opt)
        else:
            opt.step()

    def update(self) -> None:
        if self.scaler:
            self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The gradient scaler's state (fp16 only; empty otherwise)."""
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


@contextlib.contextmanager
def preserve_state(module: nn.Module):
    """Run inference inside without changing training state: buffers and RNG streams are restored.

    Batch-norm layers in train mode update their running statistics and dropout draws random
    numbers; sampling or evaluating between steps must leave neither trace, or a run that samples
    would train differently from one that does not (and a resumed run from an uninterrupted one).
    """
    saved = [(buf, buf.detach().clone()) for buf in module.buffers()]
    cuda = torch.cuda.is_available() and torch.cuda.is_initialized()
    with torch.random.fork_rng(devices=[torch.cuda.current_device()] if cuda else []):
        try:
            yield
        finally:
            with torch.no_grad():
                for buf, value in saved:
                    buf.copy_(value)


def set_requires_grad(nets: list[nn.Module], flag: bool) -> None:
    """Freeze/unfreeze networks (the discriminators during the generator step)."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def make_optimizer(
    params,
    name: Literal["adam", "adamw"] = "adam",
    lr: float = 2e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    weight_decay: float = 0.0,
    eps: float = 1e-8,
) -> torch.optim.Optimizer:
    """Adam/AdamW over the trainable ``params`` (explicit settings, like timm's ``create_optimizer_v2``)."""
    params = [p for p in params if p.requires_grad]
    kw: dict[str, Any] = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
    # foreach kernels batch the per-parameter updates (one launch instead of dozens);
    # fused is faster still on CUDA but its CPU path is not always available.
    first = params[0] if params else None
    if first is not None and first.is_cuda:
        kw["fused"] = True
    else:
        kw["foreach"] = True
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return cls(params, **kw)


def make_scheduler(
    opt: torch.optim.Optimizer,
    policy: Literal["linear", "step", "cosine", "plateau", "constant"] = "linear",
    epochs: int = 100,
    epochs_decay: int = 100,
    step_epochs: int = 50,
):
    """The official CycleGAN LR policies, stepped once per epoch."""
    if policy == "linear":
        # official: lr_l = 1 - max(0, epoch + epoch_count - n_epochs) / (n_epochs_decay + 1), epoch_count = 1
        def rule(epoch: int) -> float:
            return 1.0 - max(0, epoch + 1 - epochs) / float(epochs_decay + 1)

        return torch.optim.lr_scheduler.LambdaLR(opt, rule)
    if policy == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=step_epochs, gamma=0.1)
    if policy == "cosine":
        # official: CosineAnnealingLR(T_max=n_epochs, eta_min=0), so the LR reaches 0 after `epochs` and, being
        # a cosine, climbs back during the decay epochs; epochs_decay = 0 gives one plain annealing to 0
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, epochs), eta_min=0)
    if policy == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.2, threshold=0.01, patience=5)
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda epoch: 1.0)


def schedule_settings(recipe) -> dict[str, Any]:
    """The recipe keys that define the LR schedule (compared on resume to notice a changed schedule)."""
    t, o = recipe.train, recipe.optim
    return {"train.epochs": t.epochs, "train.epochs_decay": t.epochs_decay, "train.lr_policy": t.lr_policy,
            "train.lr_step_epochs": t.lr_step_epochs, "optim.lr": o.lr, "optim.lr_d": o.lr_d}


def fast_forward(sched, epoch: int) -> None:
    """Put a freshly built scheduler at ``epoch`` and set its optimiser's LR from the closed form.

    Used when a resumed run changed its schedule: the new rule applies at once, not after the
    next epoch end (which would keep e.g. a finished run's final LR of 0 for a whole epoch).
    """
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        return  # adaptive: its state, not a rule, decides the LR
    sched.last_epoch = epoch
    if isinstance(sched, torch.optim.lr_scheduler.LambdaLR):
        lrs = [base * fn(epoch) for base, fn in zip(sched.base_lrs, sched.lr_lambdas)]
    else:
        lrs = sched._get_closed_form_lr()  # StepLR / CosineAnnealingLR define it
    for group, lr in zip(sched.optimizer.param_groups, lrs):
        group["lr"] = lr
    sched._last_lr = list(lrs)


def build_network(kind: str, spec) -> nn.Module:
    """Build a registered network from a recipe spec, then load any zoo weights it names (see :mod:`imtrans.build`).

    A part without trainable parameters cannot be a scheme's network: said here (at ``imtrans check``)
    rather than as the optimiser's "empty parameter list" when training starts.
    """
    net = build_part(kind, spec.as_dict())
    if not isinstance(net, nn.Module) or not any(p.requires_grad for p in net.parameters()):
        raise ImtransError(
            f"{kind} '{spec.name}' has no trainable parameters, so it cannot be trained as the scheme's {kind} "
            f"(is a loss or another kind of part registered as a {kind}?); choose a {kind} from "
            f"`imtrans list {kind}`, or register that part with the hook of its own kind")
    return net


class Scheme(DAugmentMixin, nn.Module):
    """Base class: networks live in ``self.nets`` (an ``nn.ModuleDict``); ``[model.d_augment]`` via :class:`DAugmentMixin`."""

    #: names of the translation networks, e.g. {"a2b": "G", "b2a": "F"}
    translators: dict[str, str] = {}
    #: column labels of each row that ``sample_rows`` returns (the sample grid's headers),
    #: e.g. (("A: input", "G(A): translated"),); empty: the grid has no headers
    sample_labels: tuple[tuple[str, ...], ...] = ()
    #: what each loss that ``train_step`` returns means, in words (the run's report page shows it)
    loss_labels: dict[str, str] = {}

    def __init__(self, recipe) -> None:
        super().__init__()
        self.recipe = recipe
        self.nets = nn.ModuleDict()
        self.precision = Precision("fp32", torch.device("cpu"))
        self._optimizers: dict[str, torch.optim.Optimizer] = {}
        self._schedulers: dict[str, Any] = {}
        self._wrapped: dict[str, nn.Module] = {}
        self.rank = 0
        #: discriminator name -> its augmentation (filled by build_d_augment; empty: D sees inputs unchanged)
        self.d_augment = nn.ModuleDict()

    # -- wiring --------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def configure(self, precision: Precision) -> None:
        self.precision = precision

    def setup(self, batch: dict[str, torch.Tensor]) -> None:
        """Data-dependent initialisation, then optimisers and schedulers."""
        raise NotImplementedError

    def networks(self) -> dict[str, nn.Module]:
        """What a checkpoint stores as networks: ``nets``, plus each extra generator term that holds
        parameters (PatchNCE's heads, a learned perceptual head) as ``loss_<key>``: they are trained
        with the generators, so a resume without them would restart them from scratch."""
        nets = dict(self.nets.items())
        for key, term in getattr(self, "extra", {}).items():
            if any(True for _ in term.parameters()):
                nets[f"loss_{key}"] = term
        return nets

    # -- losses ----------------------------------------------------------------
    def build_loss(
        self, role: str, default_name: str | None = None, default_weight: float | None = None
    ) -> tuple[nn.Module, float]:
        """The loss of ``[losses.<role>]`` (else ``default_name``, default ``role``, with its defaults) and its weight.

        The weight is the recipe's ``weight``, else ``default_weight``, else the loss's own ``default_weight``.
        """
        from imtrans.recipe import LossSpec

        spec = self.recipe.losses.get(role) or LossSpec(name=default_name or role)
        mod = registry.build_spec("loss", {k: v for k, v in spec.as_dict().items() if k != "weight"})
        if spec.weight is not None:
            weight = spec.weight
        elif default_weight is not None:
            weight = default_weight
        else:
            weight = float(getattr(mod, "default_weight", 1.0))
        return mod, float(weight)

    def build_extra_terms(self, roles: tuple[str, ...]) -> None:
        """Every ``[losses]`` key without a role in this scheme becomes an extra generator term.

        Fills ``self.extra`` (the loss modules, so their parameters are trained and
        checkpointed) and ``self.extra_terms`` (each with its weight and declared call).
        """
        self.extra = nn.ModuleDict()
        self.extra_terms: dict[str, ExtraTerm] = {}
        for key in self.recipe.losses:
            if key not in roles:
                mod, weight = self.build_loss(key)
                self.extra[key] = mod
                self.extra_terms[key] = ExtraTerm(key, mod, weight)

    def distribute(self, wrap, rank: int) -> None:
        """Wrap each network for data parallelism (``wrap(net) -> module``); weights stay in ``nets``."""
        self.rank = rank
        for k, net in self.nets.items():
            w = wrap(net)
            self._wrapped[k] = w
            inner = getattr(w, "module", w)
            if inner is not net:  # SyncBatchNorm conversion made a new module: keep them one
                self.nets[k] = inner

    def sync_grads(self, params) -> None:
        """Average the gradients of parameters that no DDP wrapper owns (e.g. a loss's own head)."""
        if not self._wrapped:
            return
        import torch.distributed as dist

        if not (dist.is_available() and dist.is_initialized()):
            return
        world = dist.get_world_size()
        for p in params:
            if p.grad is not None:
                dist.all_reduce(p.grad)
                p.grad /= world

    def run(self, name: str) -> nn.Module:
        """The network to call when its gradients must be synchronised (the DDP wrapper, if any)."""
        w = self._wrapped.get(name)  # no `or`: a compiled module refuses truth tests (len())
        return w if w is not None else self.nets[name]

    def compile_networks(self, backend: str = "inductor") -> None:
        """``torch.compile`` what ``train_step`` calls; the plain modules stay in ``nets`` for checkpoints.

        One graph per network: shapes are fixed within a run, so ``dynamic=False`` keeps
        dynamo from re-tracing with symbolic sizes on the second call.
        """
        for name in self.nets:
            self._wrapped[name] = torch.compile(self.run(name), backend=backend, dynamic=False)

    def to_channels_last(self) -> None:
        """Every network's 4-D weights in channels-last layout (convolution outputs follow; the math is unchanged)."""
        for net in self.nets.values():
            net.to(memory_format=torch.channels_last)

    def make_gan_optimizers(self, g_params, d_params) -> None:
        """Optimisers ``G`` and ``D`` with their LR schedulers, from the recipe's [optim] and [train]."""
        o, t = self.recipe.optim, self.recipe.train
        common = dict(name=o.name, betas=o.betas, eps=o.eps, weight_decay=o.weight_decay)
        self._optimizers = {
            "G": make_optimizer(g_params, lr=o.lr, **common),
            "D": make_optimizer(d_params, lr=o.lr_d or o.lr, **common),
        }
        self._schedulers = {
            k: make_scheduler(opt, t.lr_policy, t.epochs, t.epochs_decay, t.lr_step_epochs)
            for k, opt in self._optimizers.items()
        }

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self._optimizers

    def schedulers(self) -> dict[str, Any]:
        return self._schedulers

    def lr(self) -> float:
        opt = next(iter(self._optimizers.values()), None)
        return float(opt.param_groups[0]["lr"]) if opt else math.nan

    def epoch_end(self, epoch: int, metric: float | None = None) -> None:
        for s in self._schedulers.values():
            if isinstance(s, torch.optim.lr_scheduler.ReduceLROnPlateau):
                s.step(metric if metric is not None else 0.0)
            else:
                s.step()

    # -- method --------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def sample_rows(self, a: torch.Tensor, b: torch.Tensor) -> list[list[torch.Tensor]]:
        """Rows of images for a sample grid (each a list of [B,C,H,W] in [-1,1]); ``sample_labels`` names their columns."""
        raise NotImplementedError

    def translator(self, direction: str) -> nn.Module:
        try:
            return self.nets[self.translators[direction]]
        except KeyError:
            raise ImtransError(
                f"direction '{direction}' is not available; choose one of {', '.join(self.translators)}"
            ) from None

    def training_state(self) -> dict[str, Any]:
        """Everything but the weights that an exact resume needs: optimisers, schedulers, method state."""
        st: dict[str, Any] = {
            "optimizers": {k: o.state_dict() for k, o in self._optimizers.items()},
            "schedulers": {k: s.state_dict() for k, s in self._schedulers.items()},
            "scheme": self.extra_state(),
        }
        aug = self.d_augment_state()
        if aug:  # ADA's probability and counters: resumed exactly, the same on every rank
            st["d_augment"] = aug
        scaler = self.precision.state_dict()
        if scaler:
            st["scaler"] = scaler
        return st

    def load_training_state(
        self, state: dict[str, Any], extra: dict[str, Any] | None = None, restart_schedule_at: int | None = None
    ) -> None:
        """Load :meth:`training_state`'s output (``extra``: this rank's method state, if not ``state``'s).

        ``restart_schedule_at=epoch``: the recipe changed the LR schedule since the checkpoint, so the
        schedulers built from the recipe are kept and moved to ``epoch`` instead of loaded.
        """
        fresh = {k: list(getattr(s, "base_lrs", [])) for k, s in self._schedulers.items()}
        for k, o in self._optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        for k, s in self._schedulers.items():
            if restart_schedule_at is None or not fresh[k]:
                s.load_state_dict(state["schedulers"][k])
                continue
            s.base_lrs = fresh[k]
            for group, lr in zip(s.optimizer.param_groups, fresh[k]):
                group["initial_lr"] = lr
            fast_forward(s, restart_schedule_at)
        self.load_extra_state(state.get("scheme", {}) if extra is None else extra)
        self.load_d_augment_state(state.get("d_augment") or {})
        self.precision.load_state_dict(state.get("scaler", {}))

    @torch.no_grad()
    def samples(self, a: torch.Tensor, b: torch.Tensor) -> list[list[torch.Tensor]]:
        """:meth:`sample_rows` without side effects on training (see :func:`preserve_state`)."""
        with preserve_state(self):
            return self.sample_rows(a, b)

    def extra_state(self) -> dict[str, Any]:
        """Method state beyond weights/optimisers (pools...) as tensors and plain values."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass

    def parameters_of(self, *names: str) -> Iterator[nn.Parameter]:
        for n in names:
            yield from self.nets[n].parameters()
