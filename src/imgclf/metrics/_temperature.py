"""Temperature scaling (Guo et al. 2017): one scalar ``T`` that divides the logits, fitted by minimising NLL."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics._arrays import check_logits_labels, softmax, to_numpy

DEFAULT_BOUNDS = (0.05, 20.0)


def fit_temperature(
    logits: Any,
    labels: Any,
    *,
    bounds: tuple[float, float] = DEFAULT_BOUNDS,
    max_iter: int = 100,
) -> float:
    """Fit the temperature ``T`` that minimises the NLL of ``softmax(logits / T)`` on held-out ``labels``.

    Optimises ``log T`` with L-BFGS (strong Wolfe line search) in float64, started from the best point of a
    coarse grid over ``bounds`` and clamped to them, so the fit neither diverges on separable data nor lands
    on a worse value than the grid found. ``T > 1`` softens an overconfident model; accuracy is unchanged.

    >>> z = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [4.0, 0.0]])
    >>> fit_temperature(z, [0, 1, 1, 0]) > 1  # one confident mistake in four: soften
    True
    """
    import torch
    import torch.nn.functional as F

    lo, hi = float(bounds[0]), float(bounds[1])
    if not (0 < lo < hi and math.isfinite(hi)):
        raise DataError(f"temperature bounds must satisfy 0 < low < high < inf, got {bounds}.")
    z_np, y_np = check_logits_labels(logits, labels)
    z = torch.from_numpy(z_np)  # (N, C) float64
    y = torch.from_numpy(y_np)  # (N,)
    log_lo, log_hi = math.log(lo), math.log(hi)

    def nll(log_t: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(z / log_t.exp(), y)

    with torch.no_grad():
        grid = torch.linspace(log_lo, log_hi, 17, dtype=torch.float64)
        values = torch.stack([nll(g) for g in grid])
    best_log_t = float(grid[int(values.argmin())])
    best_value = float(values.min())

    log_t = torch.tensor(best_log_t, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nll(log_t.clamp(log_lo, log_hi))
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        fitted = float(log_t.clamp(log_lo, log_hi))
        value = float(nll(torch.tensor(fitted, dtype=torch.float64)))
    if not math.isfinite(value) or value > best_value:
        fitted = best_log_t
    return float(math.exp(fitted))


def apply_temperature(logits: Any, temperature: float) -> Any:
    """Calibrated probabilities ``softmax(logits / T)`` ``(N, C)``; a torch tensor in gives a float tensor on
    the same device, anything else a float64 numpy array.

    >>> apply_temperature(np.array([[2.0, 0.0]]), 2.0).round(3).tolist()
    [[0.731, 0.269]]
    """
    t = float(temperature)
    if not (math.isfinite(t) and t > 0):
        raise DataError(f"temperature must be a finite number > 0, got {temperature!r}; refit it with fit_temperature.")
    if hasattr(logits, "detach") and hasattr(logits, "softmax"):  # torch tensor: stay on its device
        return (logits.float() / t).softmax(dim=-1)
    z = to_numpy(logits).astype(np.float64)
    if z.ndim != 2:
        raise DataError(f"logits must be a 2-D array (N, C), got shape {z.shape}.")
    return softmax(z / t)
