"""Two-sample tests used for drift: KS on confidences, chi-square on class counts, MMD on features.

Each returns ``(statistic, p_value)``. scipy supplies the KS and chi-square null distributions; the MMD test is a
permutation test written here.
"""

from __future__ import annotations

import numpy as np

from imgclf.errors import DataError

MIN_EXPECTED = 5.0  # Cochran's rule: pool categories whose expected window count is below this


def ks_test(reference: np.ndarray, window: np.ndarray) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov test: ``D = sup |F_ref(x) - F_win(x)|`` and its two-sided p-value.

    >>> ks_test(np.arange(100.0), np.arange(100.0))
    (0.0, 1.0)
    """
    from scipy import stats

    a, b = np.asarray(reference, np.float64).ravel(), np.asarray(window, np.float64).ravel()
    if a.size == 0 or b.size == 0:
        raise DataError("ks_test needs at least one value in each sample.")
    res = stats.ks_2samp(a, b)
    return float(res.statistic), float(min(1.0, res.pvalue))


def _pool_small(ref: np.ndarray, win: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Merge the rarest categories until every pooled category expects at least MIN_EXPECTED window counts."""
    keep = (ref + win) > 0
    ref, win = ref[keep], win[keep]
    total = ref + win
    expected = win.sum() * total / total.sum()  # window counts expected under homogeneity
    order = np.argsort(expected)
    big = np.ones(len(ref), bool)
    pooled_ref = pooled_win = pooled_exp = 0.0
    for j in order:  # pool every rare category, then more if the pool itself still expects too few
        if expected[j] >= MIN_EXPECTED and (big.all() or pooled_exp >= MIN_EXPECTED):
            break
        big[j] = False
        pooled_ref, pooled_win, pooled_exp = pooled_ref + ref[j], pooled_win + win[j], pooled_exp + expected[j]
    out_ref, out_win = ref[big], win[big]
    if not big.all():
        out_ref, out_win = np.append(out_ref, pooled_ref), np.append(out_win, pooled_win)
    return out_ref, out_win


def chi2_test(reference_counts: np.ndarray, window_counts: np.ndarray) -> tuple[float, float]:
    """Pearson chi-square test of homogeneity on a 2 x K table (reference counts vs window counts).

    Categories absent from both rows are dropped and rare ones pooled (expected window count >= 5), so small
    windows keep the chi-square approximation honest. Fewer than two categories left: ``(0.0, 1.0)``.

    >>> chi2_test(np.array([50, 50]), np.array([50, 50]))
    (0.0, 1.0)
    """
    from scipy import stats

    ref = np.asarray(reference_counts, np.float64).ravel()
    win = np.asarray(window_counts, np.float64).ravel()
    if ref.shape != win.shape:
        raise DataError(f"class counts differ in length: reference {ref.shape[0]}, window {win.shape[0]}.")
    if ref.sum() <= 0 or win.sum() <= 0:
        raise DataError("chi2_test needs at least one count in each row.")
    ref, win = _pool_small(ref, win)
    if len(ref) < 2:
        return 0.0, 1.0
    table = np.stack([ref, win])  # (2, K)
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()  # (2, K)
    statistic = float(((table - expected) ** 2 / expected).sum())
    return statistic, float(stats.chi2.sf(statistic, df=len(ref) - 1))


def _sq_dists(z: np.ndarray) -> np.ndarray:
    sq = (z * z).sum(axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)  # (N, N)


def mmd_test(reference: np.ndarray, window: np.ndarray, *, permutations: int = 200,
             seed: int = 0) -> tuple[float, float]:  # fmt: skip
    """Maximum mean discrepancy with a Gaussian kernel (median-distance bandwidth), permutation p-value.

    The statistic is the biased estimate ``MMD^2 = mean k(x, x') + mean k(y, y') - 2 mean k(x, y)``; its null
    distribution comes from ``permutations`` random relabellings of the pooled sample, and
    ``p = (1 + #{perm >= observed}) / (1 + permutations)``, which is valid (never anti-conservative).

    >>> x = np.random.default_rng(0).normal(size=(50, 2))
    >>> mmd_test(x, x + 5.0)[1] < 0.01
    True
    """
    x, y = np.asarray(reference, np.float64), np.asarray(window, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise DataError(f"mmd_test needs two 2-D samples with the same width, got {x.shape} and {y.shape}.")
    if len(x) < 2 or len(y) < 2:
        raise DataError("mmd_test needs at least two rows in each sample.")
    z = np.concatenate([x, y])  # (N, D)
    d2 = _sq_dists(z)
    off = d2[np.triu_indices(len(z), k=1)]
    bandwidth = float(np.median(off[off > 0])) if np.any(off > 0) else 1.0
    kernel = np.exp(-d2 / bandwidth)  # (N, N)
    n, m = len(x), len(y)
    rng = np.random.default_rng(seed)
    # Column 0 is the observed split; the others are permutations. A column w holds +1/n on one sample and
    # -1/m on the other, so w^T K w is the biased MMD^2 of that split.
    labels = np.concatenate([np.full(n, 1.0 / n), np.full(m, -1.0 / m)])
    weights = np.stack([labels] + [rng.permutation(labels) for _ in range(permutations)], axis=1)  # (N, P+1)
    stats_ = np.einsum("ip,ip->p", weights, kernel @ weights)  # (P+1,)
    observed = float(stats_[0])
    p = (1.0 + float(np.sum(stats_[1:] >= observed - 1e-12))) / (1.0 + permutations)
    return observed, p
