"""Headline metrics evaluated on many bootstrap resamples at once.

Each kernel takes the resampled row indices ``idx`` ``(R, N)`` and returns one value per resample ``(R,)``,
computed from per-sample quantities gathered through ``idx`` (no Python loop over resamples). Each kernel on
``idx = arange(N)[None]`` gives exactly the full-data figure, and the unit tests check every kernel against
scikit-learn on explicit resamples.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from imgclf.metrics._calibration import equal_width_bins, per_sample_brier, per_sample_nll

Kernel = Callable[["Prepared", np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class Prepared:
    """Per-sample quantities shared by the kernels, computed once per call."""

    p: np.ndarray  # (N, C) probabilities
    y: np.ndarray  # (N,) labels
    pred: np.ndarray  # (N,) argmax predictions
    correct: np.ndarray  # (N,) float 0/1
    n_bins: int
    layouts: dict[int, tuple[np.ndarray, ...]] = field(default_factory=dict, repr=False)  # AUC layout per class

    @property
    def n(self) -> int:
        return len(self.y)

    @property
    def c(self) -> int:
        return self.p.shape[1]


def prepare(p: np.ndarray, y: np.ndarray, n_bins: int = 15) -> Prepared:
    """Precompute predictions and correctness for the kernels."""
    pred = p.argmax(axis=1)
    return Prepared(p=p, y=y, pred=pred, correct=(pred == y).astype(np.float64), n_bins=n_bins)


def accuracy(d: Prepared, idx: np.ndarray) -> np.ndarray:
    return d.correct[idx].mean(axis=1)


def balanced_accuracy(d: Prepared, idx: np.ndarray) -> np.ndarray:
    """Mean per-class recall over the classes present in each resample (scikit-learn's definition)."""
    r, c = idx.shape[0], d.c
    keys = (np.arange(r)[:, None] * c + d.y[idx]).ravel()  # (R*N,) resample-and-class key
    support = np.bincount(keys, minlength=r * c).reshape(r, c)
    hits = np.bincount(keys, weights=d.correct[idx].ravel(), minlength=r * c).reshape(r, c)
    recall = np.divide(hits, support, out=np.zeros((r, c)), where=support > 0)
    return recall.sum(axis=1) / (support > 0).sum(axis=1)


def macro_f1(d: Prepared, idx: np.ndarray) -> np.ndarray:
    """Macro F1 over the classes present in the labels or predictions of each resample, F1 = 2TP / (T + P)."""
    c = d.c
    step = max(1, _CHUNK_CELLS // (c * c))  # keep the (R, C, C) confusion stack small
    out = []
    for part in np.array_split(idx, range(step, len(idx), step)):
        r = part.shape[0]
        keys = (np.arange(r)[:, None] * c * c + d.y[part] * c + d.pred[part]).ravel()
        conf = np.bincount(keys, minlength=r * c * c).reshape(r, c, c)  # (R, C, C) confusion per resample
        tp = np.diagonal(conf, axis1=1, axis2=2)  # (R, C)
        denom = conf.sum(axis=2) + conf.sum(axis=1)  # support + predicted
        f1 = np.divide(2 * tp, denom, out=np.zeros((r, c)), where=denom > 0)
        out.append(f1.sum(axis=1) / (denom > 0).sum(axis=1))
    return np.concatenate(out)


def macro_auc(d: Prepared, idx: np.ndarray) -> np.ndarray:
    """Mean one-vs-rest ROC AUC over the classes with both positives and negatives in each resample.

    A resample weights each original row by how often it was drawn, so the AUC of class k is
    ``sum_pos w_i (W_neg below s_i + W_neg tied with s_i / 2) / (W_pos W_neg)`` (the Mann-Whitney statistic),
    read off a cumulative sum of the negatives' weights in score order. Cost: O(C * R * N).
    """
    r, n = idx.shape
    w = np.bincount((np.arange(r)[:, None] * n + idx).ravel(), minlength=r * n).reshape(r, n).astype(np.int32)
    total = np.zeros(r)
    defined = np.zeros(r)
    for k in range(d.c):
        pos_rows, neg_order, lo, hi = _auc_layout(d, k)
        if len(pos_rows) == 0 or len(neg_order) == 0:
            continue  # undefined in every resample
        cum = np.zeros((r, len(neg_order) + 1), dtype=np.int32)
        np.cumsum(w[:, neg_order], axis=1, out=cum[:, 1:])  # (R, N_neg + 1) negative weight below each rank
        w_pos = w[:, pos_rows]  # (R, N_pos)
        twice = (w_pos * (cum[:, lo] + cum[:, hi])).sum(axis=1, dtype=np.int64)  # 2 * Mann-Whitney numerator
        pos_total = w_pos.sum(axis=1, dtype=np.int64)
        neg_total = cum[:, -1].astype(np.int64)
        ok = (pos_total > 0) & (neg_total > 0)
        total += np.divide(twice, 2.0 * pos_total * neg_total, out=np.zeros(r), where=ok)
        defined += ok
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / defined


def _auc_layout(d: Prepared, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rows of class ``k``; the other rows sorted by their class-k score; and for each positive the number of
    negatives scoring strictly below it (``lo``) and at most equal to it (``hi``). Cached per class."""
    if k in d.layouts:
        return d.layouts[k]  # type: ignore[return-value]
    s = d.p[:, k]
    pos = d.y == k
    pos_rows, neg_rows = np.flatnonzero(pos), np.flatnonzero(~pos)
    neg_order = neg_rows[np.argsort(s[neg_rows], kind="stable")]
    neg_sorted = s[neg_order]
    lo = np.searchsorted(neg_sorted, s[pos_rows], side="left")
    hi = np.searchsorted(neg_sorted, s[pos_rows], side="right")
    d.layouts[k] = (pos_rows, neg_order, lo, hi)
    return pos_rows, neg_order, lo, hi


def log_loss(d: Prepared, idx: np.ndarray) -> np.ndarray:
    return per_sample_nll(d.p, d.y)[idx].mean(axis=1)


def brier(d: Prepared, idx: np.ndarray) -> np.ndarray:
    return per_sample_brier(d.p, d.y)[idx].mean(axis=1)


def ece(d: Prepared, idx: np.ndarray) -> np.ndarray:
    """Equal-width top-label ECE: ``sum_b |sum_{i in b} (conf_i - correct_i)| / N`` per resample."""
    r, nb = idx.shape[0], d.n_bins
    conf = d.p.max(axis=1)
    gap = conf - d.correct  # (N,)
    bins = equal_width_bins(conf, nb)
    keys = (np.arange(r)[:, None] * nb + bins[idx]).ravel()
    per_bin = np.bincount(keys, weights=gap[idx].ravel(), minlength=r * nb).reshape(r, nb)
    return np.abs(per_bin).sum(axis=1) / idx.shape[1]


KERNELS: dict[str, Kernel] = {
    "accuracy": accuracy,
    "balanced_accuracy": balanced_accuracy,
    "macro_f1": macro_f1,
    "macro_auc": macro_auc,
    "log_loss": log_loss,
    "brier": brier,
    "ece": ece,
}

# Cells of one chunk of resamples: idx is (R, N) and the kernels make a few arrays of that size.
_CHUNK_CELLS = 4_000_000


def chunk_size(n: int) -> int:
    """How many resamples of ``n`` rows to evaluate at once so no intermediate array exceeds a few tens of MB."""
    return max(1, _CHUNK_CELLS // max(n, 1))
