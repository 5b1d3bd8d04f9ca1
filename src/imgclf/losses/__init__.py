"""Classification losses that accept hard labels (B,) or soft targets (B, C) (MixUp / CutMix)."""

from imgclf.losses._classification import ClassificationLoss, balanced_class_weights, build_loss
from imgclf.utils import publish

__all__ = ["ClassificationLoss", "balanced_class_weights", "build_loss"]

publish(__name__, globals(), __all__)
