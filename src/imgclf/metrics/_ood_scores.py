"""Out-of-distribution scores from logits, and the acceptance threshold on them.

Convention: a higher score means more in-distribution; an image is accepted when ``score >= threshold``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from imgclf.errors import ConfigError, DataError


def as_2d(values: Any, what: str) -> torch.Tensor:
    """``values`` as a float tensor ``(N, D)``, or a DataError naming ``what``."""
    tensor = torch.as_tensor(values).detach()
    if tensor.dim() != 2 or tensor.shape[1] == 0:
        raise DataError(f"{what} must be a 2-D array (N, D), got shape {tuple(tensor.shape)}.")
    return tensor.float() if not tensor.is_floating_point() else tensor


def msp(logits: Any, temperature: float = 1.0) -> torch.Tensor:
    """Maximum softmax probability (Hendrycks & Gimpel 2017) of ``logits / temperature``: ``(N, K) -> (N,)``.

    >>> msp(torch.tensor([[4.0, 0.0], [0.1, 0.0]]))
    tensor([0.9820, 0.5250])
    """
    z = as_2d(logits, "logits")
    if temperature <= 0:
        raise ConfigError(f"temperature must be positive, got {temperature}.")
    return torch.softmax(z / temperature, dim=1).amax(dim=1)


def max_logit(logits: Any) -> torch.Tensor:
    """Largest logit (Hendrycks et al. 2022, "Scaling OOD detection"): ``(N, K) -> (N,)``.

    >>> max_logit(torch.tensor([[4.0, 0.0], [0.1, 0.0]]))
    tensor([4.0000, 0.1000])
    """
    return as_2d(logits, "logits").amax(dim=1)


def energy(logits: Any, temperature: float = 1.0) -> torch.Tensor:
    """Negative free energy (Liu et al. 2020): ``T * logsumexp(logits / T)``, ``(N, K) -> (N,)``.

    >>> energy(torch.tensor([[0.0, 0.0]]))  # log 2
    tensor([0.6931])
    """
    z = as_2d(logits, "logits")
    if temperature <= 0:
        raise ConfigError(f"temperature must be positive, got {temperature}.")
    return temperature * torch.logsumexp(z / temperature, dim=1)


def choose_threshold(scores_in: Any, target_acceptance: float = 0.95) -> float:
    """The largest threshold ``t`` such that at least ``target_acceptance`` of ``scores_in`` satisfy
    ``score >= t`` (accept when ``score >= t``, answer ``unknown`` below it).

    With ``n`` distinct scores it accepts ``ceil(target * n)`` of them: exactly the target up to one example.

    >>> choose_threshold([float(i) for i in range(1, 101)], 0.95)
    6.0
    """
    if not 0 < target_acceptance <= 1:
        raise ConfigError(f"target_acceptance must be in (0, 1], got {target_acceptance}.")
    s = np.sort(np.asarray(torch.as_tensor(scores_in).detach().cpu().double().reshape(-1)))
    if s.size == 0:
        raise DataError("choose_threshold needs at least one in-distribution score")
    n_accept = min(s.size, math.ceil(target_acceptance * s.size - 1e-9))
    return float(s[s.size - n_accept])
