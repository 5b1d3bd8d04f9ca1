"""Multi-label classification: an independent sigmoid per class, per-class thresholds, a set of labels per image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imgclf import losses as L
from imgclf import metrics as M
from imgclf.config import TrainConfig
from imgclf.errors import ConfigError
from imgclf.tasks._base import Answer, Task, TaskMetrics, topk_rows

# our names for the metrics' headline figures: `evaluate --json` carries "mAP" (macro, classes with positives)
HEADLINE = {"mAP": "macro_map", "micro_mAP": "micro_map", "macro_f1": "macro_f1", "micro_f1": "micro_f1",
            "exact_match": "exact_match", "hamming_loss": "hamming_loss", "lrap": "lrap"}


def sample_f1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample F1 of 0/1 rows ``(B, C)`` (1 when both are empty): the smooth batch score the loop logs."""
    tp = (pred * target).sum(1)
    denom = pred.sum(1) + target.sum(1)
    return torch.where(denom > 0, 2 * tp / denom.clamp_min(1e-12), torch.ones_like(denom))


class MultiLabelTask(Task):
    """Any number of labels per image: BCE or asymmetric loss, per-class calibration and decision thresholds.

    ``thresholds`` (one per class, tuned on validation to maximise F1) decide which labels are predicted; the
    answer's ``labels`` lists them, ``scores`` gives every class's calibrated probability.

    >>> t = MultiLabelTask(("cat", "dog", "sky"), thresholds=[0.5, 0.5, 0.3])
    >>> t.decode(np.array([[0.9, 0.2, 0.4]]))[0].labels
    ('cat', 'sky')
    """

    kind = "multilabel"
    supports_rejection = False

    def __init__(self, classes: Sequence[str], thresholds: Sequence[float] | None = None) -> None:
        super().__init__(classes)
        self.thresholds = np.full(len(self.classes), 0.5) if thresholds is None else np.asarray(thresholds, float)
        if self.thresholds.shape != (len(self.classes),):
            raise ConfigError(f"{len(self.thresholds)} thresholds for {len(self.classes)} classes")

    def build_loss(self, cfg: TrainConfig, targets: np.ndarray) -> nn.Module:
        kind = {"ce": "bce", "auto": "bce"}.get(cfg.loss, cfg.loss)
        if kind not in ("bce", "asl"):
            raise ConfigError(f"train.loss={cfg.loss!r} is single-label; multi-label data trains with bce (default) "
                              "or asl (--set train.loss=asl)")  # fmt: skip
        pos_weight = L.multilabel_pos_weights(targets) if cfg.class_weights == "balanced" else None
        return L.build_loss(kind, pos_weight=pos_weight)

    def batch_score(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        return float(sample_f1((logits > 0).float(), targets.float()).sum().item())

    def eval_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        per = F.binary_cross_entropy_with_logits(logits.float(), targets.float(), reduction="none")  # (B, C)
        return float(per.sum(1).sum().item())

    def probabilities(self, logits: np.ndarray, temperature: Any = None) -> np.ndarray:
        z = np.asarray(logits, dtype=np.float64)
        t = np.ones(z.shape[1]) if temperature is None else np.broadcast_to(np.asarray(temperature, float), z.shape[1:])
        return 1.0 / (1.0 + np.exp(-z / t))

    def fit_calibration(self, logits: np.ndarray, targets: np.ndarray) -> tuple[Any, str]:
        if len(targets) < 30:
            return None, f"only {len(targets)} images (need 30)"
        return [float(t) for t in M.fit_per_class_temperature(logits, targets)], ""

    def fit_decision(self, probs: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        self.thresholds = np.asarray(M.tune_thresholds(probs, targets), float)
        return {"thresholds": [float(t) for t in self.thresholds]}

    def decode(self, probs: np.ndarray, *, top_k: int = 5, ood: np.ndarray | None = None,
               threshold: float | None = None, reject: bool = True, backoff: bool = True) -> list[Answer]:  # fmt: skip
        out = []
        for row, topk in zip(probs, topk_rows(probs, self.classes, top_k)):
            labels = tuple(c for c, p, t in zip(self.classes, row, self.thresholds) if p >= t)
            scores = {c: float(p) for c, p in zip(self.classes, row)}
            out.append(Answer(";".join(labels), float(row.max()) if len(row) else None, topk, labels=labels,
                              scores=scores))  # fmt: skip
        return out

    def summary(self, probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        report = M.multilabel_metrics(probs, targets, list(self.classes), thresholds=self.thresholds)
        return {"mAP": float(report.macro_map), "exact_match": float(report.exact_match), "n": int(len(targets))}

    def metrics(self, probs: np.ndarray, targets: np.ndarray, *, n_resamples: int = 1000,
                seed: int = 0) -> TaskMetrics:  # fmt: skip
        report = M.multilabel_metrics(probs, targets, list(self.classes), thresholds=self.thresholds)
        values = {ours: float(getattr(report, theirs)) for ours, theirs in HEADLINE.items()}
        intervals = {}
        if n_resamples:
            ci = M.multilabel_bootstrap_ci(probs, targets, list(HEADLINE.values()), thresholds=self.thresholds,
                                           n_resamples=n_resamples, seed=seed)  # fmt: skip
            intervals = {ours: (ci[theirs].low, ci[theirs].high) for ours, theirs in HEADLINE.items() if theirs in ci}
        detail = {"per_class": [c.to_dict() for c in report.per_class],
                  "map_excluded_classes": list(report.map_undefined),
                  "thresholds": [float(t) for t in self.thresholds]}  # fmt: skip
        return TaskMetrics(values, intervals, detail)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "thresholds": [float(t) for t in self.thresholds]}
