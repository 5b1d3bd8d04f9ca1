"""The Python API mirroring the CLI verbs: ``fit``, ``load``, ``Classifier``."""

from imgclf.api._classifier import Classifier, Prediction, expand_inputs, fit, load
from imgclf.api._fit import FitResult, train_run

__all__ = ["Classifier", "FitResult", "Prediction", "expand_inputs", "fit", "load", "train_run"]
