"""How easily is the model fooled, how does it degrade, and does it know what it does not know?

Everything works on any classifier ``nn.Module``. Attacks and corruptions live in pixel space [0, 1]: wrap a
classifier that takes normalised input in :class:`NormalizedModel` (``mean`` / ``std`` from its DataConfig).

- Adversarial: :func:`fgsm`, :func:`pgd` (L-inf / L2, random start, restarts), :func:`apgd` (APGD-CE), and
  :func:`robust_accuracy_curve` over an epsilon sweep -> :class:`RobustCurve`.
- Corruptions: the 15 ImageNet-C types x 5 severities in :data:`CORRUPTIONS`, applied by :func:`corrupt`;
  :func:`corruption_accuracy` -> :class:`CorruptionReport` (per corruption and severity, mean, relative drop).
- Out-of-distribution: :func:`msp`, :func:`max_logit`, :func:`energy` from logits; :class:`Mahalanobis` and
  :class:`KNNScorer` from features; :func:`ood_metrics` -> :class:`OODReport` (AUROC, FPR at 95 % TPR, AUPR);
  :func:`choose_threshold` for rejection; :func:`synthetic_outliers` when no OOD data is at hand. The rejection
  rules a bundle stores (and their one scoring function) live in :mod:`imgclf.tasks`; :func:`choose_score`
  picks one by AUROC (:data:`DEFAULT_CHOICE` without real outliers).
- Certified robustness: :class:`SmoothedClassifier`, :func:`certified_accuracy`, :class:`SmoothedVotes`;
  Carlini-Wagner L2: :func:`cw_l2`; test-time adaptation: :class:`TestTimeAdapter`.
- Figures: :func:`plot_robust_curve`, :func:`plot_corruption_heatmap`, :func:`plot_ood_histogram`.
"""

from imgclf.metrics import KNNScorer, Mahalanobis, choose_threshold, energy, max_logit, msp
from imgclf.robustness._adapt import ADAPT_METHODS, TestTimeAdapter, adapted_corruption_accuracy
from imgclf.robustness._adversarial_training import AdversarialTraining
from imgclf.robustness._apgd import apgd
from imgclf.robustness._attacks import fgsm, pgd
from imgclf.robustness._corruption_eval import CorruptionReport, corruption_accuracy
from imgclf.robustness._corruptions import CORRUPTIONS, SEVERITIES, corrupt
from imgclf.robustness._curve import ATTACKS, RobustCurve, cw_curve, robust_accuracy_curve
from imgclf.robustness._cw import CWResult, cw_l2
from imgclf.robustness._noise import GaussianNoiseAugment
from imgclf.robustness._normalize import NormalizedModel
from imgclf.robustness._ood_metrics import OODReport, ood_metrics
from imgclf.robustness._outliers import OUTLIER_KINDS, synthetic_outliers
from imgclf.robustness._plots import (
    plot_certified_curve,
    plot_corruption_heatmap,
    plot_ood_histogram,
    plot_robust_curve,
)
from imgclf.robustness._smoothing import (
    ABSTAIN,
    Certificate,
    CertifiedCurve,
    SmoothedClassifier,
    SmoothedPrediction,
    SmoothedVotes,
    certified_accuracy,
    clopper_pearson_lower,
    predict_from_counts,
)
from imgclf.robustness._stress import (
    DEFAULT_CHOICE,
    DEFAULT_EPSILONS,
    RobustnessResult,
    choose_score,
    robustness,
    stress_test,
)
from imgclf.utils import publish

__all__ = [
    "ABSTAIN",
    "ADAPT_METHODS",
    "DEFAULT_CHOICE",
    "CWResult",
    "Certificate",
    "CertifiedCurve",
    "GaussianNoiseAugment",
    "SmoothedClassifier",
    "SmoothedPrediction",
    "SmoothedVotes",
    "predict_from_counts",
    "TestTimeAdapter",
    "adapted_corruption_accuracy",
    "certified_accuracy",
    "clopper_pearson_lower",
    "cw_curve",
    "cw_l2",
    "plot_certified_curve",
    "DEFAULT_EPSILONS",
    "choose_score",
    "AdversarialTraining",
    "RobustnessResult",
    "robustness",
    "stress_test",
    "ATTACKS",
    "CORRUPTIONS",
    "OUTLIER_KINDS",
    "SEVERITIES",
    "CorruptionReport",
    "KNNScorer",
    "Mahalanobis",
    "NormalizedModel",
    "OODReport",
    "RobustCurve",
    "apgd",
    "choose_threshold",
    "corrupt",
    "corruption_accuracy",
    "energy",
    "fgsm",
    "max_logit",
    "msp",
    "ood_metrics",
    "pgd",
    "plot_corruption_heatmap",
    "plot_ood_histogram",
    "plot_robust_curve",
    "robust_accuracy_curve",
    "synthetic_outliers",
]

publish(__name__, globals(), __all__)
