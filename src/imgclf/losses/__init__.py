"""Classification losses that accept hard labels (B,) or soft targets (B, C) (MixUp / CutMix)."""

from imgclf.losses._classification import ClassificationLoss, balanced_class_weights, build_loss

__all__ = ["ClassificationLoss", "balanced_class_weights", "build_loss"]
