"""Privacy you can measure: DP-SGD training through Opacus, and membership-inference audits of a bundle.

>>> from imgclf import privacy
>>> # imgclf train mnist --model lenet5 --dp-epsilon 8          (the CLI wires privacy.make_private into fit)
>>> # workflows.audit_bundle("runs/x/bundle", shadows=8).loss.auc   (imgclf privacy-audit)
"""

from imgclf.privacy._dp import (
    ACCOUNTANT,
    LogicalStepScheduler,
    PrivacyAccounting,
    check_dp_config,
    dp_compatible_model,
    make_private,
    noise_for_budget,
    physical_batch,
    resolve_dp_auto,
    steps_taken,
)
from imgclf.privacy._mia import (
    LOW_FPRS,
    AttackROC,
    attack_roc,
    cross_entropy,
    lira_scores,
    loss_attack,
    plot_attack_rocs,
    true_class_logit,
)
from imgclf.utils import publish

__all__ = [
    "ACCOUNTANT",
    "LOW_FPRS",
    "AttackROC",
    "attack_roc",
    "cross_entropy",
    "lira_scores",
    "loss_attack",
    "plot_attack_rocs",
    "resolve_dp_auto",
    "true_class_logit",
    "LogicalStepScheduler",
    "PrivacyAccounting",
    "check_dp_config",
    "dp_compatible_model",
    "make_private",
    "noise_for_budget",
    "physical_batch",
    "steps_taken",
]

publish(__name__, globals(), __all__)
