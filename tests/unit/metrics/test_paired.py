"""Paired comparison: exact McNemar against scipy, paired bootstrap, and the plain-English verdict."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

from imgclf.errors import DataError
from imgclf.metrics import compare_predictions, mcnemar_exact, paired_bootstrap_diff


def _pairs(both: int, a_only: int, b_only: int, neither: int) -> tuple[np.ndarray, np.ndarray]:
    a = np.array([1] * both + [1] * a_only + [0] * b_only + [0] * neither, dtype=bool)
    b = np.array([1] * both + [0] * a_only + [1] * b_only + [0] * neither, dtype=bool)
    return a, b


@pytest.mark.parametrize(("a_only", "b_only"), [(12, 3), (3, 12), (7, 7), (0, 5), (40, 25)])
def test_mcnemar_matches_scipy_binomtest(a_only: int, b_only: int) -> None:
    a, b = _pairs(50, a_only, b_only, 10)
    r = mcnemar_exact(a, b)
    assert (r.n, r.both_right, r.a_only, r.b_only, r.both_wrong) == (len(a), 50, a_only, b_only, 10)
    assert r.p_value == pytest.approx(binomtest(a_only, a_only + b_only, 0.5).pvalue, rel=1e-9)


def test_mcnemar_without_discordant_pairs_is_one() -> None:
    a, b = _pairs(20, 0, 0, 5)
    assert mcnemar_exact(a, b).p_value == 1.0


def test_paired_bootstrap_interval_of_the_difference() -> None:
    a, b = _pairs(340, 30, 10, 20)
    iv = paired_bootstrap_diff(a, b, n_resamples=1000)
    assert iv.value == pytest.approx((30 - 10) / 400)
    assert 0 < iv.low < iv.value < iv.high
    # Pairing matters: two highly correlated models get a much narrower interval than independent samples would.
    independent = 2 * 1.96 * np.sqrt((a.mean() * (1 - a.mean()) + b.mean() * (1 - b.mean())) / 400)
    paired = 2 * 1.96 * np.sqrt(((30 + 10) / 400 - 0.05**2) / 400)
    assert iv.width == pytest.approx(paired, rel=0.15)
    assert iv.width < 0.85 * independent


def _model_probs(y: np.ndarray, right: np.ndarray) -> np.ndarray:
    pred = np.where(right, y, (y + 1) % 3)
    return np.where(pred[:, None] == np.arange(3), 0.7, 0.15)


def test_compare_names_the_better_model_or_says_no_difference() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 600)
    good, bad = rng.random(600) < 0.9, rng.random(600) < 0.75
    cmp = compare_predictions(_model_probs(y, good), _model_probs(y, bad), y, names=("resnet", "vit"))
    assert cmp.better == "resnet" and cmp.verdict.startswith("resnet is better (p=")
    assert cmp.difference.low > 0 and cmp.accuracy_a > cmp.accuracy_b
    flipped = compare_predictions(_model_probs(y, bad), _model_probs(y, good), y)
    assert flipped.better == "B" and flipped.verdict.startswith("B is better")
    swapped = good.copy()  # as many new mistakes as fixed ones: same accuracy, different errors
    swapped[np.flatnonzero(good)[:15]] = False
    swapped[np.flatnonzero(~good)[:15]] = True
    same = compare_predictions(_model_probs(y, good), _model_probs(y, swapped), y)
    assert same.better is None and same.verdict.startswith("no significant difference (p=")
    assert same.difference.contains(0.0)
    assert cmp.to_dict()["mcnemar"]["a_only"] == cmp.mcnemar.a_only


def test_unpaired_inputs_are_rejected() -> None:
    with pytest.raises(DataError, match="same samples"):
        mcnemar_exact([1, 0], [1, 0, 1])
    with pytest.raises(DataError, match="booleans"):
        mcnemar_exact([1, 2], [1, 0])
