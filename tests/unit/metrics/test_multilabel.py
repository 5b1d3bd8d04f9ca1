"""Multi-label metrics equal scikit-learn's, bootstrap kernels agree on explicit resamples, thresholds and
per-class temperatures do what they promise."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from imgclf.errors import DataError
from imgclf.metrics import (
    LOWER_IS_BETTER,
    MULTILABEL_HEADLINE,
    apply_per_class_temperature,
    fit_per_class_temperature,
    multilabel_bootstrap_ci,
    multilabel_metrics,
    tune_thresholds,
)
from imgclf.metrics._bootstrap import resample_indices
from imgclf.metrics._multilabel_resampled import multilabel_resampled

CLASSES = ["a", "b", "c", "d", "e", "f"]


def multilabel_predictions(n: int, c: int, seed: int, quantize: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Sigmoid probabilities that track 0/1 targets with noise; class 4 is never present, class 5 rare."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < np.linspace(0.5, 0.1, c)).astype(np.int64)
    y[:, 4] = 0
    z = rng.normal(size=(n, c)) + 2.0 * (y - 0.5) - 0.5
    p = 1 / (1 + np.exp(-z))
    if quantize:  # coarse probabilities: ties that AP, LRAP and the thresholds must handle like scikit-learn
        p = np.round(p, 1)
    return p, y


def _sklearn(p: np.ndarray, y: np.ndarray, thr: np.ndarray) -> dict[str, object]:
    pred = (p >= thr).astype(np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prec, rec, f1, support = skm.precision_recall_fscore_support(y, pred, average=None, zero_division=0)
        has = y.sum(0) > 0
        aps = np.array([skm.average_precision_score(y[:, k], p[:, k]) if has[k] else np.nan for k in range(y.shape[1])])
        return {
            "ap": aps, "precision": prec, "recall": rec, "f1": f1, "support": support,
            "macro_map": float(np.nanmean(aps)),
            "micro_map": skm.average_precision_score(y, p, average="micro"),
            "exact_match": skm.accuracy_score(y, pred),
            "hamming_loss": skm.hamming_loss(y, pred),
            "lrap": skm.label_ranking_average_precision_score(y, p),
            # Classes neither present nor predicted are left out of the macro F1 (zero_division=nan excludes them).
            "macro_f1": skm.f1_score(y, pred, average="macro", zero_division=np.nan),
            "micro_f1": skm.f1_score(y, pred, average="micro"),
        }  # fmt: skip


@pytest.mark.parametrize("quantize", [False, True])
def test_every_figure_equals_scikit_learn(quantize: bool) -> None:
    p, y = multilabel_predictions(300, 6, seed=0, quantize=quantize)
    thr = np.array([0.5, 0.3, 0.7, 0.5, 0.5, 0.99])  # class f is then hardly ever predicted
    r = multilabel_metrics(p, y, CLASSES, thresholds=thr)
    ref = _sklearn(p, y, thr)
    got = {k: np.array([getattr(c, k) for c in r.per_class], dtype=float)
           for k in ("average_precision", "precision", "recall", "f1", "support")}  # fmt: skip
    np.testing.assert_allclose(got["average_precision"], ref["ap"], atol=1e-6)  # NaN where no positives
    for k in ("precision", "recall", "f1", "support"):
        np.testing.assert_allclose(got[k], ref[k], atol=1e-6, err_msg=k)
    for k in ("macro_map", "micro_map", "exact_match", "hamming_loss", "lrap", "macro_f1", "micro_f1"):
        assert getattr(r, k) == pytest.approx(ref[k], abs=1e-6), k
    assert r.map_undefined == ("e",) and r.per_class[4].support == 0  # excluded from macro mAP, and named
    assert r.thresholds.tolist() == thr.tolist() and r.per_class[1].threshold == 0.3
    assert r.to_dict()["per_class"][4]["average_precision"] is None
    assert set(r.headline()) == set(MULTILABEL_HEADLINE) and r.worst_classes(1)[0].support > 0


def test_lrap_edge_rows_and_default_thresholds_match_scikit_learn() -> None:
    y = np.array([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 1]])  # no label, every label, then ordinary rows
    p = np.array([[0.2, 0.5, 0.5], [0.1, 0.9, 0.4], [0.5, 0.5, 0.1], [0.7, 0.6, 0.2]])
    r = multilabel_metrics(p, y)  # thresholds default to 0.5
    assert r.lrap == pytest.approx(skm.label_ranking_average_precision_score(y, p), abs=1e-12)
    assert r.exact_match == pytest.approx(skm.accuracy_score(y, (p >= 0.5).astype(int)))
    assert r.class_names == ("0", "1", "2")


def test_bad_inputs_are_named() -> None:
    with pytest.raises(DataError, match="look like logits: apply a sigmoid"):
        multilabel_metrics([[2.0, -1.0]], [[1, 0]])
    with pytest.raises(DataError, match="multi-hot targets, not class indices"):
        multilabel_metrics([[0.2, 0.7]], [1])
    with pytest.raises(DataError, match="only 0 and 1"):
        multilabel_metrics([[0.2, 0.7]], [[2, 0]])
    with pytest.raises(DataError, match="3 class names"):
        multilabel_metrics([[0.2, 0.7]], [[1, 0]], ["a", "b", "c"])


# -- bootstrap -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("quantize", [False, True])
def test_bootstrap_kernels_match_scikit_learn_on_explicit_resamples(quantize: bool) -> None:
    p, y = multilabel_predictions(90, 6, seed=3, quantize=quantize)
    thr = np.array([0.5, 0.4, 0.6, 0.5, 0.5, 0.5])
    idx = next(resample_indices(len(y), 3, np.random.default_rng(0), chunk=3))  # (3, N)
    reference = [_sklearn(p[row], y[row], thr) for row in idx]
    for name in MULTILABEL_HEADLINE:
        got = multilabel_resampled(p, y, idx, name, thresholds=thr)
        np.testing.assert_allclose(got, [ref[name] for ref in reference], atol=1e-6, err_msg=name)
    full = multilabel_resampled(p, y, np.arange(len(y))[None], "macro_map", thresholds=thr)
    assert full[0] == pytest.approx(multilabel_metrics(p, y, thresholds=thr).macro_map, abs=1e-12)


def test_bootstrap_intervals_are_seeded_and_bracket_the_point() -> None:
    p, y = multilabel_predictions(200, 6, seed=1)
    ci = multilabel_bootstrap_ci(p, y, n_resamples=200, seed=0)
    report = multilabel_metrics(p, y)
    assert set(ci) == set(MULTILABEL_HEADLINE) and "hamming_loss" in LOWER_IS_BETTER
    for name, interval in ci.items():
        assert interval.value == pytest.approx(getattr(report, name), abs=1e-9), name
        assert interval.low <= interval.value <= interval.high and interval.width > 0, name
    assert multilabel_bootstrap_ci(p, y, ["lrap"], n_resamples=200, seed=0)["lrap"] == ci["lrap"]
    assert multilabel_bootstrap_ci(p, y, ["lrap"], n_resamples=200, seed=1)["lrap"] != ci["lrap"]
    big_p, big_y = multilabel_predictions(2000, 6, seed=1)
    assert multilabel_bootstrap_ci(big_p, big_y, ["macro_map"], n_resamples=200)["macro_map"].width < \
        ci["macro_map"].width  # fmt: skip
    assert multilabel_bootstrap_ci(p, y, n_resamples=0) == {}
    with pytest.raises(DataError, match="unknown multi-label bootstrap metric 'accuracy'"):
        multilabel_bootstrap_ci(p, y, ["accuracy"])


# -- thresholds ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("quantize", [False, True])
def test_tuned_thresholds_reach_the_best_f1_of_any_threshold(quantize: bool) -> None:
    p, y = multilabel_predictions(200, 6, seed=2, quantize=quantize)
    p[:, 0] *= 0.4  # a class whose scores sit far below 0.5: the default threshold misses most positives
    thr = tune_thresholds(p, y)
    assert thr[4] == 0.5  # no positives: the neutral default
    def f1(k: int, t: np.ndarray) -> np.ndarray:  # F1 of class k at each threshold in t, by brute force
        pred = p[:, k][None, :] >= t[:, None]  # (T, N)
        tp = (pred & (y[:, k] == 1)).sum(axis=1)
        return 2 * tp / (pred.sum(axis=1) + y[:, k].sum())

    for k in (0, 1, 2, 3, 5):
        best = f1(k, np.unique(p[:, k])).max()
        assert f1(k, thr[k : k + 1])[0] == pytest.approx(best, abs=1e-12), k
        assert skm.f1_score(y[:, k], p[:, k] >= thr[k]) == pytest.approx(best, abs=1e-12), k
        assert not np.isin(thr[k], p[:, k]) or thr[k] == p[:, k].min()  # a margin, not a validation score
    tuned, default = multilabel_metrics(p, y, thresholds=thr), multilabel_metrics(p, y)
    assert tuned.per_class[0].f1 > default.per_class[0].f1 + 0.2


# -- per-class temperature -----------------------------------------------------------------------------------------
def test_per_class_temperature_recovers_a_known_miscalibration() -> None:
    rng = np.random.default_rng(0)
    true_z = rng.normal(0, 2, size=(4000, 4))
    y = (rng.random(true_z.shape) < 1 / (1 + np.exp(-true_z))).astype(np.int64)
    y[:, 3] = 0  # no positives: nothing to fit
    scale = np.array([2.0, 0.5, 1.0, 3.0])  # overconfident, underconfident, calibrated
    t = fit_per_class_temperature(true_z * scale, y)
    assert t[:3] == pytest.approx(scale[:3], rel=0.1) and t[3] == 1.0

    def nll(temps: np.ndarray) -> np.ndarray:
        q = np.clip(apply_per_class_temperature(true_z * scale, temps), 1e-12, 1 - 1e-12)
        return -(y * np.log(q) + (1 - y) * np.log(1 - q)).mean(axis=0)

    assert np.all(nll(t)[:3] < nll(np.ones(4))[:3])
    torch_out = apply_per_class_temperature(torch.tensor(true_z[:5] * scale), t)
    np.testing.assert_allclose(torch_out.numpy(), apply_per_class_temperature(true_z[:5] * scale, t), atol=1e-5)
    with pytest.raises(DataError, match="same shape"):
        fit_per_class_temperature(true_z, y[:, :2])
    with pytest.raises(DataError, match="refit them with fit_per_class_temperature"):
        apply_per_class_temperature(true_z, [1.0, 0.0, 1.0, 1.0])
