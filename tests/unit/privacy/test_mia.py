"""Membership inference against its definitions: planted members are found, chance stays at chance."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from imgclf import privacy as P


def _planted(k: int = 16, n: int = 2000, seed: int = 0):
    """Examples of widely varying difficulty; a model that trained on one gives it +2 in the LiRA statistic.
    The target fully memorised the first half (members); shadow k trained on a random half of everything."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 3, n)  # (N,) per-example baseline: easy and hard examples
    member = np.arange(n) < n // 2
    target = difficulty + np.where(member, 2.0, 0.0) + rng.normal(0, 0.3, n)
    shadow_in = rng.random((k, n)) < 0.5
    shadow = difficulty[None, :] + np.where(shadow_in, 2.0, 0.0) + rng.normal(0, 0.3, (k, n))
    return target, shadow, shadow_in, member


def test_lira_finds_a_planted_memorised_member_set_that_a_global_threshold_cannot() -> None:
    target, shadow, shadow_in, member = _planted()
    lira = P.attack_roc("lira", P.lira_scores(target, shadow, shadow_in), member, n_resamples=200)
    threshold = P.attack_roc("threshold", target, member, n_resamples=200)  # a global cut on the same statistic
    assert lira.auc.value > 0.99 and lira.tpr_at_fpr["1%"] > 0.9
    assert threshold.auc.value < 0.75 and threshold.tpr_at_fpr["1%"] < 0.2
    offline = P.attack_roc("offline", P.lira_scores(target, shadow, shadow_in, online=False), member, n_resamples=0)
    assert offline.auc.value > 0.99


def test_lira_without_a_membership_signal_is_at_chance() -> None:
    target, shadow, shadow_in, member = _planted()
    rng = np.random.default_rng(1)
    shuffled = rng.permutation(member)  # "members" that the target did not treat differently
    r = P.attack_roc("lira", P.lira_scores(target, shadow, shadow_in), shuffled, n_resamples=300)
    assert r.auc.contains(0.5) and abs(r.auc.value - 0.5) < 0.03


def test_auc_interval_and_low_fpr_rates_match_their_definitions() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    s = rng.normal(0, 1, 1000) + 0.8 * y
    r = P.attack_roc("x", s, y, n_resamples=500)
    assert r.auc.value == pytest.approx(roc_auc_score(y, s), abs=1e-9)
    assert r.auc.low < r.auc.value < r.auc.high and r.auc.width < 0.1
    cut = np.sort(s[~y])[-5]  # 5 of 500 non-members at or above: FPR 1%
    assert r.tpr_at_fpr["1%"] == pytest.approx((s[y] > np.sort(s[~y])[-6]).mean(), abs=0.01)
    assert r.tpr_at_fpr["1%"] >= (s[y] > cut).mean()


def test_loss_and_lira_statistics_follow_their_formulas() -> None:
    logits = np.array([[3.0, 1.0, 0.0], [0.0, 0.0, 5.0]])
    labels = np.array([0, 1])
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    picked = p[[0, 1], labels]
    assert np.allclose(P.cross_entropy(logits, labels), -np.log(picked))
    assert np.allclose(P.true_class_logit(logits, labels), np.log(picked) - np.log1p(-picked))
    assert np.all(P.loss_attack(np.array([0.1, 2.0])) == np.array([-0.1, -2.0]))


def test_roc_plot_is_written(tmp_path) -> None:
    target, shadow, shadow_in, member = _planted(k=4, n=200)
    r = P.attack_roc("lira", P.lira_scores(target, shadow, shadow_in), member, n_resamples=0)
    path = P.plot_attack_rocs([r], tmp_path / "roc.png")
    assert path.stat().st_size > 1000
