"""How well a score separates in-distribution from out-of-distribution inputs, and where to cut."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf.errors import DataError


def as_1d(values: Any, what: str) -> np.ndarray:
    """``values`` (tensor, array or list) as a finite float64 vector, or a DataError naming ``what``."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise DataError(f"{what} is empty; score at least one image.")
    if not np.isfinite(array).all():
        raise DataError(f"{what} contains NaN or infinite scores; check the model's outputs.")
    return array


@dataclass(frozen=True)
class OODReport:
    """Separation of in-distribution (positive) from OOD scores, higher score = in-distribution.

    ``auroc``: probability that a random in-distribution score beats a random OOD one (ties count half).
    ``fpr_at_95_tpr``: fraction of OOD inputs accepted at the threshold that accepts 95 % of in-distribution
    inputs. ``aupr_in`` / ``aupr_out``: average precision with in-distribution / OOD as the positive class.

    >>> ood_metrics([0.9, 0.8, 0.7], [0.1, 0.2]).auroc
    1.0
    """

    auroc: float
    fpr_at_95_tpr: float
    aupr_in: float
    aupr_out: float
    n_in: int
    n_out: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return {
            "auroc": self.auroc,
            "fpr_at_95_tpr": self.fpr_at_95_tpr,
            "aupr_in": self.aupr_in,
            "aupr_out": self.aupr_out,
            "n_in": self.n_in,
            "n_out": self.n_out,
        }


def ood_metrics(scores_in: Any, scores_out: Any) -> OODReport:
    """AUROC, FPR at 95 % TPR and AUPR (in and out) of ``scores_in`` (in-distribution, the positives) against
    ``scores_out``, with scikit-learn; higher scores must mean more in-distribution.

    FPR at 95 % TPR is read off the exact ROC curve: the smallest false-positive rate among thresholds whose
    true-positive rate reaches 0.95.

    >>> report = ood_metrics(torch.tensor([3.0, 2.0, 1.0]), torch.tensor([0.0, 2.5]))  # doctest: +SKIP
    >>> report.auroc  # doctest: +SKIP
    0.6666666666666666
    """
    from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

    s_in, s_out = as_1d(scores_in, "scores_in"), as_1d(scores_out, "scores_out")
    scores = np.concatenate([s_in, s_out])
    labels = np.concatenate([np.ones(s_in.size), np.zeros(s_out.size)])
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    return OODReport(
        auroc=float(roc_auc_score(labels, scores)),
        fpr_at_95_tpr=float(fpr[np.searchsorted(tpr, 0.95 - 1e-12, side="left")]),
        aupr_in=float(average_precision_score(labels, scores)),
        aupr_out=float(average_precision_score(1 - labels, -scores)),
        n_in=int(s_in.size),
        n_out=int(s_out.size),
    )
