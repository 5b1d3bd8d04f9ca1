"""Optimizers and per-step learning-rate schedules built from :class:`~imgclf.config.OptimConfig`."""

from imgclf.optim._build import build_optimizer, build_scheduler, lr_factor
from imgclf.utils import publish

__all__ = ["build_optimizer", "build_scheduler", "lr_factor"]

publish(__name__, globals(), __all__)
