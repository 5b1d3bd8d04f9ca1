"""The two-sample tests against their definitions, and their behaviour under the null and under shift."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from imgclf.errors import DataError
from imgclf.monitor import chi2_test, ks_test, mmd_test


def _ks_by_definition(a: np.ndarray, b: np.ndarray) -> float:
    grid = np.concatenate([a, b])
    fa = (a[None, :] <= grid[:, None]).mean(axis=1)
    fb = (b[None, :] <= grid[:, None]).mean(axis=1)
    return float(np.abs(fa - fb).max())


def test_ks_statistic_is_the_largest_cdf_gap() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=80), rng.normal(0.3, 1.2, size=50)
    d, p = ks_test(a, b)
    assert d == pytest.approx(_ks_by_definition(a, b))
    assert 0 < p < 1


def test_ks_detects_a_shift_and_not_a_resample() -> None:
    rng = np.random.default_rng(1)
    ref = rng.beta(8, 2, size=500)
    assert ks_test(ref, rng.beta(8, 2, size=200))[1] > 0.01
    assert ks_test(ref, rng.beta(4, 3, size=200))[1] < 1e-6


def test_chi2_matches_the_textbook_contingency_test_without_rare_classes() -> None:
    ref, win = np.array([120, 80, 100, 60]), np.array([30, 35, 20, 15])
    stat, p = chi2_test(ref, win)
    expected = stats.chi2_contingency(np.stack([ref, win]), correction=False)
    assert stat == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)


def test_chi2_pools_rare_classes_so_small_windows_stay_honest() -> None:
    # Classes 2..9 are rare: each expects < 5 window counts, so they are merged into one category.
    ref = np.array([400, 400, 10, 10, 10, 10, 10, 10, 10, 10])
    win = np.array([45, 40, 2, 1, 0, 3, 1, 2, 0, 1])
    stat, p = chi2_test(ref, win)
    pooled_ref, pooled_win = np.array([400, 400, 80]), np.array([45, 40, 10])
    expected = stats.chi2_contingency(np.stack([pooled_ref, pooled_win]), correction=False)
    assert stat == pytest.approx(expected.statistic)
    assert p == pytest.approx(expected.pvalue)


def test_chi2_false_alarm_rate_on_small_windows_stays_at_the_level() -> None:
    rng = np.random.default_rng(2)
    freq = np.array([0.5, 0.3, 0.1, 0.05, 0.03, 0.02])
    ref = np.bincount(rng.choice(6, size=3000, p=freq), minlength=6)
    ps = [chi2_test(ref, np.bincount(rng.choice(6, size=40, p=freq), minlength=6))[1] for _ in range(400)]
    assert np.mean(np.array(ps) < 0.05) <= 0.07  # nominal 0.05; 400 draws put 0.07 ~ 2 standard errors above


def test_chi2_detects_a_changed_class_mix_and_handles_degenerate_tables() -> None:
    ref = np.array([300, 300, 300])
    assert chi2_test(ref, np.array([80, 10, 10]))[1] < 1e-10
    assert chi2_test(np.array([50, 0]), np.array([20, 0])) == (0.0, 1.0)  # one category left: nothing to test
    with pytest.raises(DataError, match="differ in length"):
        chi2_test(ref, np.array([1, 2]))


def test_mmd_statistic_is_the_biased_estimate_with_the_median_bandwidth() -> None:
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(15, 3)), rng.normal(0.5, 1.0, size=(10, 3))
    z = np.concatenate([x, y])
    d2 = ((z[:, None, :] - z[None, :, :]) ** 2).sum(-1)
    bw = np.median(d2[np.triu_indices(25, 1)])
    k = np.exp(-d2 / bw)
    by_definition = k[:15, :15].mean() + k[15:, 15:].mean() - 2 * k[:15, 15:].mean()
    stat, p = mmd_test(x, y, permutations=50)
    assert stat == pytest.approx(by_definition)
    assert 1 / 51 <= p <= 1


def test_mmd_p_values_are_valid_under_the_null_and_small_under_shift() -> None:
    rng = np.random.default_rng(4)
    null_ps = [mmd_test(rng.normal(size=(60, 4)), rng.normal(size=(40, 4)), permutations=99, seed=i)[1]
               for i in range(100)]  # fmt: skip
    assert np.mean(np.array(null_ps) < 0.05) <= 0.10  # nominal 0.05; 100 draws
    assert np.mean(null_ps) > 0.35  # roughly uniform, not piled up near zero
    x = rng.normal(size=(200, 4))
    assert mmd_test(x, rng.normal(size=(100, 4)) * 1.6)[1] < 0.01  # a change of scale only
    assert mmd_test(x, rng.normal(size=(100, 4)) + np.array([0.6, 0, 0, 0]))[1] < 0.01


def test_mmd_is_deterministic_for_a_seed_and_checks_shapes() -> None:
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(20, 2))
    assert mmd_test(x, y, seed=7) == mmd_test(x, y, seed=7)
    with pytest.raises(DataError, match="same width"):
        mmd_test(x, rng.normal(size=(20, 3)))
