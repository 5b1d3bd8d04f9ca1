"""Do the model's confidences mean anything? ECE (equal-width and equal-mass bins), MCE, NLL, Brier and the
per-bin data of a reliability diagram."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics._arrays import check_probs_labels, nan_to_none

_EPS = float(np.finfo(np.float64).eps)  # the clip scikit-learn's log_loss uses


@dataclass(frozen=True, eq=False)
class ReliabilityBins:
    """Per-bin data of a reliability diagram (top-label confidence). Bin ``b`` covers ``(lower[b], upper[b]]``
    (the first bin includes 0); ``confidence`` and ``accuracy`` are the mean confidence and the accuracy of
    the predictions in the bin, NaN for empty bins."""

    lower: np.ndarray  # (B,)
    upper: np.ndarray  # (B,)
    count: np.ndarray  # (B,) int64
    confidence: np.ndarray  # (B,)
    accuracy: np.ndarray  # (B,)

    @property
    def gap(self) -> np.ndarray:
        """``|accuracy - confidence|`` per bin (NaN for empty bins)."""
        return np.abs(self.accuracy - self.confidence)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready lists (NaN becomes None)."""
        return nan_to_none({k: getattr(self, k) for k in ("lower", "upper", "count", "confidence", "accuracy")})


@dataclass(frozen=True, eq=False)
class CalibrationReport:
    """Calibration figures of top-label confidences.

    ``ece`` uses ``n_bins`` equal-width bins, ``ece_equal_mass`` bins holding (nearly) equal numbers of
    predictions; ``mce`` is the largest per-bin gap of the equal-width bins. ``nll`` is the mean negative
    log-likelihood of the true class and ``brier`` the multiclass Brier score (range [0, 2]). ``bins`` feed the
    reliability diagram.

    >>> cal = calibration_metrics(probs, labels)  # doctest: +SKIP
    >>> f"ECE {cal.ece:.3f}"  # doctest: +SKIP
    'ECE 0.041'
    """

    n: int
    n_bins: int
    ece: float
    ece_equal_mass: float
    mce: float
    nll: float
    brier: float
    accuracy: float
    mean_confidence: float
    bins: ReliabilityBins
    bins_equal_mass: ReliabilityBins

    def to_dict(self) -> dict[str, Any]:
        """Every figure and both bin tables, JSON-ready."""
        return nan_to_none(self.__dict__)


def calibration_metrics(probs: Any, labels: Any, n_bins: int = 15) -> CalibrationReport:
    """Calibration of probabilities ``(N, C)`` against labels ``(N,)``: ECE (equal-width and equal-mass bins),
    MCE, NLL, Brier and reliability-diagram bins.

    >>> cal = calibration_metrics([[0.9, 0.1], [0.2, 0.8]], [0, 1], n_bins=10)
    >>> round(cal.ece, 3), round(cal.mean_confidence, 2)
    (0.15, 0.85)
    """
    if int(n_bins) < 1:
        raise DataError(f"n_bins must be at least 1, got {n_bins}.")
    p, y = check_probs_labels(probs, labels)
    conf = p.max(axis=1)  # (N,)
    correct = (p.argmax(axis=1) == y).astype(np.float64)  # (N,)
    width = _bin_stats(conf, correct, equal_width_bins(conf, n_bins), n_bins)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    width_bins = ReliabilityBins(edges[:-1], edges[1:], *width)
    mass_idx, mass_lower, mass_upper = _equal_mass_bins(conf, n_bins)
    mass = _bin_stats(conf, correct, mass_idx, len(mass_lower))
    mass_bins = ReliabilityBins(mass_lower, mass_upper, *mass)
    n = len(y)
    return CalibrationReport(
        n=n,
        n_bins=int(n_bins),
        ece=_ece(width_bins, n),
        ece_equal_mass=_ece(mass_bins, n),
        mce=float(np.nanmax(width_bins.gap)),
        nll=float(per_sample_nll(p, y).mean()),
        brier=float(per_sample_brier(p, y).mean()),
        accuracy=float(correct.mean()),
        mean_confidence=float(conf.mean()),
        bins=width_bins,
        bins_equal_mass=mass_bins,
    )


def expected_calibration_error(probs: Any, labels: Any, n_bins: int = 15) -> float:
    """Equal-width top-label ECE alone (the headline calibration figure).

    >>> round(expected_calibration_error([[0.9, 0.1], [0.2, 0.8]], [0, 1], n_bins=10), 3)
    0.15
    """
    return calibration_metrics(probs, labels, n_bins).ece


def equal_width_bins(conf: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin index ``(N,)`` of each confidence in ``n_bins`` equal-width bins ``(k/n, (k+1)/n]``."""
    return np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)


def per_sample_nll(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Negative log-likelihood of the true class per sample ``(N,)``, clipped like scikit-learn's log_loss."""
    return -np.log(np.clip(p[np.arange(len(y)), y], _EPS, 1 - _EPS))


def per_sample_brier(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Multiclass Brier term per sample ``(N,)``: the squared distance to the one-hot label."""
    sq = (p**2).sum(axis=1)  # (N,)
    return sq - 2 * p[np.arange(len(y)), y] + 1


def _bin_stats(
    conf: np.ndarray, correct: np.ndarray, idx: np.ndarray, n_bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    count = np.bincount(idx, minlength=n_bins)  # (B,)
    conf_sum = np.bincount(idx, weights=conf, minlength=n_bins)
    acc_sum = np.bincount(idx, weights=correct, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return count.astype(np.int64), conf_sum / count, acc_sum / count


def _equal_mass_bins(conf: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split the sorted confidences into ``min(n_bins, N)`` chunks of (nearly) equal size."""
    n = len(conf)
    k = min(n_bins, n)
    order = np.argsort(conf, kind="stable")
    idx = np.empty(n, dtype=np.int64)
    idx[order] = np.arange(n) * k // n  # (N,) chunk of each sample in sorted order
    lower = np.array([conf[order[i * n // k]] for i in range(k)])
    upper = np.array([conf[order[(i + 1) * n // k - 1]] for i in range(k)])
    return idx, lower, upper


def _ece(bins: ReliabilityBins, n: int) -> float:
    filled = bins.count > 0
    return float(np.sum(bins.count[filled] * bins.gap[filled]) / n)
