"""How sure is a metric? Percentile bootstrap confidence intervals, stratified by class and seeded."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics import _resampled as R
from imgclf.metrics._arrays import check_probs_labels, nan_to_none

MetricFn = Callable[[np.ndarray, np.ndarray], float]
MetricSpec = Union[Sequence[str], Mapping[str, Union[str, MetricFn]], None]  # noqa: UP007 (runtime alias, py3.10)

# The figures shown with an interval in every evaluation.
HEADLINE_METRICS: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "log_loss", "ece")
# Lower is better for these (the rest: higher is better).
LOWER_IS_BETTER: frozenset[str] = frozenset({"log_loss", "brier", "ece", "hamming_loss"})


@dataclass(frozen=True)
class Interval:
    """A point estimate with a confidence interval; ``str()`` gives ``0.912 [0.901, 0.923]``.

    >>> str(Interval(0.9123, 0.9011, 0.9234))
    '0.912 [0.901, 0.923]'
    """

    value: float
    low: float
    high: float
    confidence: float = 0.95

    def __str__(self) -> str:
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"

    def contains(self, x: float) -> bool:
        """Whether ``low <= x <= high``."""
        return self.low <= x <= self.high

    @property
    def width(self) -> float:
        return self.high - self.low

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (NaN becomes None)."""
        return nan_to_none(self.__dict__)


def bootstrap_ci(
    probs: Any,
    labels: Any,
    metrics: MetricSpec = None,
    *,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    stratified: bool = True,
    n_bins: int = 15,
) -> dict[str, Interval]:
    """Percentile bootstrap intervals for metrics of probabilities ``(N, C)`` and labels ``(N,)``.

    ``metrics`` is ``None`` (the headline set :data:`HEADLINE_METRICS`), a list of built-in names
    (``accuracy``, ``balanced_accuracy``, ``macro_f1``, ``macro_auc``, ``log_loss``, ``brier``, ``ece``), or a
    mapping from a display name to a built-in name or to a function ``fn(probs, labels) -> float``. Built-ins
    are evaluated on all resamples at once (vectorised); functions are called once per resample. Stratified
    resampling draws each class's rows with replacement within the class, so class counts stay fixed. Each
    interval's ``value`` is the metric on the full data; ``low`` / ``high`` are the ``(1 -+ confidence) / 2``
    quantiles of the resampled values (NaN resamples ignored). Same seed, same intervals.
    ``n_resamples=0`` skips the work and returns ``{}`` (after checking the inputs).

    >>> ci = bootstrap_ci(probs, labels, ["accuracy"], n_resamples=1000, seed=0)  # doctest: +SKIP
    >>> str(ci["accuracy"])  # doctest: +SKIP
    '0.912 [0.901, 0.923]'
    """
    if int(n_resamples) < 0:
        raise DataError(f"n_resamples must be >= 0 (0 skips the bootstrap), got {n_resamples}.")
    if not 0 < confidence < 1:
        raise DataError(f"confidence must be in (0, 1), got {confidence}.")
    p, y = check_probs_labels(probs, labels)
    specs = _resolve(metrics, n_bins)
    if int(n_resamples) == 0:
        return {}
    d = R.prepare(p, y, n_bins)
    everything = np.arange(len(y))[None, :]  # (1, N): the full data as one "resample"
    values: dict[str, list[np.ndarray]] = {name: [] for name in specs}
    rng = np.random.default_rng(seed)
    chunk = R.chunk_size(len(y))
    for idx in resample_indices(y if stratified else len(y), int(n_resamples), rng, chunk):
        for name, spec in specs.items():
            if isinstance(spec, str):
                values[name].append(R.KERNELS[spec](d, idx))
            else:
                values[name].append(np.array([_call(spec, p[row], y[row], name) for row in idx]))
    alpha = (1 - confidence) / 2
    out = {}
    for name, spec in specs.items():
        point = float(R.KERNELS[spec](d, everything)[0]) if isinstance(spec, str) else _call(spec, p, y, name)
        out[name] = _interval(point, np.concatenate(values[name]), alpha, confidence)
    return out


def resample_indices(
    strata: np.ndarray | int, n_resamples: int, rng: np.random.Generator, chunk: int
) -> Iterator[np.ndarray]:
    """Yield bootstrap row indices in chunks ``(R, N)``, ``R <= chunk``, ``n_resamples`` rows in all.

    ``strata`` is the number of rows (plain resampling) or a label array ``(N,)``: rows are then drawn with
    replacement within each label, so every resample keeps the label counts.

    >>> next(resample_indices(np.array([0, 0, 1]), 2, np.random.default_rng(0), 10)).shape
    (2, 3)
    """
    if isinstance(strata, (int, np.integer)):
        order = np.arange(int(strata))
        size = np.full(len(order), len(order))  # (N,) size of each column's stratum
        start = np.zeros(len(order), dtype=np.int64)  # (N,) where that stratum starts in ``order``
    else:
        order = np.argsort(strata, kind="stable")  # rows grouped by stratum
        _, first, counts = np.unique(strata[order], return_index=True, return_counts=True)
        size = np.repeat(counts, counts)
        start = np.repeat(first, counts)
    done = 0
    while done < n_resamples:
        r = min(chunk, n_resamples - done)
        # Uniform floats consume the generator row by row, so the draws do not depend on the chunk size.
        u = rng.random((r, len(order)))  # (R, N)
        pick = np.minimum((u * size).astype(np.int64), size - 1)
        yield order[start + pick]  # (R, N)
        done += r


def percentile_interval(point: float, samples: np.ndarray, confidence: float) -> Interval:
    """The percentile interval of bootstrap ``samples`` around ``point`` (NaN samples ignored)."""
    return _interval(point, samples, (1 - confidence) / 2, confidence)


def _interval(point: float, samples: np.ndarray, alpha: float, confidence: float) -> Interval:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return Interval(point, math.nan, math.nan, confidence)
    low, high = np.quantile(finite, [alpha, 1 - alpha])
    return Interval(float(point), float(low), float(high), confidence)


def _resolve(metrics: MetricSpec, n_bins: int) -> dict[str, str | MetricFn]:
    if metrics is None:
        metrics = HEADLINE_METRICS
    if isinstance(metrics, str):
        metrics = [metrics]
    specs: dict[str, str | MetricFn] = (
        dict(metrics.items()) if isinstance(metrics, Mapping) else {str(m): str(m) for m in metrics}
    )
    if not specs:
        raise DataError("no metrics requested for the bootstrap; pass names such as ['accuracy'] or None.")
    for name, spec in specs.items():
        if isinstance(spec, str) and spec not in R.KERNELS:
            raise DataError(
                f"unknown bootstrap metric '{spec}' (for '{name}'); choose from {sorted(R.KERNELS)} "
                "or pass a function fn(probs, labels) -> float."
            )
        if not isinstance(spec, str) and not callable(spec):
            raise DataError(f"bootstrap metric '{name}' must be a built-in name or a callable, got {type(spec)}.")
    if n_bins < 1:
        raise DataError(f"n_bins must be at least 1, got {n_bins}.")
    return specs


def _call(fn: MetricFn, p: np.ndarray, y: np.ndarray, name: str) -> float:
    value = fn(p, y)
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise DataError(f"bootstrap metric '{name}' must return a number, got {value!r}.") from exc
