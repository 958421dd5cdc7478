"""Measuring translation quality: FID and KID with standard (or plugged-in) features.

* :mod:`~imtrans.eval.inception` — the FID Inception-v3 (pt_inception-2015-12-05 layout);
* :mod:`~imtrans.eval.features` — the :class:`FeatureExtractor` registry kind, resize modes, extraction;
* :mod:`~imtrans.eval.weights` — weights from a path, the cache or a verified download;
* :mod:`~imtrans.eval.metrics` — FID (stable, real arithmetic) and KID (unbiased MMD over subsets);
* :mod:`~imtrans.eval.stats` — cached reference features;
* :mod:`~imtrans.eval.evaluate` — runs, splits and folders -> :class:`EvalResult`.

See docs/eval.md.
"""

from imtrans.eval.evaluate import EvalResult, build_extractor, evaluate_run, evaluate_sets, fid_kid_for_run
from imtrans.eval.features import FeatureExtractor, extract_features
from imtrans.eval.metrics import FeatureStats, fid_from_features, frechet_distance, kid

__all__ = [
    "EvalResult",
    "FeatureExtractor",
    "FeatureStats",
    "build_extractor",
    "evaluate_run",
    "evaluate_sets",
    "extract_features",
    "fid_from_features",
    "fid_kid_for_run",
    "frechet_distance",
    "kid",
]
