"""Bootstrap intervals for the headline multi-label figures, on many resamples at once.

The resamples come from the same machinery as :func:`bootstrap_ci` (:func:`resample_indices`, seeded, drawn in
chunks; :func:`percentile_interval`). Each kernel takes the resamples as draw counts ``W`` ``(R, N)`` (how often
row ``i`` was drawn in resample ``r``) and returns one value per resample ``(R,)``; a kernel on ``W = ones`` is
exactly the full-data figure of :func:`multilabel_metrics`. Average precision with draw counts as sample
weights equals average precision on the resampled rows, since a repeated row only adds tied scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics._bootstrap import Interval, percentile_interval, resample_indices
from imgclf.metrics._multilabel import (
    MULTILABEL_HEADLINE,
    check_multilabel,
    check_thresholds,
    f1_parts,
    per_sample_lrap,
)
from imgclf.metrics._resampled import chunk_size


@dataclass(frozen=True, eq=False)
class _Prepared:
    p: np.ndarray  # (N, C) probabilities
    y: np.ndarray  # (N, C) 0/1 targets
    tp: np.ndarray  # (N, C) float 0/1 at the thresholds
    fp: np.ndarray
    fn: np.ndarray
    exact: np.ndarray  # (N,) every label right
    wrong: np.ndarray  # (N,) fraction of wrong labels
    lrap: np.ndarray  # (N,) per-row label-ranking average precision


def _prepare(p: np.ndarray, y: np.ndarray, thresholds: np.ndarray) -> _Prepared:
    pred = p >= thresholds
    tp, fp, fn = (a.astype(np.float64) for a in f1_parts(pred, y))
    right = pred == y.astype(bool)
    return _Prepared(p, y, tp, fp, fn, right.all(axis=1).astype(np.float64), 1.0 - right.mean(axis=1),
                     per_sample_lrap(p, y))  # fmt: skip


def _weighted_ap(scores: np.ndarray, y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Average precision of one binary problem under each row of draw counts ``w`` ``(R, N)``; NaN where a
    resample has no positive."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order].astype(np.float64)
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last position of each run of equal scores
    ws = w[:, order]  # (R, N)
    tp = np.cumsum(ws * t, axis=1)[:, ends]  # (R, G) weighted true positives at each distinct score
    seen = np.cumsum(ws, axis=1)[:, ends]  # (R, G) weighted rows at or above it
    positives = tp[:, -1:]  # (R, 1)
    precision = np.divide(tp, seen, out=np.zeros_like(tp), where=seen > 0)
    step = np.diff(np.concatenate([np.zeros_like(positives), tp], axis=1), axis=1)  # (R, G) new positives
    with np.errstate(invalid="ignore", divide="ignore"):
        return (step * precision).sum(axis=1) / positives[:, 0]


def _macro_map(d: _Prepared, w: np.ndarray) -> np.ndarray:
    per_class = np.stack([_weighted_ap(d.p[:, k], d.y[:, k], w) for k in range(d.p.shape[1])], axis=1)  # (R, C)
    with np.errstate(invalid="ignore"):
        defined = np.isfinite(per_class)
        return np.where(defined, per_class, 0).sum(axis=1) / defined.sum(axis=1)


def _micro_map(d: _Prepared, w: np.ndarray) -> np.ndarray:
    c = d.p.shape[1]
    return _weighted_ap(d.p.ravel(), d.y.ravel(), np.repeat(w, c, axis=1))  # rows are (sample, class) pairs


def _macro_f1(d: _Prepared, w: np.ndarray) -> np.ndarray:
    tp, fp, fn = w @ d.tp, w @ d.fp, w @ d.fn  # (R, C) weighted counts
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return f1.sum(axis=1) / (denom > 0).sum(axis=1)


def _micro_f1(d: _Prepared, w: np.ndarray) -> np.ndarray:
    tp, fp, fn = w @ d.tp.sum(axis=1), w @ d.fp.sum(axis=1), w @ d.fn.sum(axis=1)  # (R,)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 2 * tp / (2 * tp + fp + fn)


def _mean_of(attr: str) -> Callable[[_Prepared, np.ndarray], np.ndarray]:
    def kernel(d: _Prepared, w: np.ndarray) -> np.ndarray:
        return w @ getattr(d, attr) / w.sum(axis=1)

    return kernel


KERNELS: dict[str, Callable[[_Prepared, np.ndarray], np.ndarray]] = {
    "macro_map": _macro_map,
    "micro_map": _micro_map,
    "macro_f1": _macro_f1,
    "micro_f1": _micro_f1,
    "exact_match": _mean_of("exact"),
    "hamming_loss": _mean_of("wrong"),
    "lrap": _mean_of("lrap"),
}


def multilabel_resampled(probs: Any, targets: Any, idx: np.ndarray, metric: str, *,
                         thresholds: Any = None) -> np.ndarray:  # fmt: skip
    """``metric`` on explicit resamples ``idx`` ``(R, N)`` of the rows: ``(R,)`` (for tests and custom use)."""
    p, y = check_multilabel(probs, targets)
    d = _prepare(p, y, check_thresholds(thresholds, p.shape[1]))
    r, n = idx.shape
    w = np.bincount((np.arange(r)[:, None] * n + idx).ravel(), minlength=r * n).reshape(r, n).astype(np.float64)
    return KERNELS[metric](d, w)


def multilabel_bootstrap_ci(
    probs: Any,
    targets: Any,
    metrics: Sequence[str] | None = None,
    *,
    thresholds: Any = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Interval]:
    """Percentile bootstrap intervals for multi-label figures of probabilities ``(N, C)`` and targets ``(N, C)``.

    ``metrics`` names figures of :data:`MULTILABEL_HEADLINE` (``macro_map``, ``micro_map``, ``macro_f1``,
    ``micro_f1``, ``exact_match``, ``hamming_loss``, ``lrap``; None: all), computed at ``thresholds`` as
    :func:`multilabel_metrics` does. Rows are resampled with replacement (not stratified: a multi-label row has
    no single class), with the seeded draws of :func:`bootstrap_ci`. Each interval's ``value`` is the figure on
    the full data; NaN resamples (e.g. no positive of any class) are ignored. ``n_resamples=0`` returns ``{}``.

    >>> ci = multilabel_bootstrap_ci(probs, targets, ["macro_map"], seed=0)  # doctest: +SKIP
    >>> str(ci["macro_map"])  # doctest: +SKIP
    '0.874 [0.851, 0.895]'
    """
    if int(n_resamples) < 0:
        raise DataError(f"n_resamples must be >= 0 (0 skips the bootstrap), got {n_resamples}.")
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be in (0, 1), got {confidence}.")
    names = list(MULTILABEL_HEADLINE if metrics is None else metrics)
    unknown = [m for m in names if m not in KERNELS]
    if unknown or not names:
        raise DataError(f"unknown multi-label bootstrap metric {unknown[0] if unknown else None!r}; choose from "
                        f"{', '.join(KERNELS)}.")  # fmt: skip
    p, y = check_multilabel(probs, targets)
    d = _prepare(p, y, check_thresholds(thresholds, p.shape[1]))
    if int(n_resamples) == 0:
        return {}
    n, c = p.shape
    values: dict[str, list[np.ndarray]] = {m: [] for m in names}
    rng = np.random.default_rng(seed)
    for idx in resample_indices(n, int(n_resamples), rng, chunk_size(n * c)):
        r = idx.shape[0]
        w = np.bincount((np.arange(r)[:, None] * n + idx).ravel(), minlength=r * n).reshape(r, n).astype(np.float64)
        for m in names:
            values[m].append(KERNELS[m](d, w))
    full = np.ones((1, n))
    return {m: percentile_interval(float(KERNELS[m](d, full)[0]), np.concatenate(values[m]), confidence)
            for m in names}  # fmt: skip
