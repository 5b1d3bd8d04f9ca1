"""The fit chain and the estimator: ``fit``, ``load``, ``Classifier`` (predict / predict_proba / evaluate /
calibrate / explain / export / save), and ``train_run`` for workflows that train more than once.

Bundle-level verbs of each capability live in that capability's package (``imgclf.evaluation.build_report``,
``imgclf.robustness.stress_test``, ``imgclf.export.export_bundle`` ...).
"""

from imgclf.api._classifier import SHORTCUTS, Classifier, Prediction, fit, load
from imgclf.api._fit import FitResult, train_run
from imgclf.api._hedge import hedge, uncertainty
from imgclf.api._run import run_name
from imgclf.utils import publish

__all__ = ["SHORTCUTS", "Classifier", "FitResult", "Prediction", "fit", "hedge", "load", "run_name", "train_run",
           "uncertainty"]

publish(__name__, globals(), __all__)
