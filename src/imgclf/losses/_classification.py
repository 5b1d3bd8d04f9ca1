from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from imgclf.errors import ConfigError
from imgclf.losses._multilabel import MultiLabelASLLoss, MultiLabelBCELoss

LOSSES = ("ce", "focal", "bce", "asl")


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
    kind: str,
    *,
    label_smoothing: float = 0.0,
    class_weights: torch.Tensor | None = None,
    focal_gamma: float = 2.0,
    pos_weight: torch.Tensor | None = None,
    asl_gamma_neg: float = 4.0,
    asl_gamma_pos: float = 1.0,
    asl_clip: float = 0.05,
) -> nn.Module:
    """The training loss named by ``train.loss``.

    Single-label (targets ``(B,)`` class indices or ``(B, C)`` probability rows): ``"ce"`` or ``"focal"``
    (:class:`ClassificationLoss`, with ``class_weights``). Multi-label (targets ``(B, C)`` multi-hot):
    ``"bce"`` (:class:`MultiLabelBCELoss`) or ``"asl"`` (:class:`MultiLabelASLLoss`, timm's asymmetric loss
    with ``asl_gamma_neg`` / ``asl_gamma_pos`` / ``asl_clip``), both with a per-class ``pos_weight`` ``(C,)``
    (e.g. from :func:`multilabel_pos_weights`).

    >>> build_loss("bce")(torch.zeros(2, 3), torch.ones(2, 3)).item() > 0
    True
    """
    if kind not in LOSSES:
        raise ConfigError(f"train.loss={kind!r} is not valid; choose ce or focal (single-label), bce or asl "
                          "(multi-label)")  # fmt: skip
    if kind in ("bce", "asl"):
        if class_weights is not None:
            raise ConfigError(f"train.loss={kind!r} weighs classes through pos_weight (multilabel_pos_weights), "
                              "not class_weights")  # fmt: skip
        if kind == "bce":
            return MultiLabelBCELoss(pos_weight=pos_weight, label_smoothing=label_smoothing)
        return MultiLabelASLLoss(gamma_neg=asl_gamma_neg, gamma_pos=asl_gamma_pos, clip=asl_clip,
                                 pos_weight=pos_weight, label_smoothing=label_smoothing)  # fmt: skip
    if pos_weight is not None:
        raise ConfigError(f"train.loss={kind!r} is single-label: weigh classes with class_weights, not pos_weight")
    return ClassificationLoss(
        label_smoothing=label_smoothing,
        class_weights=class_weights,
        focal_gamma=focal_gamma if kind == "focal" else None,
    )
