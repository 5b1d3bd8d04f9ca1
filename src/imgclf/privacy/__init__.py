"""Privacy you can measure: DP-SGD training through Opacus, and membership-inference audits of a bundle.

>>> from imgclf import privacy
>>> # imgclf train mnist --model lenet5 --dp-epsilon 8          (the CLI wires privacy.make_private into fit)
>>> # privacy.audit_bundle("runs/x/bundle", "cifar10", shadows=8).loss.auc
"""

from imgclf.privacy._dp import (
    ACCOUNTANT,
    LogicalStepScheduler,
    PrivacyAccounting,
    check_dp_config,
    dp_compatible_model,
    make_private,
    physical_batch,
    steps_taken,
)
from imgclf.utils import publish

__all__ = [
    "ACCOUNTANT",
    "LogicalStepScheduler",
    "PrivacyAccounting",
    "check_dp_config",
    "dp_compatible_model",
    "make_private",
    "physical_batch",
    "steps_taken",
]

publish(__name__, globals(), __all__)
