"""imgclf: from a folder of labelled images to a classifier you can trust and ship.

The whole public API at the top level (each name documented where it is defined):

- ``fit(data, **options) -> Classifier`` and ``load(path) -> Classifier``; ``Classifier`` predicts, evaluates,
  calibrates, explains, exports and saves the model in memory.
- Results: ``Prediction``, ``FitResult``, ``Evaluation``, ``CalibrationResult``, ``ExplainReport``,
  ``ExportResult``, ``RobustnessResult`` (frozen dataclasses with ``.to_dict()``).
- ``RunConfig`` (the typed training configuration) and ``ImgclfError`` (every error imgclf raises).

Capabilities beyond that live in their packages: ``imgclf.evaluation``, ``imgclf.robustness``,
``imgclf.explain``, ``imgclf.export``, ``imgclf.monitor``, ``imgclf.workflows``, ``imgclf.tasks``.

>>> import imgclf
>>> # clf = imgclf.fit("path/to/images", model="resnet18", epochs=5)
>>> # imgclf.load("runs/<name>/bundle").predict(["photo.jpg"])[0].label
"""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING, Any

# OpenMP threads that spin while waiting collapse throughput when a core is busy elsewhere (a data-loader worker,
# another job): on 2 cores a small CNN trained 10x slower. Passive waiting costs little when cores are free.
# Only effective when imgclf is imported before torch (the CLI always is); an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"

# name -> the public package it lives in (imported lazily: `import imgclf` stays fast, torch loads on first use)
_PUBLIC = {
    "fit": "imgclf.api", "load": "imgclf.api", "Classifier": "imgclf.api", "Prediction": "imgclf.api",
    "FitResult": "imgclf.api", "Evaluation": "imgclf.evaluation", "CalibrationResult": "imgclf.evaluation",
    "ExplainReport": "imgclf.explain", "ExportResult": "imgclf.export", "RobustnessResult": "imgclf.robustness",
    "RunConfig": "imgclf.config", "ImgclfError": "imgclf.errors",
}  # fmt: skip
__all__ = [*_PUBLIC, "__version__"]

if TYPE_CHECKING:
    from imgclf.api import Classifier, FitResult, Prediction, fit, load  # noqa: F401
    from imgclf.config import RunConfig  # noqa: F401
    from imgclf.errors import ImgclfError  # noqa: F401
    from imgclf.evaluation import CalibrationResult, Evaluation  # noqa: F401
    from imgclf.explain import ExplainReport  # noqa: F401
    from imgclf.export import ExportResult  # noqa: F401
    from imgclf.robustness import RobustnessResult  # noqa: F401


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'imgclf' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
