"""Where does the model go wrong? Confused pairs, highest-loss samples, risk-coverage and confidence histograms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics._arrays import check_class_names, check_probs_labels, nan_to_none, to_numpy
from imgclf.metrics._calibration import per_sample_nll


@dataclass(frozen=True)
class ConfusedPair:
    """``count`` images of class ``true`` were predicted as ``predicted``; ``rate`` is the share of ``true``'s
    images that went there."""

    true: str
    predicted: str
    count: int
    rate: float

    def to_dict(self) -> dict[str, Any]:
        return nan_to_none(self.__dict__)


@dataclass(frozen=True, eq=False)
class TopLosses:
    """The ``k`` samples with the highest loss (NLL of the true class), highest first: their row ``indices``,
    ``losses``, true ``labels``, ``predicted`` classes and the model's ``confidence`` in its prediction."""

    indices: np.ndarray  # (k,) int64
    losses: np.ndarray  # (k,)
    labels: np.ndarray  # (k,)
    predicted: np.ndarray  # (k,)
    confidence: np.ndarray  # (k,)

    def __len__(self) -> int:
        return len(self.indices)

    def to_dict(self) -> dict[str, Any]:
        return nan_to_none(self.__dict__)


@dataclass(frozen=True, eq=False)
class RiskCoverage:
    """Selective prediction: the model answers only when its top confidence is at least a threshold.

    Point ``i`` of the curve accepts every sample with confidence ``>= thresholds[i]`` (thresholds descend),
    covering ``coverage[i]`` of the data at ``accuracy[i]``. ``aurc`` is the area under the risk (1 - accuracy)
    - coverage curve, averaged over samples (lower is better). With a ``target_accuracy``, ``threshold`` is
    the lowest confidence threshold whose accepted set reaches it (largest coverage), with that ``coverage``
    and ``accuracy_at_threshold``; all three are None when no threshold reaches the target.
    """

    thresholds: np.ndarray  # (M,) descending
    coverage: np.ndarray  # (M,) ascending, last is 1
    accuracy: np.ndarray  # (M,)
    aurc: float
    target_accuracy: float | None = None
    threshold: float | None = None
    threshold_coverage: float | None = None
    accuracy_at_threshold: float | None = None

    @property
    def risk(self) -> np.ndarray:
        return 1.0 - self.accuracy

    def to_dict(self) -> dict[str, Any]:
        return nan_to_none(self.__dict__)


@dataclass(frozen=True, eq=False)
class ConfidenceHistogram:
    """Counts of top-label confidences in ``edges`` bins, split into right and wrong predictions."""

    edges: np.ndarray  # (B + 1,)
    correct: np.ndarray  # (B,) int64
    wrong: np.ndarray  # (B,) int64

    def to_dict(self) -> dict[str, Any]:
        return nan_to_none(self.__dict__)


def most_confused(confusion: Any, class_names: Sequence[str] | None = None, k: int = 10) -> list[ConfusedPair]:
    """The ``k`` off-diagonal cells of a confusion matrix ``(C, C)`` (rows true, columns predicted) with the
    most images, largest first; cells with zero images are left out.

    >>> [(p.true, p.predicted, p.count) for p in most_confused([[5, 2], [0, 3]], ["cat", "dog"])]
    [('cat', 'dog', 2)]
    """
    m = to_numpy(confusion)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise DataError(f"confusion must be a square (C, C) matrix, got shape {m.shape}.")
    names = check_class_names(class_names, m.shape[0])
    off = m.astype(np.int64).copy()
    np.fill_diagonal(off, 0)
    rows = off.sum(axis=1) + np.diagonal(m).astype(np.int64)
    order = np.argsort(-off, axis=None, kind="stable")[: max(int(k), 0)]
    pairs = []
    for flat in order:
        i, j = divmod(int(flat), m.shape[1])
        if off[i, j] <= 0:
            break
        pairs.append(ConfusedPair(names[i], names[j], int(off[i, j]), float(off[i, j] / rows[i])))
    return pairs


def top_losses(probs: Any, labels: Any, k: int = 25) -> TopLosses:
    """The ``k`` samples with the highest negative log-likelihood of their true class, highest first.

    >>> top_losses([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]], [1, 1, 0], k=2).indices.tolist()
    [0, 2]
    """
    p, y = check_probs_labels(probs, labels)
    losses = per_sample_nll(p, y)  # (N,)
    order = np.argsort(-losses, kind="stable")[: max(int(k), 0)]
    return TopLosses(
        indices=order.astype(np.int64),
        losses=losses[order],
        labels=y[order],
        predicted=p[order].argmax(axis=1),
        confidence=p[order].max(axis=1),
    )


def risk_coverage(probs: Any, labels: Any, target_accuracy: float | None = None) -> RiskCoverage:
    """The risk-coverage curve of abstaining below a confidence threshold, its AURC, and (given a
    ``target_accuracy``) the threshold with the largest coverage whose accepted predictions reach the target.

    Accepting ``confidence >= rc.threshold`` on the same data gives at least ``target_accuracy``.

    >>> rc = risk_coverage([[0.9, 0.1], [0.6, 0.4], [0.3, 0.7]], [0, 1, 1], target_accuracy=1.0)
    >>> rc.threshold, round(rc.threshold_coverage, 3)
    (0.7, 0.667)
    """
    if target_accuracy is not None and not 0 <= target_accuracy <= 1:
        raise DataError(f"target_accuracy must be in [0, 1], got {target_accuracy}.")
    p, y = check_probs_labels(probs, labels)
    conf = p.max(axis=1)  # (N,)
    correct = p.argmax(axis=1) == y
    order = np.argsort(-conf, kind="stable")
    c_sorted, hits = conf[order], np.cumsum(correct[order])  # (N,)
    n = len(y)
    ends = np.flatnonzero(np.r_[c_sorted[1:] != c_sorted[:-1], True])  # last position of each tie group
    accepted = ends + 1
    accuracy = hits[ends] / accepted
    coverage = accepted / n
    thresholds = c_sorted[ends]
    # AURC over samples: each sample position takes the risk of its tie group.
    group_sizes = np.diff(np.r_[0, accepted])
    aurc = float(np.sum(group_sizes * (1 - accuracy)) / n)
    threshold = cov = acc = None
    if target_accuracy is not None:
        reach = np.flatnonzero(accuracy >= target_accuracy - 1e-12)
        if reach.size:
            best = reach[-1]  # largest coverage that still reaches the target
            threshold, cov, acc = float(thresholds[best]), float(coverage[best]), float(accuracy[best])
    return RiskCoverage(
        thresholds=thresholds,
        coverage=coverage,
        accuracy=accuracy,
        aurc=aurc,
        target_accuracy=None if target_accuracy is None else float(target_accuracy),
        threshold=threshold,
        threshold_coverage=cov,
        accuracy_at_threshold=acc,
    )


def confidence_histogram(probs: Any, labels: Any, n_bins: int = 20) -> ConfidenceHistogram:
    """Histogram data of top-label confidence ``[0, 1]`` in ``n_bins`` bins, for right and wrong predictions.

    >>> h = confidence_histogram([[0.9, 0.1], [0.6, 0.4]], [0, 1], n_bins=2)
    >>> h.correct.tolist(), h.wrong.tolist()
    ([0, 1], [0, 1])
    """
    if int(n_bins) < 1:
        raise DataError(f"n_bins must be at least 1, got {n_bins}.")
    p, y = check_probs_labels(probs, labels)
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    edges = np.linspace(0.0, 1.0, int(n_bins) + 1)
    right, _ = np.histogram(conf[correct], bins=edges)
    wrong, _ = np.histogram(conf[~correct], bins=edges)
    return ConfidenceHistogram(edges=edges, correct=right.astype(np.int64), wrong=wrong.astype(np.int64))
