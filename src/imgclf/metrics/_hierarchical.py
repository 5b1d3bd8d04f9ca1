"""How bad are the mistakes? Hierarchical precision / recall / F1, mistake severity and per-level accuracy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf.config import Hierarchy
from imgclf.errors import DataError
from imgclf.metrics._arrays import check_labels, nan_to_none


@dataclass(frozen=True)
class HierarchicalReport:
    """Figures of leaf predictions judged through a class hierarchy.

    ``hierarchical_precision`` / ``_recall`` / ``_f1`` are the set-based measures of Kiritchenko et al. (2006):
    each predicted and true class is augmented with all its ancestors except the root, and the overlaps are
    summed over samples (micro-averaged): ``hP = sum |P_i & T_i| / sum |P_i|``, ``hR = sum |P_i & T_i| /
    sum |T_i|``, ``hF = 2 hP hR / (hP + hR)``. ``mistake_severity`` is the mean height of the lowest common
    ancestor of prediction and truth over the mistakes (NaN without mistakes; Bertinetto et al. 2020);
    ``mean_lca_height`` averages it over all samples (0 for a correct one). ``level_accuracy[l - 1]`` is the
    accuracy at level ``l`` (1 = the children of the root, ``depth`` = the leaves): prediction and truth agree
    on their node at that level (a leaf above that level stands for itself).

    >>> # r = hierarchical_metrics(pred, true, hierarchy, classes); r.level_accuracy  ->  (0.97, 0.91)
    """

    n: int
    accuracy: float
    hierarchical_precision: float
    hierarchical_recall: float
    hierarchical_f1: float
    n_mistakes: int
    mistake_severity: float
    mean_lca_height: float
    level_accuracy: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields (NaN becomes None); ``level_accuracy`` keyed by level ``"1"``, ``"2"``, ..."""
        out = dict(self.__dict__)
        out["level_accuracy"] = {str(level): a for level, a in enumerate(self.level_accuracy, start=1)}
        return nan_to_none(out)


def hierarchical_metrics(pred_leaf: Any, true_leaf: Any, hierarchy: Hierarchy,
                         classes: Sequence[str]) -> HierarchicalReport:  # fmt: skip
    """Judge leaf predictions ``(N,)`` against true leaves ``(N,)`` (indices into ``classes``) through
    ``hierarchy``, whose leaves must be exactly ``classes`` (in any order). See :class:`HierarchicalReport`.

    >>> h = Hierarchy.from_dict({"children": {"a": ["x", "y"], "b": ["z"]}, "leaves": ["x", "y", "z"]})
    >>> r = hierarchical_metrics([0, 1, 2, 2], [0, 0, 0, 2], h, ["x", "y", "z"])
    >>> r.accuracy, r.hierarchical_precision, r.mistake_severity, r.level_accuracy
    (0.5, 0.625, 1.5, (0.75, 0.5))
    """
    names = [str(c) for c in classes]
    if sorted(names) != sorted(hierarchy.leaves):
        missing = sorted(set(hierarchy.leaves) - set(names)) or sorted(set(names) - set(hierarchy.leaves))
        raise DataError(f"the classes and the hierarchy's leaves differ (e.g. {missing[0]!r}); evaluate with the "
                        "class names the hierarchy was loaded for")  # fmt: skip
    pred = check_labels(pred_leaf, None, len(names), name="pred_leaf")
    true = check_labels(true_leaf, len(pred), len(names), name="true_leaf")
    if len(pred) == 0:
        raise DataError("no predictions to evaluate: pred_leaf and true_leaf are empty.")
    lca_level = np.array([[hierarchy.level(hierarchy.lca(a, b)) for b in names] for a in names])  # (L, L)
    lca_height = np.array([[hierarchy.lca_height(a, b) for b in names] for a in names])  # (L, L)
    level = np.array([hierarchy.level(a) for a in names])  # (L,) = |{leaf} + ancestors - root|
    overlap = lca_level[pred, true]  # |P_i & T_i|: the common path below the root
    h_p = overlap.sum() / level[pred].sum()
    h_r = overlap.sum() / level[true].sum()
    wrong = pred != true
    heights = lca_height[pred, true].astype(np.float64)
    per_level = []
    for lv in range(1, hierarchy.depth + 1):
        node = np.array([hierarchy.node_at_level(a, lv) for a in names], dtype=object)  # (L,)
        per_level.append(float((node[pred] == node[true]).mean()))
    return HierarchicalReport(
        n=len(pred),
        accuracy=float((~wrong).mean()),
        hierarchical_precision=float(h_p),
        hierarchical_recall=float(h_r),
        hierarchical_f1=float(2 * h_p * h_r / (h_p + h_r)) if h_p + h_r > 0 else 0.0,
        n_mistakes=int(wrong.sum()),
        mistake_severity=float(heights[wrong].mean()) if wrong.any() else float("nan"),
        mean_lca_height=float(heights.mean()),
        level_accuracy=tuple(per_level),
    )
