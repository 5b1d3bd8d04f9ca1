"""Multi-label losses on independent per-class sigmoids: binary cross-entropy and timm's asymmetric loss."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def _check_targets(logits: torch.Tensor, targets: torch.Tensor) -> None:
    if targets.shape != logits.shape:
        raise ValueError(f"a multi-label loss needs (B, C) 0/1 targets shaped like the logits {tuple(logits.shape)}, "
                         f"got {tuple(targets.shape)}; class indices (B,) belong to the ce / focal losses")  # fmt: skip


class MultiLabelBCELoss(nn.Module):
    """Binary cross-entropy with logits on multi-hot targets ``(B, C)``, averaged over all ``B * C`` entries
    (PyTorch's default), with an optional per-class ``pos_weight`` ``(C,)`` on the positive terms and label
    smoothing towards 0.5 (``y * (1 - s) + s / 2``).

    >>> loss = MultiLabelBCELoss(pos_weight=torch.tensor([1.0, 3.0]))
    >>> round(float(loss(torch.zeros(1, 2), torch.tensor([[0.0, 1.0]]))), 4)  # (log 2 + 3 log 2) / 2
    1.3863
    """

    def __init__(self, *, pos_weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        self.register_buffer("pos_weight", pos_weight, persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_targets(logits, targets)
        y = targets.float()  # (B, C)
        if self.label_smoothing:
            y = y * (1 - self.label_smoothing) + 0.5 * self.label_smoothing
        return F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=self.pos_weight)


class MultiLabelASLLoss(nn.Module):
    """Asymmetric loss (Ridnik et al. 2021) on multi-hot targets ``(B, C)``: timm's
    ``AsymmetricLossMultiLabel`` (summed over classes, averaged over the batch), with an optional per-class
    ``pos_weight`` ``(C,)`` on the positive terms.

    >>> loss = MultiLabelASLLoss()
    >>> float(loss(torch.tensor([[9.0, -9.0]]), torch.tensor([[1.0, 0.0]]))) < 1e-3  # confident and right
    True
    """

    def __init__(self, *, gamma_neg: float = 4.0, gamma_pos: float = 1.0, clip: float = 0.05,
                 pos_weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:  # fmt: skip
        super().__init__()
        from timm.loss import AsymmetricLossMultiLabel

        self.asl = AsymmetricLossMultiLabel(gamma_neg=gamma_neg, gamma_pos=gamma_pos, clip=clip,
                                            smoothing=label_smoothing, reduction="batchmean",
                                            pos_weight=pos_weight)  # fmt: skip

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        _check_targets(logits, targets)
        return self.asl(logits, targets)


def multilabel_pos_weights(multi_hot: Any, *, max_weight: float | None = None) -> torch.Tensor:
    """Per-class ``pos_weight`` ``(C,)`` for multi-label losses from training targets ``(N, C)``: negatives over
    positives, so each class's positives weigh as much as its negatives (the convention of
    ``BCEWithLogitsLoss``). Classes without positives (or without negatives) get 1; ``max_weight`` caps the
    weight of very rare classes.

    >>> multilabel_pos_weights(np.array([[1, 1], [0, 1], [0, 1], [0, 0]])).tolist()
    [3.0, 0.3333333432674408]
    """
    y = np.asarray(multi_hot.detach().cpu() if hasattr(multi_hot, "detach") else multi_hot)
    if y.ndim != 2:
        raise ValueError(f"multilabel_pos_weights needs multi-hot targets (N, C), got shape {y.shape}")
    pos = (y > 0).sum(axis=0).astype(np.float64)  # (C,)
    neg = y.shape[0] - pos
    w = np.divide(neg, pos, out=np.ones_like(pos), where=(pos > 0) & (neg > 0))
    if max_weight is not None:
        w = np.minimum(w, float(max_weight))
    return torch.tensor(w, dtype=torch.float32)
