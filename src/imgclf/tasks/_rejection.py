"""The rejection rule: a score per image (higher = more in-distribution) and the threshold below which the answer
is ``unknown``. One implementation, used by training, calibrate, predict, evaluate, robustness and serve.

A rule is a JSON-able dict stored in the bundle: ``{"score": "msp", "threshold": 0.62, "temperature": 1.3,
"target_acceptance": 0.95, ...}``; ``temperature`` is the one the score was computed at (msp only).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from imgclf import metrics as M
from imgclf.errors import BundleError

LOGIT_SCORES = ("msp", "max_logit", "energy")  # computable from logits alone: predict and serve use them
DEFAULT_ACCEPTANCE = 0.95


def ood_score(name: str, logits: Any, temperature: float = 1.0) -> torch.Tensor:
    """A logit-based score ``(N,)``: msp at ``temperature`` (calibrated), max_logit or energy at T = 1.

    >>> ood_score("msp", torch.tensor([[4.0, 0.0]])).round(decimals=3).tolist()
    [0.982]
    """
    z = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits).float()
    if name == "msp":
        return M.msp(z, float(temperature or 1.0))
    if name == "max_logit":
        return M.max_logit(z)
    if name == "energy":
        return M.energy(z)
    raise BundleError(f"unknown rejection score {name!r}; this imgclf computes {', '.join(LOGIT_SCORES)}")


def rejection_scores(rule: dict[str, Any], logits: Any, temperature: Any = None) -> np.ndarray:
    """The rule's score of each row of ``logits`` ``(N, C)`` as float64 ``(N,)``.

    The score is computed at the temperature the threshold was chosen at (``rule["temperature"]``), falling back
    to ``temperature`` (the bundle's calibration) for rules written before it was recorded.
    """
    t = rule.get("temperature", temperature)
    t = float(t) if isinstance(t, (int, float)) and t else 1.0
    return ood_score(str(rule["score"]), logits, t).double().cpu().numpy()


def fit_rejection(logits: Any, *, score: str = "msp", temperature: Any = None,
                  target_acceptance: float = DEFAULT_ACCEPTANCE, **info: Any) -> dict[str, Any]:  # fmt: skip
    """A rule accepting ``target_acceptance`` of the in-distribution ``logits`` (held-out images), at the
    calibration ``temperature``; ``info`` (e.g. auroc, the OOD source) is stored alongside.

    >>> fit_rejection(np.array([[3.0, 0.0], [1.0, 0.0]]), target_acceptance=0.5)["score"]
    'msp'
    """
    t = float(temperature) if isinstance(temperature, (int, float)) and temperature else 1.0
    rule = {"score": score, "temperature": t, "target_acceptance": target_acceptance, **info}
    rule["threshold"] = M.choose_threshold(rejection_scores(rule, logits), target_acceptance)
    return rule
