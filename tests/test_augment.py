"""Augmentation presets: prepare sizes, range/shape, paired consistency, eval determinism."""

import pytest
import torch
from PIL import Image

from imtrans.augment import AUGMENTATIONS, to_model_range
from imtrans.errors import ImtransError


def img(w, h):
    return Image.new("RGB", (w, h), (200, 30, 60))


@pytest.mark.parametrize(
    "name,params,src,prepared,out",
    [
        ("resize_and_crop", dict(load_size=20, crop_size=16), (30, 10), (20, 20), (16, 16)),
        ("scale_width", dict(load_size=16, crop_size=12), (32, 16), (16, 12), (12, 16)),
        ("scale_width", dict(load_size=16, crop_size=4), (32, 16), (16, 8), (8, 16)),
        ("scale_width_and_crop", dict(load_size=20, crop_size=8), (40, 30), (20, 15), (8, 8)),
        ("resize", dict(size=12), (30, 10), (12, 12), (12, 12)),
        ("crop", dict(crop_size=8), (12, 10), (12, 10), (8, 8)),
        ("none", dict(), (13, 10), (12, 8), (8, 12)),
    ],
)
def test_prepare_and_forward_shapes(name, params, src, prepared, out):
    aug = AUGMENTATIONS[name](**params)
    t = aug.prepare(img(*src))
    assert t.dtype == torch.uint8 and tuple(t.shape) == (3, prepared[1], prepared[0])
    x = to_model_range(torch.stack([t, t]))
    for mode in (aug.train, aug.eval):
        mode()
        y = aug(x)
        assert y.shape[:2] == (2, 3) and tuple(y.shape[-2:]) == tuple(out)
        assert y.min() >= -1 and y.max() <= 1


def test_to_model_range():
    x = torch.tensor([0, 255, 128], dtype=torch.uint8)
    y = to_model_range(x, "cpu")
    assert y.dtype == torch.float32 and y[0] == -1 and y[1] == 1


@pytest.mark.parametrize("jitter", [0.0, 0.3])
def test_paired_share_params(jitter):
    torch.manual_seed(0)
    aug = AUGMENTATIONS["resize_and_crop"](load_size=16, crop_size=10, color_jitter=jitter).train()
    x = torch.rand(8, 3, 16, 16) * 2 - 1
    y, z = aug(x, x.clone())
    assert torch.equal(y, z) and y.shape == (8, 3, 10, 10)
    assert y.min() >= -1 and y.max() <= 1
    # A one-channel paired map (e.g. a mask) follows the same crop and flip.
    ramp = torch.arange(16.0).view(1, 1, 1, 16).expand(8, 1, 16, 16)
    xs = ramp.expand(8, 3, 16, 16) / 16
    a, m = AUGMENTATIONS["crop"](crop_size=10).train()(xs, ramp)
    assert torch.allclose(a[:, :1] * 16, m)


def test_flip_and_crop_are_random_in_train_fixed_in_eval():
    torch.manual_seed(1)
    aug = AUGMENTATIONS["crop"](crop_size=4)
    x = torch.arange(64.0).view(1, 1, 8, 8).repeat(16, 3, 1, 1) / 64
    aug.train()
    y = aug(x)
    assert len({tuple(s.flatten().tolist()) for s in y}) > 1  # per-sample params
    aug.eval()
    e1, e2 = aug(x), aug(x)
    assert torch.equal(e1, e2) and torch.equal(e1[0], x[0, :, 2:6, 2:6])


def test_flip_only_preset_and_single_image():
    torch.manual_seed(0)
    aug = AUGMENTATIONS["resize"](size=4).train()
    x = torch.rand(32, 3, 4, 4)
    y = aug(x)
    flipped = [torch.equal(y[k], x[k].flip(-1)) for k in range(32)]
    same = [torch.equal(y[k], x[k]) for k in range(32)]
    assert all(f or s for f, s in zip(flipped, same)) and any(flipped) and any(same)
    assert aug(x[0]).shape == (3, 4, 4)
    assert torch.equal(AUGMENTATIONS["none"]().train()(x), x)  # none: flip off by default


def test_bad_sizes():
    with pytest.raises(ImtransError):
        AUGMENTATIONS["resize_and_crop"](load_size=10, crop_size=20)
    with pytest.raises(ImtransError, match="larger than the prepared image"):
        AUGMENTATIONS["crop"](crop_size=20)(torch.zeros(1, 3, 10, 30))


def test_registry_params():
    from imtrans import registry

    reg = registry.get_registry("augmentation")
    assert "resize_and_crop" in reg and "none" in reg
    assert reg.validate("resize_and_crop", {}) == dict(load_size=286, crop_size=256, flip=True, color_jitter=0.0)
    aug = reg.build("none")
    assert aug.imtrans_part.spec == {"name": "none", "flip": False, "color_jitter": 0.0}
