"""Is model A really better than model B on the same images? Exact McNemar and a paired bootstrap."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics._arrays import check_correct, check_labels, check_probs_labels, nan_to_none
from imgclf.metrics._bootstrap import Interval, percentile_interval, resample_indices
from imgclf.metrics._resampled import chunk_size


@dataclass(frozen=True)
class McNemarResult:
    """Exact McNemar test on paired predictions: a two-sided binomial test (p = 1/2) on the discordant pairs
    ``a_only`` (A right, B wrong) and ``b_only`` (B right, A wrong)."""

    n: int
    both_right: int
    a_only: int
    b_only: int
    both_wrong: int
    p_value: float

    @property
    def discordant(self) -> int:
        return self.a_only + self.b_only

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return nan_to_none(self.__dict__)


@dataclass(frozen=True)
class Comparison:
    """Paired comparison of two models on the same labelled images.

    ``difference`` is ``accuracy_a - accuracy_b`` with its paired-bootstrap interval; ``better`` is the name of
    the significantly better model (McNemar ``p < alpha``) or None, and ``verdict`` says so in plain English:
    ``"A is better (p=0.003)"`` or ``"no significant difference (p=0.41)"``.
    """

    name_a: str
    name_b: str
    n: int
    accuracy_a: float
    accuracy_b: float
    difference: Interval
    mcnemar: McNemarResult
    alpha: float
    better: str | None
    verdict: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields, with the test and the interval expanded."""
        return nan_to_none(self.__dict__)


def mcnemar_exact(correct_a: Any, correct_b: Any) -> McNemarResult:
    """Exact two-sided McNemar test of two models' per-sample correctness ``(N,)`` on the same samples.

    ``p = min(1, 2 * P[X <= min(a_only, b_only)])`` with ``X ~ Binomial(a_only + b_only, 1/2)``; 1 when there
    are no discordant pairs.

    >>> r = mcnemar_exact([1, 1, 1, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0])
    >>> r.a_only, r.b_only, round(r.p_value, 4)
    (6, 0, 0.0312)
    """
    from scipy.stats import binom

    a, b = _paired(correct_a, correct_b)
    a_only = int(np.sum(a & ~b))
    b_only = int(np.sum(~a & b))
    n_disc = a_only + b_only
    p = 1.0 if n_disc == 0 else min(1.0, 2.0 * float(binom.cdf(min(a_only, b_only), n_disc, 0.5)))
    return McNemarResult(
        n=len(a),
        both_right=int(np.sum(a & b)),
        a_only=a_only,
        b_only=b_only,
        both_wrong=int(np.sum(~a & ~b)),
        p_value=p,
    )


def paired_bootstrap_diff(
    correct_a: Any,
    correct_b: Any,
    *,
    labels: Any | None = None,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Paired bootstrap interval of the accuracy difference ``acc(A) - acc(B)`` from per-sample correctness.

    The same resampled rows score both models, so the interval reflects the paired design. With ``labels``
    the resampling is stratified by class.

    >>> iv = paired_bootstrap_diff([1, 1, 0, 1], [1, 0, 0, 0], n_resamples=200)
    >>> round(iv.value, 2)
    0.5
    """
    a, b = _paired(correct_a, correct_b)
    if not 0 < confidence < 1 or int(n_resamples) < 1:
        raise DataError(f"need 0 < confidence < 1 and n_resamples >= 1, got {confidence}, {n_resamples}.")
    diff = a.astype(np.float64) - b.astype(np.float64)  # (N,)
    strata = len(diff) if labels is None else check_labels(labels, len(diff))
    rng = np.random.default_rng(seed)
    chunks = resample_indices(strata, int(n_resamples), rng, chunk_size(len(diff)))
    samples = np.concatenate([diff[idx].mean(axis=1) for idx in chunks])  # (n_resamples,)
    return percentile_interval(float(diff.mean()), samples, confidence)


def compare_predictions(
    probs_a: Any,
    probs_b: Any,
    labels: Any,
    *,
    names: Sequence[str] = ("A", "B"),
    alpha: float = 0.05,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> Comparison:
    """Compare two models' probabilities ``(N, C)`` on the same labels ``(N,)``: exact McNemar test plus a
    stratified paired bootstrap of the accuracy difference, and a one-line verdict.

    >>> cmp = compare_predictions(probs_a, probs_b, labels, names=("resnet18", "vit"))  # doctest: +SKIP
    >>> cmp.verdict  # doctest: +SKIP
    'resnet18 is better (p=0.003)'
    """
    if len(names) != 2:
        raise DataError(f"names must hold two model names, got {list(names)}.")
    pa, y = check_probs_labels(probs_a, labels)
    pb, _ = check_probs_labels(probs_b, y, pa.shape[1])
    if pb.shape != pa.shape:
        raise DataError(f"the two models' probabilities differ in shape: {pa.shape} vs {pb.shape}.")
    ca, cb = pa.argmax(axis=1) == y, pb.argmax(axis=1) == y
    test = mcnemar_exact(ca, cb)
    diff = paired_bootstrap_diff(ca, cb, labels=y, n_resamples=n_resamples, confidence=confidence, seed=seed)
    name_a, name_b = str(names[0]), str(names[1])
    p_text = f"p={test.p_value:.2g}"
    if test.p_value < alpha and test.a_only != test.b_only:
        better: str | None = name_a if test.a_only > test.b_only else name_b
        verdict = f"{better} is better ({p_text})"
    else:
        better, verdict = None, f"no significant difference ({p_text})"
    return Comparison(
        name_a=name_a,
        name_b=name_b,
        n=len(y),
        accuracy_a=float(ca.mean()),
        accuracy_b=float(cb.mean()),
        difference=diff,
        mcnemar=test,
        alpha=float(alpha),
        better=better,
        verdict=verdict,
    )


def _paired(correct_a: Any, correct_b: Any) -> tuple[np.ndarray, np.ndarray]:
    a, b = check_correct(correct_a, "correct_a"), check_correct(correct_b, "correct_b")
    if len(a) != len(b):
        raise DataError(f"paired tests need the same samples for both models, got {len(a)} and {len(b)} entries.")
    if len(a) == 0:
        raise DataError("paired tests need at least one sample; both correctness arrays are empty.")
    return a, b
