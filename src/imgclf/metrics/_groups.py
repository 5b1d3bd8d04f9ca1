"""Slices: accuracy and macro F1 per group of images (site, device, source...) and the worst-group gap."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics._arrays import check_probs_labels, nan_to_none, to_numpy


@dataclass(frozen=True)
class GroupMetrics:
    """Accuracy and macro F1 of one group's ``support`` images."""

    name: str
    support: int
    accuracy: float
    macro_f1: float

    def to_dict(self) -> dict[str, Any]:
        return nan_to_none(self.__dict__)


@dataclass(frozen=True)
class GroupReport:
    """Per-group metrics, worst accuracy first. ``worst_group`` is the group with the lowest accuracy among
    groups with at least ``min_support`` images; ``gap`` is ``overall_accuracy - worst_accuracy`` (how much the
    average hides) and ``spread`` the best-minus-worst accuracy."""

    groups: tuple[GroupMetrics, ...]
    overall_accuracy: float
    worst_group: str | None
    worst_accuracy: float
    gap: float
    spread: float
    min_support: int

    def to_dict(self) -> dict[str, Any]:
        return nan_to_none(self.__dict__)


def group_metrics(probs: Any, labels: Any, groups: Sequence[Any], *, min_support: int = 1) -> GroupReport:
    """Accuracy, macro F1 (scikit-learn) and support per group, plus the worst-group gap.

    ``groups`` gives one group name per row (``None`` rows are left out of every group). Groups smaller than
    ``min_support`` are listed but cannot be the worst group.

    >>> r = group_metrics([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]], [0, 1, 1], ["a", "b", "b"])
    >>> r.worst_group, r.worst_accuracy, round(r.gap, 3)
    ('b', 0.5, 0.167)
    """
    from sklearn.metrics import f1_score

    p, y = check_probs_labels(probs, labels)
    g = list(to_numpy(groups)) if hasattr(groups, "detach") else list(groups)
    if len(g) != len(y):
        raise DataError(f"groups must give one group per prediction ({len(y)}), got {len(g)} entries.")
    pred = p.argmax(axis=1)
    rows = []
    valid = np.array([v is not None for v in g])  # (N,)
    keys = np.array([str(v) if v is not None else "" for v in g], dtype=object)  # (N,)
    names = sorted(set(keys[valid]))
    if not names:
        raise DataError("groups holds no group names (all None); check the --groups file's paths match the data.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name in names:
            mask = valid & (keys == name)
            f1 = float(f1_score(y[mask], pred[mask], average="macro", zero_division=0))
            rows.append(GroupMetrics(name, int(mask.sum()), float((pred[mask] == y[mask]).mean()), f1))
    rows.sort(key=lambda r: (r.accuracy, r.name))
    overall = float((pred == y).mean())
    eligible = [r for r in rows if r.support >= min_support]
    worst = eligible[0] if eligible else None
    best = eligible[-1] if eligible else None
    return GroupReport(
        groups=tuple(rows),
        overall_accuracy=overall,
        worst_group=None if worst is None else worst.name,
        worst_accuracy=math.nan if worst is None else worst.accuracy,
        gap=math.nan if worst is None else overall - worst.accuracy,
        spread=math.nan if worst is None or best is None else best.accuracy - worst.accuracy,
        min_support=int(min_support),
    )
