"""Multi-label figures from per-class probabilities ``(N, C)`` and 0/1 targets ``(N, C)``, in numpy.

Every figure equals scikit-learn's on the same arrays (the unit tests check it): average precision
(``average_precision_score``), precision / recall / F1 (``precision_recall_fscore_support``), exact match
(``accuracy_score``), Hamming loss and label-ranking average precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics._arrays import check_class_names, nan_to_none, to_numpy

# LRAP compares every pair of classes of a row: rows are taken in chunks of at most this many cells.
_CHUNK_CELLS = 4_000_000


def check_multilabel(probs: Any, targets: Any, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate per-class probabilities ``(N, C)`` in [0, 1] (independent sigmoids, rows need not sum to 1) and
    0/1 targets of the same shape; return float64 / int64 arrays. Raises DataError naming the problem.

    >>> p, y = check_multilabel([[0.9, 0.2]], [[1, 0]])
    >>> p.dtype, y.tolist()
    (dtype('float64'), [[1, 0]])
    """
    p = to_numpy(probs).astype(np.float64)
    y = to_numpy(targets)
    if p.ndim != 2 or p.shape[0] == 0:
        raise DataError(f"probs must be a non-empty 2-D array (N, C) of per-class probabilities, got shape {p.shape}.")
    if y.shape != p.shape:
        raise DataError(f"targets must be 0/1 (N, C) like probs {p.shape}, got shape {y.shape}; multi-label metrics "
                        "take multi-hot targets, not class indices.")  # fmt: skip
    if num_classes is not None and p.shape[1] != num_classes:
        raise DataError(f"probs has {p.shape[1]} columns but there are {num_classes} class names; they must match.")
    if not np.all(np.isfinite(p)):
        raise DataError("probs contains NaN or infinite values; the model's outputs are broken (check for NaN loss).")
    if p.min() < 0 or p.max() > 1:
        raise DataError(f"probs must lie in [0, 1] (found {p.min():.4g}..{p.max():.4g}); these look like logits: "
                        "apply a sigmoid first.")  # fmt: skip
    if not np.isin(y, (0, 1)).all():
        raise DataError("targets must hold only 0 and 1 (one column per class, 1 = the class is present).")
    return p, y.astype(np.int64)


def check_thresholds(thresholds: Any, c: int) -> np.ndarray:
    """Per-class thresholds ``(C,)`` (None: 0.5 each; a number: the same for every class)."""
    if thresholds is None:
        return np.full(c, 0.5)
    t = np.broadcast_to(np.asarray(to_numpy(thresholds), dtype=np.float64), (c,)).copy()
    if not np.all(np.isfinite(t)):
        raise DataError("thresholds must be finite numbers, one per class; refit them with tune_thresholds.")
    return t


def average_precision(scores: np.ndarray, y: np.ndarray) -> float:
    """Average precision of one binary problem, scikit-learn's definition: ``sum_n (R_n - R_{n-1}) P_n`` over
    the distinct scores in decreasing order; NaN without positives.

    >>> average_precision(np.array([0.9, 0.8, 0.3]), np.array([1, 0, 1]))
    0.8333333333333333
    """
    positives = y.sum()
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order]
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last position of each run of equal scores
    tp = np.cumsum(t)[ends]
    precision = tp / (ends + 1)
    recall_step = np.diff(np.r_[0, tp]) / positives
    return float((recall_step * precision).sum())


def per_sample_lrap(p: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Label-ranking average precision of each row ``(N,)`` (scikit-learn's definition; 1 for a row with no
    relevant label or with every label relevant): the mean over relevant labels ``j`` of the fraction of
    relevant labels among those scored at least ``s_j``."""
    n, c = p.shape
    out = np.ones(n)
    step = max(1, _CHUNK_CELLS // (c * c))
    for start in range(0, n, step):
        pp, yy = p[start : start + step], y[start : start + step].astype(bool)
        at_least = pp[:, None, :] >= pp[:, :, None]  # (n, C, C): [i, j, k] = s_k >= s_j
        rank = at_least.sum(axis=2)  # (n, C) labels scored at least s_j
        rank_rel = (at_least & yy[:, None, :]).sum(axis=2)  # (n, C) relevant ones among them
        n_rel = yy.sum(axis=1)
        ratio = np.where(yy, rank_rel / rank, 0.0).sum(axis=1)
        ok = (n_rel > 0) & (n_rel < c)
        out[start : start + step][ok] = ratio[ok] / n_rel[ok]
    return out


@dataclass(frozen=True)
class MultilabelClassMetrics:
    """One class's row: ``average_precision`` (NaN without positives), and at ``threshold`` (a label is
    predicted when its probability is at least the threshold) ``precision`` / ``recall`` / ``f1`` (0 where
    undefined, as scikit-learn's ``zero_division=0``), ``support`` (positives) and ``predicted``."""

    name: str
    index: int
    average_precision: float
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    threshold: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (NaN becomes None)."""
        return nan_to_none(self.__dict__)


@dataclass(frozen=True, eq=False)
class MultilabelReport:
    """All figures of a multi-label evaluation.

    ``macro_map`` averages the per-class average precision over the classes with positives; the others are
    named in ``map_undefined`` (excluded, not counted as 0). ``micro_map`` is the average precision of all
    ``(sample, class)`` entries pooled. At the per-class ``thresholds``: ``exact_match`` (every label of a row
    right), ``hamming_loss`` (fraction of wrong entries), ``macro_f1`` (mean F1 over the classes present in
    the targets or the predictions) and ``micro_f1`` (pooled counts). ``lrap`` is scikit-learn's label-ranking
    average precision.

    >>> r = multilabel_metrics(probs, targets, ["cat", "dog", "car"])  # doctest: +SKIP
    >>> round(r.macro_map, 3), r.map_undefined  # doctest: +SKIP
    (0.912, ('car',))
    """

    class_names: tuple[str, ...]
    n: int
    thresholds: np.ndarray  # (C,)
    macro_map: float
    micro_map: float
    map_undefined: tuple[str, ...]
    exact_match: float
    hamming_loss: float
    lrap: float
    macro_f1: float
    micro_f1: float
    per_class: tuple[MultilabelClassMetrics, ...]

    def headline(self) -> dict[str, float]:
        """The headline figures (the ones :func:`multilabel_bootstrap_ci` gives intervals for), by name."""
        return {name: getattr(self, name) for name in MULTILABEL_HEADLINE}

    def worst_classes(self, k: int | None = None) -> list[MultilabelClassMetrics]:
        """Classes with positives, lowest average precision first; the first ``k`` if given."""
        rows = sorted((c for c in self.per_class if c.support > 0), key=lambda c: (c.average_precision, c.index))
        return rows if k is None else rows[:k]

    def to_dict(self) -> dict[str, Any]:
        """Every figure, JSON-ready (NaN becomes None, arrays become lists)."""
        out = {k: v for k, v in self.__dict__.items() if k != "per_class"}
        out["per_class"] = [c.to_dict() for c in self.per_class]
        return nan_to_none(out)


MULTILABEL_HEADLINE: tuple[str, ...] = (
    "macro_map", "micro_map", "macro_f1", "micro_f1", "exact_match", "hamming_loss", "lrap",
)  # fmt: skip


def f1_parts(pred: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True positives, false positives and false negatives per row and class, each ``(N, C)`` bool."""
    yb, pb = y.astype(bool), pred.astype(bool)
    return pb & yb, pb & ~yb, ~pb & yb


def multilabel_metrics(probs: Any, targets: Any, classes: Sequence[str] | None = None, *,
                       thresholds: Any = None) -> MultilabelReport:  # fmt: skip
    """Compute every multi-label figure from per-class probabilities ``(N, C)`` and 0/1 targets ``(N, C)``.

    ``thresholds`` is None (0.5 for every class), one number, or ``(C,)`` per class (e.g. from
    :func:`tune_thresholds` on validation data); a label is predicted when ``prob >= threshold``.

    >>> r = multilabel_metrics([[0.9, 0.2], [0.4, 0.7], [0.8, 0.6]], [[1, 0], [0, 1], [1, 0]], ["a", "b"])
    >>> round(r.macro_map, 3), round(r.exact_match, 3), round(r.hamming_loss, 3), r.per_class[1].precision
    (1.0, 0.667, 0.167, 0.5)
    """
    p, y = check_multilabel(probs, targets, None if classes is None else len(classes))
    n, c = p.shape
    names = check_class_names(classes, c)
    thr = check_thresholds(thresholds, c)
    pred = p >= thr  # (N, C)
    tp, fp, fn = (a.sum(axis=0) for a in f1_parts(pred, y))  # (C,) each
    aps = np.array([average_precision(p[:, k], y[:, k]) for k in range(c)])
    support = y.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        recall = np.where(support > 0, tp / support, 0.0)
        denom = 2 * tp + fp + fn
        f1 = np.where(denom > 0, 2 * tp / denom, 0.0)
    micro_denom = 2 * tp.sum() + fp.sum() + fn.sum()
    per_class = tuple(
        MultilabelClassMetrics(names[k], k, float(aps[k]), float(precision[k]), float(recall[k]), float(f1[k]),
                               int(support[k]), int(pred[:, k].sum()), float(thr[k]))  # fmt: skip
        for k in range(c)
    )
    return MultilabelReport(
        class_names=names,
        n=n,
        thresholds=thr,
        macro_map=float(aps[support > 0].mean()) if (support > 0).any() else float("nan"),
        micro_map=average_precision(p.ravel(), y.ravel()),
        map_undefined=tuple(names[k] for k in np.flatnonzero(support == 0)),
        exact_match=float((pred == y.astype(bool)).all(axis=1).mean()),
        hamming_loss=float((pred != y.astype(bool)).mean()),
        lrap=float(per_sample_lrap(p, y).mean()),
        macro_f1=float(f1[denom > 0].mean()) if (denom > 0).any() else float("nan"),
        micro_f1=float(2 * tp.sum() / micro_denom) if micro_denom > 0 else float("nan"),
        per_class=per_class,
    )


def tune_thresholds(probs: Any, targets: Any) -> np.ndarray:
    """Per-class decision thresholds ``(C,)`` that maximise each class's F1 on validation data.

    For each class, every distinct probability is tried as the lowest one predicted positive; the threshold
    returned lies midway between the best such probability and the next lower one (so ``prob >= threshold``
    reproduces the best F1 on these data and leaves a margin on new data). Ties go to the highest threshold.
    A class without positives keeps 0.5: no threshold can earn it any F1, and 0.5 is the neutral default.

    >>> tune_thresholds([[0.9, 0.2], [0.4, 0.7], [0.3, 0.6], [0.1, 0.65]], [[1, 0], [1, 0], [0, 0], [0, 0]])
    array([0.35, 0.5 ])
    """
    p, y = check_multilabel(probs, targets)
    out = np.full(p.shape[1], 0.5)
    for k in np.flatnonzero(y.sum(axis=0) > 0):
        order = np.argsort(-p[:, k], kind="stable")
        s, t = p[order, k], y[order, k]
        ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]  # last position of each run of equal scores
        tp = np.cumsum(t)[ends]
        f1 = 2 * tp / (ends + 1 + t.sum())  # 2TP / (predicted + positives)
        g = int(np.argmax(f1))  # first maximum: the highest threshold among ties
        out[k] = s[ends[g]] if g == len(ends) - 1 else (s[ends[g]] + s[ends[g] + 1]) / 2
    return out
