"""Tasks: what kind of label — single-label, multi-label, hierarchical — and everything that differs between them.

>>> from imgclf.tasks import make_task
>>> task = make_task("single", ["cat", "dog"])
>>> # loss = task.build_loss(cfg.train, train_labels); answers = task.decode(task.probabilities(logits, T))
"""

from imgclf.tasks._base import Answer, Task, TaskMetrics, topk_rows, unknown_mask
from imgclf.tasks._hierarchical import DEFAULT_BACKOFF, HierarchicalTask
from imgclf.tasks._multilabel import MultiLabelTask
from imgclf.tasks._registry import TASK_KINDS, make_task, task_from_dict
from imgclf.tasks._rejection import (
    DEFAULT_ACCEPTANCE,
    ENSEMBLE_SCORES,
    FEATURE_SCORES,
    FIT_IMAGES,
    LOGIT_SCORES,
    REJECTION_SCORES,
    default_knn_k,
    describe_score,
    fit_rejection,
    fit_rejection_stats,
    needs_features,
    ood_score,
    rejection_scores,
    with_reasons,
)
from imgclf.tasks._single import MIN_CALIBRATION_IMAGES, SingleLabelTask, checked_temperature
from imgclf.utils import publish

__all__ = [
    "DEFAULT_BACKOFF",
    "HierarchicalTask",
    "MultiLabelTask",
    "DEFAULT_ACCEPTANCE",
    "ENSEMBLE_SCORES",
    "FEATURE_SCORES",
    "FIT_IMAGES",
    "LOGIT_SCORES",
    "REJECTION_SCORES",
    "default_knn_k",
    "describe_score",
    "fit_rejection",
    "fit_rejection_stats",
    "needs_features",
    "ood_score",
    "rejection_scores",
    "with_reasons",
    "MIN_CALIBRATION_IMAGES",
    "TASK_KINDS",
    "Answer",
    "SingleLabelTask",
    "Task",
    "TaskMetrics",
    "checked_temperature",
    "make_task",
    "task_from_dict",
    "topk_rows",
    "unknown_mask",
]

publish(__name__, globals(), __all__)
