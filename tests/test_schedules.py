"""The LR policies against closed forms (where they match the official code and where they differ), and what precision `auto` picks."""

import math

import pytest
import torch

from imtrans import registry
from imtrans.recipe import recipe_from_dict

LR = 0.0002


def lrs_after_epochs(policy: str, epochs: int, epochs_decay: int, n: int) -> list[float]:
    """The learning rate of a tiny CycleGAN after each of ``n`` calls of ``epoch_end`` (what the trainer calls)."""
    r = recipe_from_dict({
        "model": {"generator": {"name": "resnet", "ngf": 4, "n_blocks": 1},
                  "discriminator": {"name": "patchgan", "ndf": 4, "n_layers": 1}},
        "train": {"lr_policy": policy, "epochs": epochs, "epochs_decay": epochs_decay, "precision": "fp32"},
        "optim": {"lr": LR},
    })
    scheme = registry.build_spec("scheme", r.scheme.as_dict(), r)
    scheme.setup({"a": torch.zeros(1, 3, 32, 32), "b": torch.zeros(1, 3, 32, 32)})
    out = []
    for epoch in range(1, n + 1):
        for opt in scheme.optimizers().values():
            opt.step()  # no gradients: parameters stay, but the schedulers see the usual order
        scheme.epoch_end(epoch)
        lrs = {o.param_groups[0]["lr"] for o in scheme.optimizers().values()}
        assert len(lrs) == 1  # G and D follow the same schedule
        out.append(lrs.pop())
    return out


def test_linear_is_the_official_rule():
    # official: 1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1), epoch counted from 0
    got = lrs_after_epochs("linear", 3, 4, 7)
    want = [LR * (1 - max(0, k + 1 - 3) / 5) for k in range(1, 8)]
    assert got == pytest.approx(want, rel=1e-9)


def test_cosine_is_the_official_rule():
    """As the official get_scheduler: CosineAnnealingLR(T_max = n_epochs, eta_min = 0), so the LR reaches 0
    after `epochs` and climbs back during the decay epochs (a cosine is periodic).  See docs/recipes.md."""
    got = lrs_after_epochs("cosine", 3, 2, 5)
    want = [LR * (1 + math.cos(math.pi * k / 3)) / 2 for k in range(1, 6)]
    assert got == pytest.approx(want, rel=1e-6, abs=1e-12)
    assert got[2] == pytest.approx(0.0, abs=1e-12) and got[4] > got[3] > 0


def test_plateau_with_the_official_constant_metric_decays_every_six_epochs():
    """As the official code: ReduceLROnPlateau(factor 0.2, threshold 0.01, patience 5) fed a constant 0,
    so the first epoch sets the best value and every 6th epoch after it multiplies the LR by 0.2."""
    got = lrs_after_epochs("plateau", 10, 10, 20)
    want = [LR * 0.2 ** ((k - 1) // 6) for k in range(1, 21)]
    assert got == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("device,cuda_bf16,cpu_flags,want", [
    ("cuda", True, set(), "bf16"), ("cuda", False, set(), "fp16"),
    ("cpu", False, {"avx512_bf16"}, "bf16"), ("cpu", False, {"amx_bf16", "avx2"}, "bf16"),
    ("cpu", False, {"avx2", "avx512f"}, "fp32"), ("mps", False, {"amx_bf16"}, "fp32"),
])
def test_precision_auto_picks_what_docs_recipes_md_says(monkeypatch, device, cuda_bf16, cpu_flags, want):
    from imtrans.engine import runtime

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: cuda_bf16)
    monkeypatch.setattr(runtime, "cpu_flags", lambda: frozenset(cpu_flags))
    assert runtime.resolve_precision("auto", torch.device(device)) == want
    assert runtime.resolve_precision("fp32", torch.device(device)) == "fp32"  # an explicit choice is kept
