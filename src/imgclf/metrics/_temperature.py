"""Temperature scaling (Guo et al. 2017): one scalar ``T`` that divides the logits, fitted by minimising NLL; and
one ``T`` per class for multi-label sigmoid outputs."""

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


def fit_per_class_temperature(
    logits: Any,
    targets: Any,
    *,
    bounds: tuple[float, float] = DEFAULT_BOUNDS,
    max_iter: int = 100,
) -> np.ndarray:
    """Fit one temperature per class ``(C,)`` for multi-label logits: ``T_k`` minimises the mean binary NLL of
    ``sigmoid(logits[:, k] / T_k)`` against the 0/1 ``targets[:, k]`` on held-out data.

    The classes are independent, so all are fitted at once as :func:`fit_temperature` fits one: ``log T`` by
    L-BFGS in float64 from the best point of a coarse grid over ``bounds``, clamped to them, never ending worse
    than the grid. A class without positives or without negatives keeps ``T = 1``: its NLL falls forever as
    the logits are sharpened, so no temperature is supported by the data.

    >>> z = np.array([[4.0, -3.0], [4.0, 3.0], [-4.0, -3.0], [-4.0, 3.0]])
    >>> t = fit_per_class_temperature(z, [[1, 0], [0, 1], [0, 0], [1, 1]])  # class 0 confidently wrong twice
    >>> bool(t[0] > 1), bool(t[1] < 1)  # class 0 softened, class 1 (always right) sharpened
    (True, True)
    """
    import torch
    import torch.nn.functional as F

    lo, hi = float(bounds[0]), float(bounds[1])
    if not (0 < lo < hi and math.isfinite(hi)):
        raise DataError(f"temperature bounds must satisfy 0 < low < high < inf, got {bounds}.")
    z_np, y_np = to_numpy(logits).astype(np.float64), to_numpy(targets)
    if z_np.ndim != 2 or z_np.shape[0] == 0 or y_np.shape != z_np.shape:
        raise DataError(f"logits and targets must be non-empty (N, C) arrays of the same shape, got {z_np.shape} "
                        f"and {y_np.shape}.")  # fmt: skip
    if not np.all(np.isfinite(z_np)):
        raise DataError("logits contain NaN or infinite values; the model's outputs are broken.")
    if not np.isin(y_np, (0, 1)).all():
        raise DataError("targets must hold only 0 and 1 (one column per class).")
    z, y = torch.from_numpy(z_np), torch.from_numpy(y_np.astype(np.float64))  # (N, C) each
    positives = y.sum(dim=0)
    fit = ((positives > 0) & (positives < y.shape[0])).numpy()  # (C,) classes with both outcomes
    log_lo, log_hi = math.log(lo), math.log(hi)

    def nll(log_t: torch.Tensor) -> torch.Tensor:  # (C,) -> (C,) mean binary NLL per class
        return F.binary_cross_entropy_with_logits(z / log_t.exp(), y, reduction="none").mean(dim=0)

    with torch.no_grad():
        grid = torch.linspace(log_lo, log_hi, 17, dtype=torch.float64)
        values = torch.stack([nll(g.expand(z.shape[1])) for g in grid])  # (17, C)
    best_value, best = values.min(dim=0)
    best_log_t = grid[best]  # (C,)

    log_t = best_log_t.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([log_t], lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nll(log_t.clamp(log_lo, log_hi)).sum()  # a sum of independent terms: one joint fit
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        fitted = log_t.clamp(log_lo, log_hi)
        value = nll(fitted)
        worse = ~torch.isfinite(value) | (value > best_value)
        fitted = torch.where(worse, best_log_t, fitted)
    return np.where(fit, fitted.exp().numpy(), 1.0)


def apply_per_class_temperature(logits: Any, temperatures: Any) -> Any:
    """Calibrated per-class probabilities ``sigmoid(logits / T)`` ``(N, C)`` with ``T`` ``(C,)``; a torch tensor in
    gives a float tensor on the same device, anything else a float64 numpy array.

    >>> apply_per_class_temperature(np.array([[2.0, 2.0]]), [1.0, 2.0]).round(3).tolist()
    [[0.881, 0.731]]
    """
    t = np.asarray(to_numpy(temperatures), dtype=np.float64)
    if t.ndim != 1 or not np.all(np.isfinite(t) & (t > 0)):
        raise DataError("temperatures must be a 1-D array of finite numbers > 0; refit them with "
                        "fit_per_class_temperature.")  # fmt: skip
    if hasattr(logits, "detach") and hasattr(logits, "sigmoid"):  # torch tensor: stay on its device
        import torch

        return (logits.float() / torch.as_tensor(t, dtype=torch.float32, device=logits.device)).sigmoid()
    z = to_numpy(logits).astype(np.float64)
    if z.ndim != 2 or z.shape[1] != len(t):
        raise DataError(f"logits must be (N, {len(t)}) for {len(t)} temperatures, got shape {z.shape}.")
    return 1.0 / (1.0 + np.exp(-z / t))
