"""The drift verdict for one window of predictions against the bundle's reference statistics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics import to_numpy
from imgclf.monitor._reference import _check_probs, check_reference, project_features
from imgclf.monitor._stats import chi2_test, ks_test, mmd_test

MIN_WINDOW = 10
TESTS = ("confidence_ks", "class_chi2", "feature_mmd")


@dataclass(frozen=True)
class Window:
    """A window of served predictions: top-1 confidences ``(N,)``, predicted classes ``(N,)`` and, when logged,
    projected features ``(N, k)`` (see :func:`project_features`). ``start`` / ``end`` are the first and last
    record times when the window came from an audit log.

    >>> Window(np.array([0.9, 0.8]), np.array([0, 1])).n
    2
    """

    confidences: np.ndarray
    predicted: np.ndarray
    features: np.ndarray | None = None
    index: int = 0
    start: str | None = None
    end: str | None = None
    labels: np.ndarray | None = None  # (N, C) 0/1 predicted labels of a multi-label model

    @property
    def n(self) -> int:
        return int(len(self.confidences))


@dataclass(frozen=True)
class DriftTest:
    """One test of the family: its statistic, raw p-value and Bonferroni-adjusted p-value."""

    name: str
    statistic: float
    p_value: float
    p_adjusted: float
    drifted: bool

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "statistic": self.statistic, "p_value": self.p_value,
                "p_adjusted": self.p_adjusted, "drifted": self.drifted}  # fmt: skip


@dataclass(frozen=True)
class DriftReport:
    """The verdict on one window: ``drifted`` when any Bonferroni-adjusted p-value is below ``alpha``.

    >>> # report = drift_check(reference, probs, features); print(report.verdict, report.p_values)
    """

    drifted: bool
    alpha: float
    n: int
    tests: tuple[DriftTest, ...]
    window: int = 0
    start: str | None = None
    end: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def verdict(self) -> str:
        return "drift" if self.drifted else "no drift"

    @property
    def p_values(self) -> dict[str, float]:
        """Bonferroni-adjusted p-values by test name."""
        return {t.name: t.p_adjusted for t in self.tests}

    def describe(self) -> str:
        """One line for people and logs: ``drift (alpha 0.05, 200 predictions): class_chi2 p=3.1e-09 DRIFT, ...``."""
        tests = ", ".join(f"{t.name} p={t.p_adjusted:.2g}{' DRIFT' if t.drifted else ''}" for t in self.tests)
        return f"{self.verdict} (alpha {self.alpha:g}, {self.n} predictions): {tests}"

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "drifted": self.drifted, "alpha": self.alpha, "n": self.n,
                "window": self.window, "start": self.start, "end": self.end,
                "tests": [t.to_dict() for t in self.tests], "notes": list(self.notes)}  # fmt: skip


def check_window(reference: dict[str, Any], window: Window, *, alpha: float = 0.05,
                 permutations: int = 200) -> DriftReport:  # fmt: skip
    """Test ``window`` against ``reference`` (from :func:`reference_stats`) at family-wise level ``alpha``.

    Tests: KS on top-1 confidences, chi-square on predicted-class counts, and an MMD permutation test on
    projected features when both the reference and the window have them (at least ``8 / alpha`` permutations,
    so that its smallest p-value can pass the corrected level). Bonferroni: each p-value is
    multiplied by the number of tests run (capped at 1) and compared with ``alpha``.

    >>> # check_window(ref, Window(conf, pred, feats)).drifted
    """
    ref = check_reference(reference)
    if not 0 < alpha < 1:
        raise DataError(f"alpha must be in (0, 1), got {alpha}.")
    if window.n < MIN_WINDOW:
        raise DataError(f"a drift window needs at least {MIN_WINDOW} predictions, got {window.n}.")
    c = int(ref["num_classes"])
    pred = np.asarray(window.predicted, np.int64)
    if pred.min() < 0 or pred.max() >= c:
        raise DataError(f"predicted classes must lie in [0, {c}) like the reference, got {pred.min()}..{pred.max()}.")
    raw: list[tuple[str, float, float]] = [
        ("confidence_ks", *ks_test(np.asarray(ref["confidence"]), window.confidences)),
        ("class_chi2", *chi2_test(np.asarray(ref["class_counts"]), np.bincount(pred, minlength=c))),
    ]
    notes = []
    spec = ref["features"]
    if spec is not None and window.features is not None:
        feats = np.asarray(window.features, np.float64)
        sample = np.asarray(spec["sample"], np.float64)
        if feats.shape != (window.n, sample.shape[1]):
            raise DataError(f"window features must be projected to shape ({window.n}, {sample.shape[1]}), "
                            f"got {feats.shape}; use project_features(reference, embeddings)")  # fmt: skip
        seed = int(ref.get("seed", 0)) + window.index
        # the smallest p a permutation test can give is 1 / (permutations + 1): enough of them that it can pass
        # the Bonferroni-corrected level (4 tests at most)
        permutations = max(permutations, math.ceil(2 * 4 / alpha))
        raw.append(("feature_mmd", *mmd_test(sample, feats, permutations=permutations, seed=seed)))
    elif spec is not None:
        notes.append("no features in this window: feature test skipped")
    if "label_counts" in ref and window.labels is not None:
        raw.append(("label_rate_chi2", *label_rate_test(ref, np.asarray(window.labels))))
    m = len(raw)
    tests = tuple(DriftTest(name, stat, p, min(1.0, p * m), p * m < alpha) for name, stat, p in raw)
    return DriftReport(any(t.drifted for t in tests), alpha, window.n, tests, window.index, window.start,
                       window.end, tuple(notes))  # fmt: skip


def drift_check(reference: dict[str, Any], window_probs: Any, window_features: Any | None = None,
                alpha: float = 0.05, *, projected: bool = False, permutations: int = 200) -> DriftReport:  # fmt: skip
    """Drift verdict for a window of calibrated probabilities ``(N, C)`` and optional embeddings.

    ``window_features`` are raw embeddings ``(N, D)`` (projected here with the reference's PCA), or already
    projected ``(N, k)`` with ``projected=True``. See :func:`check_window` for the tests.

    >>> # report = drift_check(meta.extra["monitor"], probs, embeddings); report.verdict
    """
    p = _check_probs(window_probs, "window_probs")
    ref = check_reference(reference)
    if p.shape[1] != ref["num_classes"]:
        raise DataError(f"window_probs has {p.shape[1]} classes, the reference {ref['num_classes']}.")
    feats = None
    if window_features is not None:
        feats = to_numpy(window_features).astype(np.float64)
        if not projected and ref["features"] is not None:
            feats = project_features(ref, feats)
    labels = (p >= np.asarray(ref["thresholds"])).astype(np.int64) if "thresholds" in ref else None
    return check_window(ref, Window(p.max(axis=1), p.argmax(axis=1), feats, labels=labels), alpha=alpha,
                        permutations=permutations)  # fmt: skip


def label_rate_test(reference: dict[str, Any], labels: np.ndarray) -> tuple[float, float]:
    """Has any label's positive rate changed? A chi-square test per label (positives vs negatives, reference vs
    window), Bonferroni-combined over labels: the largest statistic and ``min(1, C * min p)``.

    >>> ref = {"n": 100, "label_counts": [50, 10]}
    >>> label_rate_test(ref, np.array([[1, 1]] * 10 + [[1, 0]] * 40 + [[0, 0]] * 50))[1] > 0.05  # same rates
    True
    >>> label_rate_test(ref, np.array([[1, 0], [0, 0]] * 50))[1] < 0.05  # the second label vanished
    True
    """
    counts = np.asarray(reference["label_counts"], np.float64)
    n_ref, n_win = float(reference["n"]), float(len(labels))
    win = labels.sum(axis=0).astype(np.float64)  # (C,)
    stats_p = [chi2_test(np.array([r, n_ref - r]), np.array([w, n_win - w])) for r, w in zip(counts, win)]
    statistic = max(s for s, _ in stats_p)
    return statistic, min(1.0, len(stats_p) * min(p for _, p in stats_p))
