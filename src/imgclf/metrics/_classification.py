"""Every classification figure of ``imgclf evaluate``, computed with scikit-learn from probabilities and labels."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics._arrays import check_class_names, check_probs_labels, nan_to_none


@dataclass(frozen=True)
class ClassMetrics:
    """One class's row of the per-class table. ``recall`` is the class's accuracy; ``auc`` and
    ``average_precision`` are one-vs-rest and NaN when undefined (the class is absent from the labels, or is
    the only class present)."""

    name: str
    index: int
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int
    auc: float
    average_precision: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (NaN becomes None)."""
        return nan_to_none(self.__dict__)


@dataclass(frozen=True, eq=False)
class ClassificationReport:
    """All figures of a classification evaluation.

    ``confusion[i, j]`` counts images of true class ``i`` predicted as ``j``; ``confusion_normalized`` divides
    each row by its support (rows of absent classes stay 0). Macro / weighted averages of precision, recall and
    F1 run over the classes present in the labels or the predictions (scikit-learn's convention, so a class
    absent from this split does not count as a zero). ``macro_auc`` and ``macro_average_precision`` average the
    classes where they are defined; ``auc_undefined`` names the others. ``brier`` is the multiclass Brier score
    (sum over classes, range [0, 2]).

    >>> r = classification_metrics(probs, labels, ["cat", "dog", "fox"])  # doctest: +SKIP
    >>> round(r.accuracy, 3), r.worst_classes(1)[0].name  # doctest: +SKIP
    (0.912, 'fox')
    """

    class_names: tuple[str, ...]
    n: int
    accuracy: float
    top_k: dict[int, float]
    balanced_accuracy: float
    macro_precision: float
    macro_recall: float
    macro_f1: float
    weighted_precision: float
    weighted_recall: float
    weighted_f1: float
    kappa: float
    mcc: float
    macro_auc: float
    macro_average_precision: float
    log_loss: float
    brier: float
    confusion: np.ndarray  # (C, C) int64
    confusion_normalized: np.ndarray  # (C, C) float64, rows sum to 1 (or 0)
    per_class: tuple[ClassMetrics, ...]
    auc_undefined: tuple[str, ...] = field(default=())

    def worst_classes(self, k: int | None = None) -> list[ClassMetrics]:
        """Classes with support, worst first (lowest recall, then lowest F1); the first ``k`` if given.

        >>> [c.name for c in report.worst_classes(2)]  # doctest: +SKIP
        ['fox', 'dog']
        """
        rows = sorted((c for c in self.per_class if c.support > 0), key=lambda c: (c.recall, c.f1, c.index))
        return rows if k is None else rows[:k]

    def headline(self) -> dict[str, float]:
        """The headline figures (the ones that get bootstrap intervals), by name."""
        return {
            "accuracy": self.accuracy,
            "balanced_accuracy": self.balanced_accuracy,
            "macro_f1": self.macro_f1,
            "macro_auc": self.macro_auc,
            "log_loss": self.log_loss,
        }

    def to_dict(self) -> dict[str, Any]:
        """Every figure, JSON-ready (NaN becomes None, arrays become lists)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("per_class", "top_k")}
        out["top_k"] = {str(k): v for k, v in self.top_k.items()}
        out["per_class"] = [c.to_dict() for c in self.per_class]
        return nan_to_none(out)


def classification_metrics(
    probs: Any,
    labels: Any,
    class_names: Sequence[str] | None = None,
    *,
    top_k: Sequence[int] = (1, 5),
) -> ClassificationReport:
    """Compute every classification figure from probabilities ``(N, C)`` and labels ``(N,)``.

    Figures come from scikit-learn: accuracy, top-k accuracy for each ``k <= C`` in ``top_k``, balanced
    accuracy, per-class precision / recall / F1 / support, macro and weighted averages, Cohen's kappa, MCC,
    confusion matrix, one-vs-rest ROC AUC and average precision per class (NaN where undefined), log loss and
    the multiclass Brier score. ``probs`` and ``labels`` may be numpy arrays or torch tensors.

    >>> r = classification_metrics([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]], [0, 1, 1], ["a", "b"])
    >>> round(r.accuracy, 3), r.confusion.tolist()
    (0.667, [[1, 0], [1, 1]])
    """
    from sklearn import metrics as skm

    p, y = check_probs_labels(probs, labels, None if class_names is None else len(class_names))
    n, c = p.shape
    names = check_class_names(class_names, c)
    if any(int(k) < 1 for k in top_k):
        raise DataError(f"top_k values must be >= 1, got {tuple(top_k)}.")
    pred = p.argmax(axis=1)  # (N,)
    all_labels = np.arange(c)
    with warnings.catch_warnings():
        # Degenerate splits (one class, a class never predicted) give documented NaN / 0 values, not warnings.
        warnings.simplefilter("ignore")
        conf = skm.confusion_matrix(y, pred, labels=all_labels).astype(np.int64)  # (C, C)
        prec, rec, f1, support = skm.precision_recall_fscore_support(y, pred, labels=all_labels, zero_division=0)
        avg: dict[str, tuple[float, float, float]] = {}
        for average in ("macro", "weighted"):
            pr, rc, f, _ = skm.precision_recall_fscore_support(y, pred, average=average, zero_division=0)
            avg[average] = (float(pr), float(rc), float(f))
        ks = sorted({int(k) for k in top_k if int(k) <= c})
        score = p[:, 1] if c == 2 else p  # scikit-learn wants the positive-class column for binary problems
        topk = {k: float(skm.top_k_accuracy_score(y, score, k=k, labels=all_labels)) for k in ks}
        aucs, aps = _one_vs_rest(skm, p, y)
        kappa = float(skm.cohen_kappa_score(y, pred, labels=all_labels))
        mcc = float(skm.matthews_corrcoef(y, pred))
        logloss = float(skm.log_loss(y, p, labels=all_labels))
        balanced = float(skm.balanced_accuracy_score(y, pred))
    row = conf.sum(axis=1, keepdims=True)
    normalized = np.divide(conf, row, out=np.zeros((c, c)), where=row > 0)  # (C, C)
    per_class = tuple(
        ClassMetrics(
            name=names[i],
            index=i,
            precision=float(prec[i]),
            recall=float(rec[i]),
            f1=float(f1[i]),
            support=int(support[i]),
            predicted=int(conf[:, i].sum()),
            auc=aucs[i],
            average_precision=aps[i],
        )
        for i in range(c)
    )
    onehot = np.eye(c)[y]  # (N, C)
    return ClassificationReport(
        class_names=names,
        n=n,
        accuracy=float(skm.accuracy_score(y, pred)),
        top_k=topk,
        balanced_accuracy=balanced,
        macro_precision=avg["macro"][0],
        macro_recall=avg["macro"][1],
        macro_f1=avg["macro"][2],
        weighted_precision=avg["weighted"][0],
        weighted_recall=avg["weighted"][1],
        weighted_f1=avg["weighted"][2],
        kappa=kappa,
        mcc=mcc,
        macro_auc=_nanmean(aucs),
        macro_average_precision=_nanmean(aps),
        log_loss=logloss,
        brier=float(np.mean(np.sum((p - onehot) ** 2, axis=1))),
        confusion=conf,
        confusion_normalized=normalized,
        per_class=per_class,
        auc_undefined=tuple(names[i] for i in range(c) if math.isnan(aucs[i])),
    )


def _one_vs_rest(skm: Any, p: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-class one-vs-rest ROC AUC and average precision; NaN where the class has no positives (both) or no
    negatives (AUC)."""
    n, c = p.shape
    aucs, aps = [], []
    for k in range(c):
        pos = y == k  # (N,)
        n_pos = int(pos.sum())
        aucs.append(float(skm.roc_auc_score(pos, p[:, k])) if 0 < n_pos < n else math.nan)
        aps.append(float(skm.average_precision_score(pos, p[:, k])) if n_pos > 0 else math.nan)
    return aucs, aps


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan
