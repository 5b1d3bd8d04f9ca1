"""The Task contract: everything that differs between kinds of label, behind one interface.

The engine asks the task for the loss and the per-batch score it logs; calibration, decoding logits into an
answer, the rejection score and the evaluation metrics are the task's too. Nothing above this layer branches on
the kind of label.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from imgclf.config import TrainConfig


@dataclass(frozen=True)
class Answer:
    """One image's decoded answer, the same for the CLI, the Python API and the REST server.

    ``label`` is the answer to show: the top class; ``"unknown"`` when the rejection rule refused the image
    (and rejection is on); for a hierarchy, the deepest confident node (``leaf`` keeps the raw leaf); for
    multi-label, the predicted labels joined by ``;`` (``labels`` holds them as a list, ``scores`` every class).
    """

    label: str | None
    score: float | None
    topk: tuple[tuple[str, float], ...] = ()
    unknown: bool = False
    ood_score: float | None = None
    labels: tuple[str, ...] | None = None
    scores: dict[str, float] | None = None
    ancestors: tuple[str, ...] | None = None
    leaf: str | None = None
    reason: str | None = None  # why the answer is ``unknown`` (the rejection rule, or a smoothed model abstaining)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"label": self.label, "score": self.score,
                               "topk": [{"label": lab, "score": s} for lab, s in self.topk],
                               "unknown": self.unknown}  # fmt: skip
        if self.ood_score is not None:
            out["ood_score"] = self.ood_score
        if self.labels is not None:
            out["labels"], out["scores"] = list(self.labels), dict(self.scores or {})
        if self.ancestors is not None:
            out["ancestors"], out["leaf"] = list(self.ancestors), self.leaf
        if self.reason:
            out["reason"] = self.reason
        return out


@dataclass(frozen=True)
class TaskMetrics:
    """The task's headline figures (``values``) with 95% bootstrap intervals where computed, and any detail
    (per-class tables, excluded classes) as JSON-able data."""

    values: dict[str, float]
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {**self.values, "intervals": {k: list(v) for k, v in self.intervals.items()}, **self.detail}


class Task(ABC):
    """One kind of label. Subclasses set ``kind`` and implement the abstract methods.

    >>> # task = make_task("single", classes=("cat", "dog")); task.decode(task.probabilities(logits, 1.0))
    """

    kind: ClassVar[str]
    supports_rejection: ClassVar[bool] = True

    def __init__(self, classes: Sequence[str]) -> None:
        self.classes = tuple(classes)

    @property
    def num_outputs(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({len(self.classes)} classes)"

    # -- training ----------------------------------------------------------------------------------------
    @abstractmethod
    def build_loss(self, cfg: TrainConfig, targets: np.ndarray) -> nn.Module:
        """The training loss for ``cfg`` (``targets``: the training split's labels, for class weighting)."""

    @abstractmethod
    def batch_score(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        """The per-batch metric the loop logs as ``acc``, summed over the batch (the loop divides by count)."""

    @abstractmethod
    def eval_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        """The validation loss summed over the batch (plain, unweighted, so runs compare)."""

    # -- probabilities and calibration -------------------------------------------------------------------
    @abstractmethod
    def probabilities(self, logits: np.ndarray, temperature: Any = None) -> np.ndarray:
        """Calibrated probabilities ``(N, C)`` from logits with the stored calibration (None: uncalibrated)."""

    @abstractmethod
    def fit_calibration(self, logits: np.ndarray, targets: np.ndarray) -> tuple[Any, str]:
        """The calibration form fitted on a held-out split, or ``(None, reason)`` when the split cannot support it."""

    def fit_decision(self, probs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        """Decision parameters tuned on validation (e.g. per-class thresholds), stored in the bundle's task."""
        return {}

    # -- answers -----------------------------------------------------------------------------------------
    @abstractmethod
    def decode(self, probs: np.ndarray, *, top_k: int = 5, ood: np.ndarray | None = None,
               threshold: float | None = None, reject: bool = True, backoff: bool = True) -> list[Answer]:  # fmt: skip
        """One :class:`Answer` per row of ``probs``; ``ood`` scores below ``threshold`` are ``unknown``."""

    # -- evaluation --------------------------------------------------------------------------------------
    @abstractmethod
    def summary(self, probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        """The few figures a bundle records per split (e.g. ``acc``, ``nll``, ``n``)."""

    @abstractmethod
    def metrics(self, probs: np.ndarray, targets: np.ndarray, *, n_resamples: int = 1000,
                seed: int = 0) -> TaskMetrics:  # fmt: skip
        """The evaluation metrics that apply to this kind of label, with bootstrap intervals."""

    # -- persistence -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """What the bundle records about the task (the kind and its decision parameters)."""
        return {"kind": self.kind}


def unknown_mask(ood: np.ndarray | None, threshold: float | None, n: int) -> np.ndarray:
    """Which of ``n`` rows the rejection rule refuses (score below threshold); all False without a rule."""
    if ood is None or threshold is None:
        return np.zeros(n, dtype=bool)
    return np.asarray(ood, dtype=np.float64) < float(threshold)


def topk_rows(probs: np.ndarray, classes: Sequence[str], k: int) -> list[tuple[tuple[str, float], ...]]:
    """The ``k`` most probable ``(class, p)`` per row, best first."""
    k = max(1, min(k, probs.shape[1])) if probs.ndim == 2 and probs.shape[1] else 0
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return [tuple((classes[j], float(row[j])) for j in idx) for row, idx in zip(probs, order)]
