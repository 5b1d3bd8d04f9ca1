"""Training losses: single-label (hard labels (B,) or soft targets (B, C) from MixUp / CutMix), multi-label
(multi-hot targets (B, C)) and hierarchy-aware (labels (B,) over the leaves of a :class:`~imgclf.config.Hierarchy`).

>>> from imgclf.losses import build_loss, multilabel_pos_weights
>>> loss = build_loss("bce", pos_weight=multilabel_pos_weights(train_multi_hot))  # doctest: +SKIP
"""

from imgclf.losses._classification import ClassificationLoss, balanced_class_weights, build_loss
from imgclf.losses._hierarchical import HXELoss, SoftLabelsLoss, build_hierarchical_loss, soft_label_targets
from imgclf.losses._multilabel import MultiLabelASLLoss, MultiLabelBCELoss, multilabel_pos_weights
from imgclf.utils import publish

__all__ = [
    "ClassificationLoss",
    "HXELoss",
    "MultiLabelASLLoss",
    "MultiLabelBCELoss",
    "SoftLabelsLoss",
    "balanced_class_weights",
    "build_hierarchical_loss",
    "build_loss",
    "multilabel_pos_weights",
    "soft_label_targets",
]

publish(__name__, globals(), __all__)
