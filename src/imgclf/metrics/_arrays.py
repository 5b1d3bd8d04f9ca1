"""Input checking and conversion shared by every metric: tensors or arrays in, float64 / int64 numpy out."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from imgclf.errors import DataError

# Rows of ``probs`` must sum to 1 within this tolerance (float16 softmax outputs land within 1e-3).
_SUM_TOL = 1e-2


def to_numpy(x: Any) -> np.ndarray:
    """A numpy view of ``x``: torch tensors are detached and moved to the CPU, everything else goes through
    ``np.asarray``.

    >>> to_numpy([1, 2]).tolist()
    [1, 2]
    """
    if hasattr(x, "detach") and hasattr(x, "cpu"):  # a torch tensor, without importing torch
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        return x.numpy()
    return np.asarray(x)


def check_labels(labels: Any, n: int | None = None, num_classes: int | None = None, name: str = "labels") -> np.ndarray:
    """``labels`` as an int64 array ``(N,)`` of class indices in ``[0, num_classes)``; raises DataError otherwise."""
    y = to_numpy(labels)
    if y.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of class indices (N,), got shape {y.shape}.")
    integral = np.issubdtype(y.dtype, np.integer) or (np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0))
    if y.size and not integral:
        raise DataError(f"{name} must hold integer class indices, got dtype {y.dtype}.")
    y = y.astype(np.int64)
    if n is not None and y.shape[0] != n:
        raise DataError(f"{name} has {y.shape[0]} entries but the predictions have {n} rows; pass one label per row.")
    if num_classes is not None and y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(
            f"{name} must lie in [0, {num_classes}) for {num_classes} classes, found values {y.min()}..{y.max()}; "
            "check that the label map matches the model's class names."
        )
    return y


def check_probs_labels(probs: Any, labels: Any, num_classes: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``probs`` ``(N, C)`` (rows on the simplex) and ``labels`` ``(N,)``; return float64 / int64 arrays.

    Rows off the simplex by more than 1e-6 (float16 outputs) are renormalised; others are left bit-for-bit as
    given, so thresholds found on them apply to the caller's own probabilities. Raises
    :class:`~imgclf.errors.DataError` for empty input, wrong shapes, non-finite values, labels out of range, or
    rows that do not sum to 1 (logits passed by mistake).

    >>> p, y = check_probs_labels([[0.2, 0.8]], [1])
    >>> p.shape, y.tolist()
    ((1, 2), [1])
    """
    p = to_numpy(probs).astype(np.float64)
    if p.ndim != 2:
        raise DataError(f"probs must be a 2-D array (N, C) of class probabilities, got shape {p.shape}.")
    n, c = p.shape
    if n == 0:
        raise DataError("probs is empty: there are no predictions to evaluate; check that the split has images.")
    if c < 2:
        raise DataError(f"probs must have at least 2 class columns, got {c}.")
    if num_classes is not None and c != num_classes:
        raise DataError(f"probs has {c} columns but there are {num_classes} class names; they must match.")
    if not np.all(np.isfinite(p)):
        raise DataError("probs contains NaN or infinite values; the model's outputs are broken (check for NaN loss).")
    sums = p.sum(axis=1)
    if p.min() < -1e-6 or p.max() > 1 + 1e-6 or np.abs(sums - 1).max() > _SUM_TOL:
        raise DataError(
            "probs rows must be probabilities that sum to 1 (worst row sums to "
            f"{sums[np.argmax(np.abs(sums - 1))]:.4g}); these look like logits: apply softmax first "
            "(imgclf.metrics.apply_temperature(logits, 1.0))."
        )
    if p.min() < 0 or np.abs(sums - 1).max() > 1e-6:
        p = np.clip(p, 0.0, 1.0)
        p /= p.sum(axis=1, keepdims=True)
    return p, check_labels(labels, n, c)


def check_logits_labels(logits: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    """Validate logits ``(N, C)`` (finite) and labels ``(N,)``; return float64 / int64 arrays."""
    z = to_numpy(logits).astype(np.float64)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise DataError(f"logits must be a non-empty 2-D array (N, C) with C >= 2, got shape {z.shape}.")
    if not np.all(np.isfinite(z)):
        raise DataError("logits contain NaN or infinite values; the model's outputs are broken.")
    return z, check_labels(labels, z.shape[0], z.shape[1])


def check_correct(correct: Any, name: str = "correct") -> np.ndarray:
    """A boolean array ``(N,)`` of per-sample correctness."""
    c = to_numpy(correct)
    if c.ndim != 1:
        raise DataError(f"{name} must be a 1-D array of per-sample correctness (N,), got shape {c.shape}.")
    if c.size and not np.all((c == 0) | (c == 1)):
        raise DataError(f"{name} must hold booleans (or 0/1), found other values.")
    return c.astype(bool)


def check_class_names(class_names: Sequence[str] | None, num_classes: int) -> tuple[str, ...]:
    """Class names as a tuple of length ``num_classes``; ``None`` gives ``("0", "1", ...)``."""
    if class_names is None:
        return tuple(str(i) for i in range(num_classes))
    names = tuple(str(n) for n in class_names)
    if len(names) != num_classes:
        raise DataError(f"got {len(names)} class names for {num_classes} probability columns; they must match.")
    return names


def nan_to_none(x: Any) -> Any:
    """Make ``x`` JSON-ready: numpy scalars and arrays become Python numbers and lists, NaN / inf become None,
    tuples become lists, and dataclass-like objects with ``to_dict`` are expanded.

    >>> nan_to_none({"a": float("nan"), "b": np.arange(2)})
    {'a': None, 'b': [0, 1]}
    """
    if hasattr(x, "to_dict") and callable(x.to_dict):
        return x.to_dict()
    if isinstance(x, Mapping):
        return {str(k): nan_to_none(v) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        return nan_to_none(x.tolist())
    if isinstance(x, (list, tuple)):
        return [nan_to_none(v) for v in x]
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return float(x) if math.isfinite(x) else None
    return x


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of float logits ``(N, C)``, numerically stable.

    >>> softmax(np.array([[0.0, 0.0], [1000.0, 0.0]])).tolist()
    [[0.5, 0.5], [1.0, 0.0]]
    """
    z = z - z.max(axis=1, keepdims=True)  # (N, C)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
