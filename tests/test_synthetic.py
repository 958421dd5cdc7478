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
