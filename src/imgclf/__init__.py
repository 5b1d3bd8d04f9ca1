"""imgclf: from a folder of labelled images to a classifier you can trust and ship.

>>> import imgclf
>>> # clf = imgclf.fit("path/to/images", model="resnet18", epochs=5)
>>> # imgclf.load("runs/<name>/bundle").predict(["photo.jpg"])
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

# OpenMP threads that spin while waiting collapse throughput when a core is busy elsewhere (a data-loader worker,
# another job): on 2 cores a small CNN trained 10x slower. Passive waiting costs little when cores are free.
# Only effective when imgclf is imported before torch (the CLI always is); an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__version__ = "0.1.0"
__all__ = ["Classifier", "Prediction", "fit", "load", "__version__"]

if TYPE_CHECKING:
    from imgclf.api import Classifier, Prediction, fit, load


def __getattr__(name: str) -> Any:
    # Lazy: `import imgclf` stays fast; torch loads on first use of the API.
    if name in ("Classifier", "Prediction", "fit", "load"):
        from imgclf import api

        return getattr(api, name)
    raise AttributeError(f"module 'imgclf' has no attribute {name!r}")
