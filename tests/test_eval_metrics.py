"""FID and KID arithmetic against closed forms, scipy and a direct O(n^2) MMD."""

import itertools
import warnings

import numpy as np
import pytest

from imtrans.errors import ImtransError
from imtrans.eval.metrics import (
    FeatureStats,
    MetricWarning,
    fid_from_features,
    frechet_distance,
    kid,
    sqrtm_psd,
    trace_sqrt_product,
)

scipy_linalg = pytest.importorskip("scipy.linalg")


def _cov(rng, d, cond):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (q * np.logspace(0, -np.log10(cond), d)) @ q.T


def _scipy_fid(f1, f2):
    """The pytorch-fid formula, via scipy's general sqrtm (the reference we must agree with)."""
    m1, m2 = f1.mean(0), f2.mean(0)
    s1, s2 = np.cov(f1, rowvar=False), np.cov(f2, rowvar=False)
    cross = scipy_linalg.sqrtm(s1 @ s2).real
    return float((m1 - m2) @ (m1 - m2) + np.trace(s1) + np.trace(s2) - 2 * np.trace(cross))


@pytest.mark.parametrize("n,d", [(40, 16), (300, 16), (30, 2048)])
def test_fid_of_a_set_against_itself_is_zero(n, d):
    f = np.random.default_rng(0).normal(size=(n, d)) * 3 + 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        value = fid_from_features(f, f)
    scale = np.trace(np.cov(f, rowvar=False))
    assert 0.0 <= value <= 1e-6 * scale


def test_fid_between_gaussians_matches_the_closed_form():
    rng = np.random.default_rng(1)
    # Commuting (diagonal) covariances: FID = |dmu|^2 + sum (sqrt(a) - sqrt(b))^2.
    d = 64
    a, b = rng.uniform(0.1, 4, d), rng.uniform(0.1, 4, d)
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    expected = float((mu1 - mu2) @ (mu1 - mu2) + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum())
    got = frechet_distance(FeatureStats.from_moments(mu1, np.diag(a)), FeatureStats.from_moments(mu2, np.diag(b)))
    assert got == pytest.approx(expected, rel=1e-10)
    # Non-commuting 2x2: tr sqrt(M) = sqrt(tr M + 2 sqrt(det M)) for M with non-negative eigenvalues.
    s1, s2 = np.array([[2.0, 0.9], [0.9, 1.0]]), np.array([[0.5, -0.3], [-0.3, 3.0]])
    m = s1 @ s2
    cross = np.sqrt(np.trace(m) + 2 * np.sqrt(np.linalg.det(m)))
    mu1, mu2 = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    expected = float((mu1 - mu2) @ (mu1 - mu2) + np.trace(s1) + np.trace(s2) - 2 * cross)
    got = frechet_distance(FeatureStats.from_moments(mu1, s1), FeatureStats.from_moments(mu2, s2))
    assert got == pytest.approx(expected, rel=1e-12)


def test_sample_fid_converges_to_the_population_value():
    rng = np.random.default_rng(2)
    d = 8
    s1, s2 = _cov(rng, d, 10), _cov(rng, d, 10)
    mu2 = np.full(d, 0.5)
    pop = frechet_distance(FeatureStats.from_moments(np.zeros(d), s1), FeatureStats.from_moments(mu2, s2))
    f1 = rng.multivariate_normal(np.zeros(d), s1, size=200_000)
    f2 = rng.multivariate_normal(mu2, s2, size=200_000)
    assert fid_from_features(f1, f2) == pytest.approx(pop, rel=0.02)


@pytest.mark.parametrize("cond", [1e2, 1e6, 1e10])
def test_square_roots_agree_with_scipy_on_ill_conditioned_covariances(cond):
    rng = np.random.default_rng(3)
    s1, s2 = _cov(rng, 48, cond), _cov(rng, 48, cond)
    ref = scipy_linalg.sqrtm(s1).real
    assert np.abs(sqrtm_psd(s1) - ref).max() <= 1e-8 * np.abs(ref).max()
    ref_tr = np.trace(scipy_linalg.sqrtm(s1 @ s2)).real
    assert trace_sqrt_product(s1, s2) == pytest.approx(ref_tr, rel=1e-6)


@pytest.mark.parametrize("n1,n2,d", [(50, 60, 8), (20, 25, 64)])
def test_fid_from_features_agrees_with_the_scipy_formula(n1, n2, d):
    rng = np.random.default_rng(4)
    f1, f2 = rng.normal(size=(n1, d)), rng.normal(size=(n2, d)) * 1.3 + 0.2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", MetricWarning)
        assert fid_from_features(f1, f2) == pytest.approx(_scipy_fid(f1, f2), rel=1e-6)


def test_rank_deficient_covariance_warns_and_stays_finite():
    rng = np.random.default_rng(5)
    f1, f2 = rng.normal(size=(3, 64)), rng.normal(size=(4, 64))
    with pytest.warns(MetricWarning, match="full rank"):
        value = fid_from_features(f1, f2)
    assert np.isfinite(value) and value > 0


def test_too_few_or_broken_features_are_clear_errors():
    rng = np.random.default_rng(6)
    with pytest.raises(ImtransError, match="1 image"):
        fid_from_features(rng.normal(size=(1, 8)), rng.normal(size=(5, 8)))
    bad = rng.normal(size=(5, 8))
    bad[2, 3] = np.nan
    with pytest.raises(ImtransError, match="NaN"):
        kid(bad, rng.normal(size=(5, 8)))


def _direct_mmd2(x, y):
    """Unbiased MMD^2 with k(a, b) = (a.b / d + 1)^3, pair by pair."""
    d = x.shape[1]

    def k(a, b):
        return (a @ b / d + 1) ** 3

    m = len(x)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_a_direct_unbiased_mmd():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(15, 6)), rng.normal(size=(15, 6)) + 0.4
    mean, std, m = kid(x, y, subsets=5, subset_size=1000)
    assert m == 15
    # Subsets of the whole set are the whole set: every subset gives the same, direct value.
    assert mean == pytest.approx(_direct_mmd2(x, y), rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-12)


def test_kid_subsets_are_unbiased_estimates_and_order_free():
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(60, 6)), rng.normal(size=(70, 6)) + 0.4
    mean, std, m = kid(x, y, subsets=50, subset_size=20, seed=1)
    assert m == 20 and std > 0
    # The average over subsets estimates the full-set MMD (same expectation, unbiased estimator).
    full = kid(x, y, subsets=1, subset_size=1000)[0]
    assert abs(mean - full) < 3 * std / np.sqrt(50) + 1e-3
    px, py = rng.permutation(x), rng.permutation(y)
    assert kid(px, py, subsets=50, subset_size=20, seed=1) == (mean, std, m)
