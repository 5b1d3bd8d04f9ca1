"""Metrics on arrays: classification figures, bootstrap intervals, paired tests, calibration, error analysis.

Every function takes numpy arrays or torch tensors: ``probs`` ``(N, C)`` (rows on the simplex), ``logits``
``(N, C)``, ``labels`` ``(N,)`` class indices, ``class_names`` a list of C strings. Results are frozen
dataclasses with ``.to_dict()`` (JSON-ready; NaN becomes None). scikit-learn and scipy are imported when a
function first needs them.

>>> from imgclf.metrics import bootstrap_ci, classification_metrics
>>> report = classification_metrics(probs, labels, class_names)  # doctest: +SKIP
>>> print(bootstrap_ci(probs, labels)["accuracy"])  # doctest: +SKIP
0.912 [0.901, 0.923]

Multi-label figures take per-class probabilities ``(N, C)`` (sigmoids) and 0/1 targets ``(N, C)``
(:func:`multilabel_metrics`, :func:`multilabel_bootstrap_ci`, :func:`tune_thresholds`,
:func:`fit_per_class_temperature`); hierarchical figures take leaf indices and a :class:`~imgclf.config.Hierarchy`
(:func:`hierarchical_metrics`).
"""

from imgclf.metrics._arrays import check_probs_labels, softmax, to_numpy
from imgclf.metrics._bootstrap import HEADLINE_METRICS, LOWER_IS_BETTER, Interval, bootstrap_ci
from imgclf.metrics._calibration import (
    CalibrationReport,
    ReliabilityBins,
    calibration_metrics,
    expected_calibration_error,
)
from imgclf.metrics._classification import ClassificationReport, ClassMetrics, classification_metrics
from imgclf.metrics._error_analysis import (
    ConfidenceHistogram,
    ConfusedPair,
    RiskCoverage,
    TopLosses,
    confidence_histogram,
    most_confused,
    risk_coverage,
    top_losses,
)
from imgclf.metrics._groups import GroupMetrics, GroupReport, group_metrics
from imgclf.metrics._hierarchical import HierarchicalReport, hierarchical_metrics
from imgclf.metrics._multilabel import (
    MULTILABEL_HEADLINE,
    MultilabelClassMetrics,
    MultilabelReport,
    check_multilabel,
    multilabel_metrics,
    tune_thresholds,
)
from imgclf.metrics._multilabel_resampled import multilabel_bootstrap_ci
from imgclf.metrics._ood_feature import KNNScorer, Mahalanobis
from imgclf.metrics._ood_scores import as_2d, choose_threshold, energy, max_logit, msp
from imgclf.metrics._paired import Comparison, McNemarResult, compare_predictions, mcnemar_exact, paired_bootstrap_diff
from imgclf.metrics._temperature import (
    apply_per_class_temperature,
    apply_temperature,
    fit_per_class_temperature,
    fit_temperature,
)
from imgclf.utils import publish

__all__ = [
    "HEADLINE_METRICS",
    "LOWER_IS_BETTER",
    "MULTILABEL_HEADLINE",
    "CalibrationReport",
    "ClassMetrics",
    "ClassificationReport",
    "Comparison",
    "ConfidenceHistogram",
    "ConfusedPair",
    "GroupMetrics",
    "GroupReport",
    "HierarchicalReport",
    "Interval",
    "McNemarResult",
    "MultilabelClassMetrics",
    "MultilabelReport",
    "ReliabilityBins",
    "RiskCoverage",
    "TopLosses",
    "apply_per_class_temperature",
    "apply_temperature",
    "as_2d",
    "KNNScorer",
    "Mahalanobis",
    "choose_threshold",
    "energy",
    "max_logit",
    "msp",
    "bootstrap_ci",
    "calibration_metrics",
    "check_multilabel",
    "check_probs_labels",
    "classification_metrics",
    "compare_predictions",
    "confidence_histogram",
    "expected_calibration_error",
    "fit_per_class_temperature",
    "fit_temperature",
    "group_metrics",
    "hierarchical_metrics",
    "mcnemar_exact",
    "most_confused",
    "multilabel_bootstrap_ci",
    "multilabel_metrics",
    "paired_bootstrap_diff",
    "risk_coverage",
    "softmax",
    "to_numpy",
    "top_losses",
    "tune_thresholds",
]

publish(__name__, globals(), __all__)
