from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from imgclf.errors import ConfigError


class ClassificationLoss(nn.Module):
    """Cross-entropy or focal loss with label smoothing and optional per-class weights.

    Targets may be class indices ``(B,)`` or probability rows ``(B, C)``. With weights, the batch loss is the
    weighted sum divided by the summed target weights (as ``F.cross_entropy`` does for hard labels).

    >>> loss = ClassificationLoss(label_smoothing=0.1)
    >>> float(loss(torch.zeros(2, 3), torch.tensor([0, 1]))) > 0
    True
    """

    def __init__(
        self,
        *,
        label_smoothing: float = 0.0,
        class_weights: torch.Tensor | None = None,
        focal_gamma: float | None = None,
    ) -> None:
        super().__init__()
        self.label_smoothing = label_smoothing
        self.focal_gamma = focal_gamma
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        num_classes = logits.shape[1]
        logits = logits.float()
        if targets.ndim == 1:
            targets = F.one_hot(targets.long(), num_classes).float()  # (B, C)
        if self.label_smoothing:
            targets = targets * (1 - self.label_smoothing) + self.label_smoothing / num_classes
        log_p = F.log_softmax(logits, dim=1)  # (B, C)
        per_class = -log_p
        if self.focal_gamma:
            per_class = per_class * (1 - log_p.exp()).pow(self.focal_gamma)
        weights = torch.ones(num_classes, device=logits.device) if self.class_weights is None else self.class_weights
        weighted = targets * weights  # (B, C)
        return (weighted * per_class).sum() / weighted.sum().clamp_min(1e-12)


def balanced_class_weights(counts: Sequence[int]) -> torch.Tensor:
    """Inverse-frequency weights normalised to mean 1 (classes with no samples get weight 0).

    >>> balanced_class_weights([10, 30]).tolist()
    [1.5, 0.5]
    """
    c = torch.tensor(counts, dtype=torch.float32)
    w = torch.where(c > 0, 1.0 / c.clamp_min(1), torch.zeros_like(c))
    return w * (c > 0).sum() / w.sum()


def build_loss(
    kind: str, *, label_smoothing: float = 0.0, class_weights: torch.Tensor | None = None, focal_gamma: float = 2.0
) -> ClassificationLoss:
    """The training loss named by ``train.loss`` ("ce" or "focal")."""
    if kind not in ("ce", "focal"):
        raise ConfigError(f"train.loss={kind!r} is not valid; choose ce or focal")
    return ClassificationLoss(
        label_smoothing=label_smoothing,
        class_weights=class_weights,
        focal_gamma=focal_gamma if kind == "focal" else None,
    )
