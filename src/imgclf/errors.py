"""One exception tree for everything imgclf raises on purpose.

Every error says what went wrong, why, and how to fix it. ``exit_code`` is what the CLI returns:
2 for usage, configuration and data problems, 1 for runtime failures.
"""

from __future__ import annotations

__all__ = [
    "ImgclfError",
    "ConfigError",
    "DataError",
    "ModelError",
    "BundleError",
    "MissingDependencyError",
    "TrainingError",
    "NotFittedError",
    "TrainingInterrupted",
]


class ImgclfError(Exception):
    """Base class of every error imgclf raises deliberately."""

    exit_code: int = 1


class ConfigError(ImgclfError, ValueError):
    """A configuration key or value is invalid."""

    exit_code = 2


class DataError(ImgclfError, ValueError):
    """The data cannot be used as given (missing, empty, unreadable, inconsistent)."""

    exit_code = 2


class ModelError(ImgclfError, ValueError):
    """A model name, weights file or pretrained checkpoint cannot be used."""

    exit_code = 2


class BundleError(ImgclfError):
    """A model bundle is missing, incomplete or fails its integrity check."""

    exit_code = 2


class MissingDependencyError(ImgclfError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""

    exit_code = 2


class TrainingError(ImgclfError, RuntimeError):
    """Training cannot go on (for example the loss became NaN)."""

    exit_code = 1


class NotFittedError(ImgclfError, AttributeError):
    """An estimator was used before ``fit``; the message names the call to make."""

    exit_code = 2


class TrainingInterrupted(ImgclfError):
    """Training stopped on SIGTERM / Ctrl-C after saving a resumable checkpoint (the message says how to resume)."""

    exit_code = 130
