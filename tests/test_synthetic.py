"""The procedural synthetic domain: determinism, disjoint streams, ground truth."""

import numpy as np
import pytest

from imtrans.data import DOMAINS
from imtrans.data.synthetic import TASKS, SyntheticDomain
from imtrans.errors import ImtransError


def arr(img):
    return np.asarray(img).astype(np.int16)


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_from_seed(task):
    a1 = SyntheticDomain("train", task=task, count=8, size=32, seed=3)
    a2 = SyntheticDomain("train", task=task, count=8, size=32, seed=3)
    other = SyntheticDomain("train", task=task, count=8, size=32, seed=4)
    for i in range(8):
        assert np.array_equal(arr(a1.load(i)), arr(a2.load(i)))
    assert any(not np.array_equal(arr(a1.load(i)), arr(other.load(i))) for i in range(8))
    assert a1.load(0).size == (32, 32) and a1.load(0).mode == "RGB"


@pytest.mark.parametrize("task", TASKS)
def test_target_is_other_side_rendering_and_differs(task):
    a = SyntheticDomain("train", task=task, side="a", count=6, size=32)
    for i in range(6):
        sa, sb = a.render(i, "a"), a.render(i, "b")
        assert np.array_equal(arr(a.target(i)), np.asarray((sb * 255).round().byte().permute(1, 2, 0)))
        assert np.abs(arr(a.load(i)) - arr(a.target(i))).mean() > 2  # A != B
    # For side b, target() goes back to domain A of b's own scene.
    b = SyntheticDomain("train", task=task, side="b", count=6, size=32)
    assert np.array_equal(
        np.asarray((b.render(2, "a") * 255).round().byte().permute(1, 2, 0)), arr(b.target(2)).astype(np.uint8)
    )


def test_sides_unpaired_and_test_split_disjoint():
    kw = dict(task="stripes", count=20, size=32)
    a = SyntheticDomain("train", side="a", **kw)
    b = SyntheticDomain("train", side="b", **kw)
    ta = SyntheticDomain("test", side="a", **kw)
    train_scenes = {a.scene(i) for i in range(20)} | {b.scene(i) for i in range(20)}
    # b's image i is not a's scene i rendered in B: the sides are unpaired.
    assert all(b.scene(i) != a.scene(i) for i in range(20))
    assert not train_scenes & {ta.scene(i) for i in range(20)}
    assert not np.array_equal(arr(a.target(0)), arr(b.load(0)))


def test_names_and_bounds_and_errors():
    d = DOMAINS["synthetic"]("test", task="paint", side="b", count=2, size=16)
    assert d.name(1) == "paint/test_b/00001.png"
    with pytest.raises(IndexError):
        d.load(2)
    with pytest.raises(ImtransError):
        SyntheticDomain("val")
    with pytest.raises(ImtransError):
        SyntheticDomain("train", count=0)


def test_every_outline_is_visible():
    """No shape overlaps another or leaves the image, so B is a function of what A shows."""
    from imtrans.data.synthetic import _shape_fields

    d = SyntheticDomain("train", count=200, size=64)
    counts = []
    for i in range(200):
        alpha = _shape_fields(d.scene(i))[0]  # [n, S, S] coverage of each shape
        counts.append(alpha.shape[0])
        assert alpha.sum(axis=0).max() <= 1.0 + 1e-6, i  # no pixel covered twice
        border = np.concatenate([alpha[:, 0], alpha[:, -1], alpha[:, :, 0], alpha[:, :, -1]], axis=1)
        assert border.max() == 0, i
    assert min(counts) >= 1 and max(counts) >= 3


def test_rim_is_a_fixed_width_dark_band_inside_each_outline():
    """B = A except a band of size/16 px inside each edge, which keeps a quarter of the colour."""
    from imtrans.data.synthetic import _shape_fields

    d = SyntheticDomain("train", task="rim", count=20, size=64)
    width = 64 / 16
    for i in range(20):
        a, b = d.render(i, "a").numpy(), d.render(i, "b").numpy()
        alpha, _, dist = _shape_fields(d.scene(i))
        inside = alpha.max(axis=0) == 1
        depth = np.where(alpha == 1, dist, -1).max(axis=0)  # how deep each pixel lies in its shape
        background = alpha.max(axis=0) == 0
        untouched = background | (inside & (depth >= width + 0.5))  # background and shape interiors
        rim = inside & (depth <= width - 0.5)
        assert untouched.any() and rim.any(), i
        assert np.abs(b - a)[:, untouched].max() < 1e-6, i
        assert np.allclose(b[:, rim], 0.25 * a[:, rim], atol=1e-6), i



@pytest.mark.parametrize("size", [64, 128])
def test_glow_keeps_the_outline_and_darkens_the_core_to_a_quarter(size):
    """B = A on the background and the outer size/32 px of each shape; deeper than size/32 + 5 size/64
    px the shape keeps a quarter of its colour; in between the factor falls monotonically with depth."""
    from imtrans.data.synthetic import _shape_fields

    d = SyntheticDomain("train", task="glow", count=12, size=size)
    edge, deep = size / 32, size / 32 + 5 * size / 64
    cores = 0
    for i in range(12):
        a, b = d.render(i, "a").numpy(), d.render(i, "b").numpy()
        alpha, _, dist = _shape_fields(d.scene(i))
        inside = alpha.max(axis=0) == 1
        depth = np.where(alpha == 1, dist, -1).max(axis=0)
        kept = (alpha.max(axis=0) == 0) | (inside & (depth <= edge))
        core = inside & (depth >= deep)
        cores += int(core.any())  # a thin ellipse may have no core
        assert (inside & (depth <= edge)).any(), i
        assert np.abs(b - a)[:, kept].max() < 1e-6, i
        assert np.allclose(b[:, core], 0.25 * a[:, core], atol=1e-6), i
        ramp = inside & (depth > edge + 0.5) & (depth < deep - 0.5)
        factor = (b[:, ramp] / np.maximum(a[:, ramp], 1e-6)).max(axis=0)  # brightest channel: least rounding
        order = np.argsort(depth[ramp])
        assert (np.diff(factor[order]) <= 1e-5).all() and 0.25 < factor.min() and factor.max() < 1, i
    assert cores >= 9
