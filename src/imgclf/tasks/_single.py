"""Single-label classification: softmax over classes, one answer per image."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imgclf import losses as L
from imgclf import metrics as M
from imgclf.config import TrainConfig
from imgclf.tasks._base import Answer, Task, TaskMetrics, topk_rows, unknown_mask

MIN_CALIBRATION_IMAGES = 30


def checked_temperature(logits: np.ndarray, labels: np.ndarray) -> tuple[float | None, str]:
    """The NLL-optimal temperature, or None with the reason when the split cannot support one.

    Too few images, or a split the model gets entirely right (the NLL then falls without bound as T -> 0),
    would store an arbitrary, overconfident temperature.

    >>> checked_temperature(np.zeros((3, 2)), np.zeros(3, int))[1]
    'only 3 images (need 30)'
    """
    if len(labels) < MIN_CALIBRATION_IMAGES:
        return None, f"only {len(labels)} images (need {MIN_CALIBRATION_IMAGES})"
    if (logits.argmax(1) == labels).all():
        return None, "the model classifies every image of the split correctly, so any temperature below 1 fits"
    t = float(M.fit_temperature(logits, labels))
    if not 0.06 <= t <= 19.0:
        return None, f"the fitted temperature {t:.3g} sits at the search bound"
    return t, ""


class SingleLabelTask(Task):
    """One class per image: cross-entropy (or focal) loss, argmax accuracy, temperature scaling, top-k answers.

    >>> t = SingleLabelTask(("cat", "dog")); t.decode(np.array([[0.2, 0.8]]))[0].label
    'dog'
    """

    kind = "single"

    def build_loss(self, cfg: TrainConfig, targets: np.ndarray) -> nn.Module:
        weights = None
        if cfg.class_weights == "balanced":
            weights = L.balanced_class_weights(np.bincount(np.asarray(targets, np.int64), minlength=len(self.classes)))
        return L.build_loss(cfg.loss if cfg.loss != "auto" else "ce", label_smoothing=cfg.label_smoothing,
                            class_weights=weights, focal_gamma=cfg.focal_gamma)  # fmt: skip

    def batch_score(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        labels = targets if targets.ndim == 1 else targets.argmax(1)
        return float((logits.argmax(1) == labels).sum().item())

    def eval_loss(self, logits: torch.Tensor, targets: torch.Tensor) -> float:
        return float(F.cross_entropy(logits.float(), targets, reduction="sum").item())

    def probabilities(self, logits: np.ndarray, temperature: Any = None) -> np.ndarray:
        return M.apply_temperature(logits, float(temperature or 1.0))

    def fit_calibration(self, logits: np.ndarray, targets: np.ndarray) -> tuple[Any, str]:
        return checked_temperature(logits, targets)

    def decode(self, probs: np.ndarray, *, top_k: int = 5, ood: np.ndarray | None = None,
               threshold: float | None = None, reject: bool = True, backoff: bool = True) -> list[Answer]:  # fmt: skip
        rejected = unknown_mask(ood, threshold, len(probs))
        out = []
        for i, topk in enumerate(topk_rows(probs, self.classes, top_k)):
            label = "unknown" if rejected[i] and reject else topk[0][0]
            out.append(Answer(label, topk[0][1], topk, bool(rejected[i]),
                              None if ood is None else float(ood[i])))  # fmt: skip
        return out

    def summary(self, probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        p_true = probs[np.arange(len(targets)), targets].clip(1e-12)
        return {"acc": float((probs.argmax(1) == targets).mean()), "nll": float(-np.log(p_true).mean()),
                "n": int(len(targets))}  # fmt: skip

    def metrics(self, probs: np.ndarray, targets: np.ndarray, *, n_resamples: int = 1000,
                seed: int = 0) -> TaskMetrics:  # fmt: skip
        ci = M.bootstrap_ci(probs, targets, n_resamples=n_resamples, seed=seed)
        report = M.classification_metrics(probs, targets, list(self.classes))
        values = {"accuracy": report.accuracy, "balanced_accuracy": report.balanced_accuracy,
                  "macro_f1": report.macro_f1}  # fmt: skip
        return TaskMetrics(values, {k: (v.low, v.high) for k, v in ci.items()})
