"""Workflows: everything that calls ``fit`` more than once — seeds and folds, prune + fine-tune, distillation with
its no-teacher baseline.

>>> from imgclf import workflows
>>> # workflows.train_repeated(cfg, seeds=3).mean
"""

from imgclf.utils import publish
from imgclf.workflows._compress import DistillResult, PruneResult, distill, prune_bundle
from imgclf.workflows._repeat import RepeatResult, train_repeated

__all__ = ["DistillResult", "PruneResult", "RepeatResult", "distill", "prune_bundle", "train_repeated"]

publish(__name__, globals(), __all__)
