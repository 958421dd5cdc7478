"""FID and KID from feature vectors, computed in float64 with no complex arithmetic.

**FID** (Heusel et al. 2017) is the Fréchet distance between Gaussians fitted
to two feature sets::

    FID = |mu1 - mu2|^2 + tr(S1) + tr(S2) - 2 tr( (S1 S2)^(1/2) )

pytorch-fid and clean-fid take ``scipy.linalg.sqrtm`` of the non-symmetric
product ``S1 S2``, which can return complex values or NaN when the covariances
are singular (always the case with fewer images than feature dimensions).
Here the trace term is the nuclear norm ``||L1^T L2||_*`` of factors with
``S = L L^T``: the eigenvalues of ``S1 S2`` are the squared singular values of
``L1^T L2``.  With ``n <= dim`` images the factor is the centred feature matrix
itself (``A^T / sqrt(n - 1)``), so a 120-image FID needs an SVD of a 120 x 120
matrix, exactly; otherwise ``L = V sqrt(max(lambda, 0))`` from ``eigh(S)``.

**KID** (Bińkowski et al. 2018) is the unbiased estimate of the squared MMD
with the kernel ``k(x, y) = (x.y / dim + 1)^3``, averaged over random subsets
(torch-fidelity and clean-fid: 100 subsets of at most 1000 images); it is
reported as mean ± standard deviation over the subsets, as torch-fidelity does.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from imtrans.errors import ImtransError

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
#: torch-fidelity's default seed for the KID subsets
KID_SEED = 2020


class MetricWarning(UserWarning):
    """A number that is computed but needs care when read (e.g. FID from a rank-deficient covariance)."""


def _check_features(feats: np.ndarray, what: str, minimum: int = 2) -> np.ndarray:
    f = np.asarray(feats, dtype=np.float64)
    if f.ndim != 2:
        raise ImtransError(f"{what}: features must be a [N, dim] matrix, got shape {f.shape}")
    if len(f) < minimum:
        raise ImtransError(f"{what} has {len(f)} image(s); FID and KID need at least {minimum} images per set")
    if not np.isfinite(f).all():
        raise ImtransError(f"{what}: the features contain NaN or inf; recompute them at fp32")
    return f


@dataclass
class FeatureStats:
    """Mean, covariance (``ddof = 1``, as pytorch-fid) and a covariance factor of one feature set."""

    mu: np.ndarray
    n: int
    #: ``L`` with ``sigma = L @ L.T`` (``[dim, k]``)
    factor: np.ndarray = field(repr=False)

    @property
    def sigma(self) -> np.ndarray:
        """The covariance ``L @ L.T`` (``[dim, dim]``)."""
        return self.factor @ self.factor.T

    @property
    def trace(self) -> float:
        return float(np.einsum("ij,ij->", self.factor, self.factor))

    @classmethod
    def from_features(cls, feats: np.ndarray, what: str = "feature set") -> "FeatureStats":
        f = _check_features(feats, what)
        n, d = f.shape
        mu = f.mean(0)
        centred = f - mu
        # With n <= d the centred features are the cheapest exact factor (rank <= n - 1 anyway).
        factor = centred.T / np.sqrt(n - 1) if n <= d else psd_factor(centred.T @ centred / (n - 1))
        return cls(mu, n, factor)

    @classmethod
    def from_moments(cls, mu: np.ndarray, sigma: np.ndarray, n: int = 0) -> "FeatureStats":
        mu, sigma = np.asarray(mu, np.float64), np.asarray(sigma, np.float64)
        if sigma.shape != (mu.shape[0], mu.shape[0]):
            raise ImtransError(f"covariance of shape {sigma.shape} does not match a mean of length {mu.shape[0]}")
        return cls(mu, n, psd_factor(sigma))


def psd_factor(a: np.ndarray) -> np.ndarray:
    """``L`` with ``a ~= L @ L.T`` for a symmetric positive semi-definite ``a`` (negative rounding clipped)."""
    a = np.asarray(a, dtype=np.float64)
    lam, v = np.linalg.eigh((a + a.T) / 2)
    return v * np.sqrt(np.clip(lam, 0.0, None))


def sqrtm_psd(a: np.ndarray) -> np.ndarray:
    """The symmetric square root of a positive semi-definite matrix (eigendecomposition, real)."""
    lam, v = np.linalg.eigh((np.asarray(a, np.float64) + np.asarray(a, np.float64).T) / 2)
    return (v * np.sqrt(np.clip(lam, 0.0, None))) @ v.T


def trace_sqrt_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """``tr((s1 @ s2) ** 0.5)`` for covariances ``s1``, ``s2`` (the FID cross term), without complex numbers."""
    return _nuclear(psd_factor(s1), psd_factor(s2))


def _nuclear(l1: np.ndarray, l2: np.ndarray) -> float:
    # Singular values of L1^T L2 are the square roots of the eigenvalues of S1 S2.
    return float(np.linalg.svd(l1.T @ l2, compute_uv=False).sum())


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """FID between two :class:`FeatureStats`; never NaN for finite inputs."""
    if a.mu.shape != b.mu.shape:
        raise ImtransError(f"feature sets of different dimensions ({a.mu.shape[0]} vs {b.mu.shape[0]}) cannot be compared")
    diff = a.mu - b.mu
    tr1, tr2 = a.trace, b.trace
    value = float(diff @ diff) + tr1 + tr2 - 2.0 * _nuclear(a.factor, b.factor)
    # Rounding can leave a tiny negative number for identical sets; anything larger is a bug.
    scale = max(tr1 + tr2, 1e-300)
    if -1e-9 * scale < value < 0.0:
        value = 0.0
    return value


def fid_from_features(f1: np.ndarray, f2: np.ndarray) -> float:
    """FID between two feature matrices ``[N, dim]`` (warns when a covariance cannot be full rank)."""
    a, b = FeatureStats.from_features(f1, "first set"), FeatureStats.from_features(f2, "second set")
    warn_rank(a.n, b.n, a.mu.shape[0])
    return frechet_distance(a, b)


def warn_rank(n1: int, n2: int, dim: int) -> None:
    """One warning when either set has too few images for a full-rank ``dim``-d covariance."""
    n = min(n1, n2)
    if n <= dim:
        warnings.warn(
            f"FID from {n1} and {n2} images of {dim}-d features: a covariance needs more than {dim} images to "
            f"be full rank, so this FID is biased upward and depends on the image count; compare it only "
            f"with FIDs from the same number of images (KID is unbiased)", MetricWarning, stacklevel=3)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: Optional[float] = None,
                      coef0: float = 1.0) -> np.ndarray:
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    return (x @ y.T * gamma + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: Optional[float] = None,
                  coef0: float = 1.0) -> float:
    """Unbiased squared MMD of two equal-size samples (diagonals of k(x,x), k(y,y) left out)."""
    return _mmd2_from_kernels(polynomial_kernel(x, x, degree, gamma, coef0), polynomial_kernel(y, y, degree, gamma, coef0),
                              polynomial_kernel(x, y, degree, gamma, coef0))


def _mmd2_from_kernels(kxx: np.ndarray, kyy: np.ndarray, kxy: np.ndarray) -> float:
    m = len(kxx)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def _canonical(f: np.ndarray) -> np.ndarray:
    """Rows in a fixed order that does not depend on the input order (lexicographic by feature value)."""
    return f[np.lexsort(f.T[::-1])]


def kid(f1: np.ndarray, f2: np.ndarray, subsets: int = KID_SUBSETS, subset_size: int = KID_SUBSET_SIZE,
        seed: int = KID_SEED, degree: int = 3, gamma: Optional[float] = None, coef0: float = 1.0
        ) -> tuple[float, float, int]:
    """KID: ``(mean, std, subset size used)`` over ``subsets`` random subsets drawn without replacement.

    The subset size is ``min(subset_size, N1, N2)`` (clean-fid's rule; torch-fidelity
    refuses smaller sets instead).  Rows are put in a canonical order first, so the
    result does not depend on the order of the images.
    """
    a = _canonical(_check_features(f1, "first set"))
    b = _canonical(_check_features(f2, "second set"))
    if subsets < 1:
        raise ImtransError(f"KID needs at least 1 subset, got {subsets}")
    m = min(subset_size, len(a), len(b))
    if m < 2:
        raise ImtransError(f"KID subset size {subset_size} must be at least 2")
    rng = np.random.RandomState(seed)
    # Kernels of all pairs once when they fit (~200 MB), then each subset is a sub-matrix; same numbers.
    full = len(a) * len(b) <= 25_000_000
    if full:
        kaa, kbb = polynomial_kernel(a, a, degree, gamma, coef0), polynomial_kernel(b, b, degree, gamma, coef0)
        kab = polynomial_kernel(a, b, degree, gamma, coef0)
    vals = np.empty(subsets)
    for i in range(subsets):
        ia = rng.choice(len(a), m, replace=False)
        ib = rng.choice(len(b), m, replace=False)
        if full:
            vals[i] = _mmd2_from_kernels(kaa[np.ix_(ia, ia)], kbb[np.ix_(ib, ib)], kab[np.ix_(ia, ib)])
        else:
            vals[i] = mmd2_unbiased(a[ia], b[ib], degree, gamma, coef0)
    return float(vals.mean()), float(vals.std()), m
