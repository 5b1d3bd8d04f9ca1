"""Likely label errors in multi-label data, through cleanlab's multi-label confident learning."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf.evaluation._label_issues import NO_FORK, LabelIssues
from imgclf.metrics import check_multilabel
from imgclf.utils import optional_import


@dataclass(frozen=True, eq=False)
class MultilabelLabelIssues(LabelIssues):
    """:class:`LabelIssues` for multi-label data: rows whose label set is likely wrong, most suspicious first.

    ``indices`` ``(K,)`` index the evaluated rows; ``given`` ``(K, C)`` is each row's 0/1 label set and
    ``suggested`` ``(K, C)`` the model's (probability at least the threshold); ``self_confidence`` ``(K,)`` is
    cleanlab's label quality score of the row (near 0: the given set is very likely wrong). ``to_dict`` names
    the classes the model would add (``missing``) or drop (``extra``).

    >>> issues = find_multilabel_label_issues(oof_probs, targets, classes)  # doctest: +SKIP
    >>> issues.to_dict()["issues"][0]  # doctest: +SKIP
    {'index': 17, 'given': ['cat'], 'suggested': ['cat', 'dog'], 'missing': ['dog'], 'extra': [], ...}
    """

    def _name(self, value: Any) -> str:
        names = [self.class_names[k] if self.class_names else str(k) for k in np.flatnonzero(value)]
        return ";".join(names) or "(none)"

    def to_dict(self) -> dict[str, Any]:
        """One record per issue, JSON-ready, with class names when known."""

        def names(row: np.ndarray) -> list[Any]:
            return [self.class_names[k] if self.class_names else int(k) for k in np.flatnonzero(row)]

        records = [
            {"index": int(i), "given": names(g), "suggested": names(s), "missing": names(s & ~g),
             "extra": names(g & ~s), "self_confidence": float(c)}
            for i, g, s, c in zip(self.indices, self.given.astype(bool), self.suggested.astype(bool),
                                  self.self_confidence, strict=True)
        ]  # fmt: skip
        for record, path in zip(records, self.paths, strict=False):
            record["path"] = path
        return {"issues": records}


def find_multilabel_label_issues(probs: Any, targets: Any, classes: Sequence[str] | None = None, *,
                                 thresholds: Any = 0.5) -> MultilabelLabelIssues:  # fmt: skip
    """Find likely label errors in multi-label data with cleanlab (``imgclf[eval]``) from out-of-fold or
    held-out per-class probabilities ``(N, C)`` and 0/1 targets ``(N, C)``; never use probabilities of a model
    trained on these same rows, it has memorised their labels.

    Two known cleanlab pitfalls are handled here: classes without any positive are left out of the search
    (cleanlab#266: a class never labelled broke its thresholds), and the labels are passed as lists of class
    indices per row (cleanlab#516: a multi-hot array is silently misread). ``suggested`` marks the classes
    whose probability is at least ``thresholds`` (one number or ``(C,)``).

    >>> issues = find_multilabel_label_issues(heldout_probs, targets, classes)  # doctest: +SKIP
    >>> issues.indices[:3].tolist()  # doctest: +SKIP
    [17, 3, 88]
    """
    p, y = check_multilabel(probs, targets, None if classes is None else len(classes))
    n, c = p.shape
    thr = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (c,))
    used = np.flatnonzero(y.sum(axis=0) > 0)  # (C',) classes with at least one positive (cleanlab#266)
    idx = np.zeros(0, dtype=np.int64)
    quality = np.zeros(0)
    if len(used) > 0:
        ml_filter = optional_import("cleanlab.multilabel_classification.filter", "eval")
        ml_rank = optional_import("cleanlab.multilabel_classification.rank", "eval")
        labels = [np.flatnonzero(row).tolist() for row in y[:, used]]  # lists of indices (cleanlab#516)
        pred_probs = p[:, used]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "too few examples in class k": fine, the result says what it found
            ranked = ml_filter.find_label_issues(
                labels, pred_probs, return_indices_ranked_by="self_confidence", n_jobs=NO_FORK
            )
            idx = np.asarray(ranked, dtype=np.int64)
            quality = np.asarray(ml_rank.get_label_quality_scores(labels, pred_probs), dtype=np.float64)
    return MultilabelLabelIssues(
        indices=idx,
        given=y[idx].astype(np.uint8),
        suggested=(p[idx] >= thr).astype(np.uint8),
        self_confidence=quality[idx] if len(idx) else np.zeros(0),
        class_names=tuple(classes or ()),
    )
