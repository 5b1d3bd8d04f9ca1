"""Reference statistics stored in a bundle at training time, and the feature projection they carry."""

from __future__ import annotations

from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics import to_numpy

REFERENCE_VERSION = 1
MAX_COMPONENTS = 32


def _round(values: np.ndarray, digits: int = 6) -> list[Any]:
    """Nested lists of floats with ``digits`` significant digits: exact enough, and small in JSON."""
    return np.vectorize(lambda v: float(f"{v:.{digits}g}"), otypes=[float])(values).tolist() if values.size else []


def _check_probs(probs: Any, name: str = "probs") -> np.ndarray:
    p = to_numpy(probs).astype(np.float64)
    if p.ndim != 2 or p.shape[1] < 1:
        raise DataError(f"{name} must be a 2-D array of class probabilities (N, C), got shape {p.shape}.")
    if not np.all(np.isfinite(p)):
        raise DataError(f"{name} holds NaN or infinite values; pass softmax outputs.")
    return p


def reference_stats(probs: Any, features: Any | None = None, *, seed: int = 0, max_samples: int = 500,
                    n_components: int = MAX_COMPONENTS, thresholds: Any | None = None) -> dict[str, Any]:  # fmt: skip
    """Summaries of held-out predictions that later windows of served predictions are compared against.

    ``probs`` ``(N, C)``: calibrated class probabilities (use the temperature the server will use, on data the
    model did not train on). ``features`` ``(N, D)``: pooled embeddings of the same images, or None.
    Returns a JSON-ready dict: a sample of at most ``max_samples`` top-1 confidences, predicted-class counts
    over all ``N``, and, with features, a PCA projection to at most ``n_components`` dimensions (mean,
    components, fitted on rows other than the sample) with the projected sample of at most ``min(max_samples,
    N // 2)`` rows. Deterministic for a given ``seed``. Store it as
    ``meta.extra["monitor"]``. Multi-label models pass their per-class ``thresholds``: ``probs`` are then
    independent per-label probabilities, and the reference also counts each label's positives
    (``label_counts``), so windows can be tested label by label for a change in rate.

    >>> ref = reference_stats(np.full((4, 2), 0.5), np.eye(4))
    >>> ref["class_counts"], ref["features"]["dim"]
    ([4, 0], 4)
    """
    p = _check_probs(probs)
    n, c = p.shape
    if n < 2:
        raise DataError(f"reference_stats needs at least 2 predictions, got {n}.")
    if max_samples < 2:
        raise DataError(f"max_samples must be at least 2, got {max_samples}.")
    perm = np.random.default_rng(seed).permutation(n)
    ref: dict[str, Any] = {
        "version": REFERENCE_VERSION,
        "n": int(n),
        "num_classes": int(c),
        "seed": int(seed),
        "confidence": _round(p.max(axis=1)[np.sort(perm[:max_samples])]),
        "class_counts": np.bincount(p.argmax(axis=1), minlength=c).astype(int).tolist(),
        "features": None,
    }
    if thresholds is not None:
        thr = np.broadcast_to(np.asarray(thresholds, np.float64), (c,))
        ref["thresholds"] = _round(thr)
        ref["label_counts"] = (p >= thr).sum(axis=0).astype(int).tolist()
    if features is not None:
        f = to_numpy(features).astype(np.float64)
        if f.ndim != 2 or f.shape[0] != n:
            raise DataError(f"features must be a 2-D array with one row per prediction ({n}, D), got {f.shape}.")
        if not np.all(np.isfinite(f)):
            raise DataError("features hold NaN or infinite values.")
        # The PCA is fitted on rows disjoint from the stored sample: fitted on the sample itself, it would pick
        # the directions where that sample happens to spread most, and every fresh window would look narrower.
        n_sample = min(max_samples, n // 2)
        sample, fit = f[np.sort(perm[:n_sample])], f[perm[n_sample:]]  # (S, D), (N - S, D)
        mean = fit.mean(axis=0)  # (D,)
        k = max(1, min(n_components, f.shape[1], len(fit) - 1))
        _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
        components = vt[:k]  # (k, D)
        ref["features"] = {
            "dim": int(f.shape[1]),
            "mean": _round(mean),
            "components": _round(components),
            "sample": _round((sample - mean) @ components.T),  # (S, k)
        }
    return ref


def check_reference(reference: Any) -> dict[str, Any]:
    """``reference`` if it looks like :func:`reference_stats` output, else a DataError saying how to make one."""
    keys = ("version", "num_classes", "confidence", "class_counts", "features")
    if not isinstance(reference, dict) or any(k not in reference for k in keys):
        raise DataError(
            "the drift reference is missing or incomplete: the bundle needs meta.extra['monitor'] from "
            "imgclf.monitor.reference_stats (re-train, or store it with imgclf.bundle.update_meta)"
        )
    if reference["version"] > REFERENCE_VERSION:
        raise DataError(f"drift reference version {reference['version']} is newer than this imgclf; upgrade imgclf")
    return reference


def project_features(reference: dict[str, Any], features: Any) -> np.ndarray:
    """Raw embeddings ``(N, D)`` projected with the reference's stored PCA: ``(N, k)``.

    >>> ref = reference_stats(np.full((4, 2), 0.5), np.eye(4))
    >>> project_features(ref, np.eye(4)).shape
    (4, 1)
    """
    spec = check_reference(reference)["features"]
    if spec is None:
        raise DataError("this drift reference has no feature sample; pass features to reference_stats")
    f = to_numpy(features).astype(np.float64)
    if f.ndim != 2 or f.shape[1] != spec["dim"]:
        raise DataError(f"features must have shape (N, {spec['dim']}) like the reference, got {f.shape}.")
    components = np.asarray(spec["components"], np.float64)  # (k, D)
    return (f - np.asarray(spec["mean"], np.float64)) @ components.T  # (N, k)
