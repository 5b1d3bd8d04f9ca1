"""Membership inference on arrays: per-example scores, the loss-threshold attack, LiRA, and their ROC figures.

Every attack turns a model's output on an example into a score, higher meaning "more likely a training member";
:func:`attack_roc` summarises scores against the truth the way the literature does (Carlini et al. 2022, "Membership
Inference Attacks From First Principles"): ROC AUC with a bootstrap interval, and the true-positive rate at a low
false-positive rate (0.1 %, 1 %), which is what an attacker who must be sure can achieve.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics import Interval, bootstrap_ci
from imgclf.utils import save_figure

LOW_FPRS = (0.001, 0.01)


def true_class_logit(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """LiRA's statistic: the logit-scaled confidence in the true class, ``log p_y - log(1 - p_y)``, computed stably
    as ``z_y - logsumexp(z_others)``. Roughly Gaussian over training runs, which is why LiRA fits Gaussians to it.

    >>> import numpy as np
    >>> float(true_class_logit(np.array([[2.0, 0.0]]), np.array([0]))[0])
    2.0
    """
    z = np.asarray(logits, np.float64)  # (N, C)
    y = np.asarray(labels, np.int64)  # (N,)
    rows = np.arange(len(y))
    own = z[rows, y]
    others = z.copy()
    others[rows, y] = -np.inf
    top = others.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(others - top).sum(axis=1))
    return own - lse


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per-example cross-entropy ``(N,)`` of ``logits (N, C)`` against class indices ``(N,)``."""
    z = np.asarray(logits, np.float64)
    y = np.asarray(labels, np.int64)
    top = z.max(axis=1, keepdims=True)
    lse = top[:, 0] + np.log(np.exp(z - top).sum(axis=1))
    return lse - z[np.arange(len(y)), y]


def loss_attack(losses: np.ndarray) -> np.ndarray:
    """The loss-threshold attack (Yeom et al. 2018): a low loss means a member, so the score is ``-loss``."""
    return -np.asarray(losses, np.float64)


def lira_scores(target: np.ndarray, shadow: np.ndarray, shadow_in: np.ndarray, *, online: bool = True,
                global_variance: bool | None = None) -> np.ndarray:  # fmt: skip
    """LiRA (Carlini et al. 2022): how much likelier each example's statistic is under "member" than "non-member".

    ``target (N,)``: the audited model's :func:`true_class_logit` per example; ``shadow (K, N)``: the same for K
    shadow models; ``shadow_in (K, N)`` bool: whether shadow k trained on example n. Online: the log-likelihood
    ratio of two Gaussians fitted per example to the IN and OUT shadow statistics. Offline (``online=False``, only
    OUT shadows needed): the one-sided z-score of the target statistic against the OUT Gaussian. With fewer than 64
    shadows each Gaussian uses one variance pooled over all examples (the paper's advice for few shadows).

    >>> import numpy as np
    >>> k, n = 8, 4; ins = np.arange(k)[:, None] % 2 == np.arange(n)[None, :] % 2
    >>> s = lira_scores(np.array([3.0, 0.0, 3.0, 0.0]), np.where(ins, 3.0, 0.0) + 0.1 * np.arange(k)[:, None], ins)
    >>> bool(s[0] > s[1])
    True
    """
    target = np.asarray(target, np.float64)
    shadow = np.asarray(shadow, np.float64)
    shadow_in = np.asarray(shadow_in, bool)
    if shadow.shape != shadow_in.shape or shadow.shape[1:] != target.shape:
        raise DataError(f"lira_scores: shadow {shadow.shape}, shadow_in {shadow_in.shape} and target "
                        f"{target.shape} must be (K, N), (K, N) and (N,)")  # fmt: skip
    pooled = shadow.shape[0] < 64 if global_variance is None else global_variance
    mu_out, sd_out = _gaussian(shadow, ~shadow_in, pooled)
    if not online:
        return (target - mu_out) / sd_out
    mu_in, sd_in = _gaussian(shadow, shadow_in, pooled)
    return _log_normal(target, mu_in, sd_in) - _log_normal(target, mu_out, sd_out)


def _gaussian(values: np.ndarray, mask: np.ndarray, pooled: bool) -> tuple[np.ndarray, np.ndarray]:
    """Per-example mean and standard deviation of ``values`` where ``mask`` (over the K rows); an example with no
    row in ``mask`` gets the mean over all examples' means."""
    count = mask.sum(axis=0)  # (N,)
    total = np.where(mask, values, 0.0).sum(axis=0)
    mean = np.divide(total, count, out=np.full(count.shape, np.nan), where=count > 0)
    mean = np.where(count > 0, mean, np.nanmean(mean) if np.isfinite(mean).any() else 0.0)
    dev = np.where(mask, values - mean[None, :], 0.0) ** 2
    if pooled:
        sd = np.full(count.shape, np.sqrt(dev.sum() / max(1, count.sum() - 1)))
    else:
        sd = np.sqrt(np.divide(dev.sum(axis=0), np.maximum(count - 1, 1)))
    return mean, np.maximum(sd, 1e-6)


def _log_normal(x: np.ndarray, mu: np.ndarray, sd: np.ndarray) -> np.ndarray:
    return -0.5 * ((x - mu) / sd) ** 2 - np.log(sd)


@dataclass(frozen=True)
class AttackROC:
    """One attack's result: ROC AUC with a bootstrap interval, TPR at 0.1 % and 1 % FPR, and the curve."""

    name: str
    auc: Interval
    tpr_at_fpr: dict[str, float]
    n_members: int
    n_non_members: int
    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "auc": self.auc.to_dict(), "tpr_at_fpr": self.tpr_at_fpr,
                "n_members": self.n_members, "n_non_members": self.n_non_members}  # fmt: skip


def attack_roc(name: str, scores: np.ndarray, is_member: np.ndarray, *, n_resamples: int = 1000,
               seed: int = 0) -> AttackROC:  # fmt: skip
    """ROC of ``scores`` (higher = member) against ``is_member``: AUC with a 95 % bootstrap interval (members and
    non-members resampled separately, :func:`imgclf.metrics.bootstrap_ci`) and TPR at each of :data:`LOW_FPRS`
    (the highest TPR reached at a false-positive rate not above it).

    >>> import numpy as np
    >>> r = attack_roc("perfect", np.array([0.0, 1.0, 2.0, 3.0]), np.array([0, 0, 1, 1]), n_resamples=0)
    >>> r.auc.value, r.tpr_at_fpr["0.1%"]
    (1.0, 1.0)
    """
    from sklearn.metrics import roc_curve

    s = np.asarray(scores, np.float64)
    y = np.asarray(is_member).astype(np.int64)
    if s.shape != y.shape or y.min(initial=1) == y.max(initial=0):
        raise DataError(f"attack {name}: need one score per example and both members and non-members "
                        f"(got {s.shape[0]} scores, {int(y.sum())} members)")  # fmt: skip
    fpr, tpr, _ = roc_curve(y, s)
    # The scores' ranks as a two-column "probability" so the vectorised, stratified AUC bootstrap applies as is.
    from scipy.stats import rankdata

    ranks = rankdata(s) / (len(s) + 1)  # tied scores share their mean rank
    probs = np.stack([1 - ranks, ranks], axis=1)  # (N, 2)
    if n_resamples:
        auc = bootstrap_ci(probs, y, {"auc": "macro_auc"}, n_resamples=n_resamples, seed=seed)["auc"]
    else:
        from sklearn.metrics import roc_auc_score

        value = float(roc_auc_score(y, s))
        auc = Interval(value, value, value)
    at = {f"{f * 100:g}%": float(tpr[fpr <= f].max(initial=0.0)) for f in LOW_FPRS}
    return AttackROC(name, auc, at, int(y.sum()), int((1 - y).sum()), fpr, tpr)


def plot_attack_rocs(results: list[AttackROC], path: str | os.PathLike) -> Path:
    """ROC curves of the attacks on log-log axes (the low-FPR corner is what matters), with the chance line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    for r in results:
        ax.plot(np.maximum(r.fpr, 1e-5), np.maximum(r.tpr, 1e-5), label=f"{r.name} (AUC {r.auc.value:.3f})")
    ax.plot([1e-5, 1], [1e-5, 1], "k--", lw=0.8, label="chance")
    ax.set(xscale="log", yscale="log", xlim=(1e-4, 1), ylim=(1e-4, 1), xlabel="false-positive rate",
           ylabel="true-positive rate", title="membership inference")  # fmt: skip
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    out = save_figure(fig, path)
    plt.close(fig)
    return out
