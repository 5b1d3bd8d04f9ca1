"""Bootstrap intervals: vectorised kernels agree with scikit-learn, intervals cover the truth ~95% of the time."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn import metrics as skm

from imgclf.errors import DataError
from imgclf.metrics import HEADLINE_METRICS, Interval, bootstrap_ci, calibration_metrics, classification_metrics
from imgclf.metrics import _resampled as R
from imgclf.metrics._bootstrap import resample_indices

from .conftest import random_predictions


def _sklearn_figures(p: np.ndarray, y: np.ndarray) -> dict[str, float]:
    pred = p.argmax(1)
    aucs = [skm.roc_auc_score(y == k, p[:, k]) for k in range(p.shape[1]) if 0 < (y == k).sum() < len(y)]
    return {
        "accuracy": skm.accuracy_score(y, pred),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "macro_f1": skm.f1_score(y, pred, average="macro", zero_division=0),
        "macro_auc": float(np.mean(aucs)),
        "log_loss": skm.log_loss(y, p, labels=range(p.shape[1])),
        "brier": float(np.mean(np.sum((p - np.eye(p.shape[1])[y]) ** 2, axis=1))),
        "ece": calibration_metrics(p, y).ece,
    }


@pytest.mark.parametrize("quantize", [False, True])
def test_every_kernel_matches_scikit_learn_on_explicit_resamples(quantize: bool) -> None:
    p, y = random_predictions(120, 4, seed=4)
    if quantize:  # coarse probabilities create ties, which the AUC kernel must handle like scikit-learn
        p = np.round(p, 1) + 1e-9
        p /= p.sum(1, keepdims=True)
    d = R.prepare(p, y)
    idx = next(resample_indices(len(y), 5, np.random.default_rng(0), chunk=5))  # (5, N)
    for name, kernel in R.KERNELS.items():
        got = kernel(d, idx)
        want = [_sklearn_figures(p[row], y[row])[name] for row in idx]
        assert got == pytest.approx(want, abs=1e-10), name


def test_point_values_equal_the_full_report(preds: tuple[np.ndarray, np.ndarray]) -> None:
    p, y = preds
    ci = bootstrap_ci(p, y, n_resamples=50)
    report = classification_metrics(p, y)
    assert list(ci) == list(HEADLINE_METRICS)
    for name, value in report.headline().items():
        assert ci[name].value == pytest.approx(value, abs=1e-12), name
    assert ci["ece"].value == pytest.approx(calibration_metrics(p, y).ece, abs=1e-12)
    for iv in ci.values():
        assert iv.low <= iv.value <= iv.high


def test_nominal_95_interval_covers_true_accuracy_90_to_99_percent_of_draws() -> None:
    # Known distribution: two balanced classes the model gets right with probability 0.9 and 0.7 (true accuracy
    # 0.8). Draw 200 test sets of 200 images, bootstrap each with 200 resamples, count intervals covering 0.8.
    rng = np.random.default_rng(123)
    covered = 0
    for draw in range(200):
        y = rng.integers(0, 2, 200)
        right = rng.random(200) < np.where(y == 0, 0.9, 0.7)
        pred = np.where(right, y, 1 - y)
        p = np.where(pred[:, None] == np.arange(2), 0.8, 0.2)
        iv = bootstrap_ci(p, y, ["accuracy"], n_resamples=200, seed=draw)["accuracy"]
        covered += iv.contains(0.8)
    assert 0.90 <= covered / 200 <= 0.99


def test_same_seed_same_interval_and_stratified_keeps_class_counts(preds: tuple[np.ndarray, np.ndarray]) -> None:
    p, y = preds
    a = bootstrap_ci(p, y, ["accuracy", "macro_auc"], n_resamples=100, seed=7)
    b = bootstrap_ci(p, y, ["accuracy", "macro_auc"], n_resamples=100, seed=7)
    c = bootstrap_ci(p, y, ["accuracy", "macro_auc"], n_resamples=100, seed=8)
    assert a == b and a != c
    for idx in resample_indices(y, 30, np.random.default_rng(0), chunk=7):
        assert all(np.array_equal(np.bincount(y[row], minlength=6), np.bincount(y, minlength=6)) for row in idx)


def test_chunking_does_not_change_the_result(preds: tuple[np.ndarray, np.ndarray], monkeypatch) -> None:
    p, y = preds
    whole = bootstrap_ci(p, y, ["macro_f1"], n_resamples=64, seed=1)
    monkeypatch.setattr(R, "_CHUNK_CELLS", 400 * 3)  # three resamples per chunk
    assert bootstrap_ci(p, y, ["macro_f1"], n_resamples=64, seed=1) == whole


def test_custom_metric_function_and_interval_text(preds: tuple[np.ndarray, np.ndarray]) -> None:
    p, y = preds
    ci = bootstrap_ci(
        p, y, {"kappa": lambda pp, yy: skm.cohen_kappa_score(yy, pp.argmax(1)), "acc": "accuracy"}, n_resamples=40
    )
    assert ci["kappa"].value == pytest.approx(skm.cohen_kappa_score(y, p.argmax(1)))
    assert ci["kappa"].low < ci["kappa"].value < ci["kappa"].high
    assert str(Interval(0.9123, 0.9011, 0.9234)) == "0.912 [0.901, 0.923]"
    assert ci["acc"].to_dict()["confidence"] == 0.95


def test_wider_interval_for_higher_confidence_and_fewer_samples() -> None:
    p, y = random_predictions(2000, 3, seed=5)
    big = bootstrap_ci(p, y, ["accuracy"], n_resamples=300)["accuracy"]
    small = bootstrap_ci(p[:200], y[:200], ["accuracy"], n_resamples=300)["accuracy"]
    loose = bootstrap_ci(p, y, ["accuracy"], n_resamples=300, confidence=0.99)["accuracy"]
    assert small.width > 2 * big.width
    assert loose.width > big.width


def test_unknown_metric_names_the_choices(preds: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(DataError, match="macro_auc"):
        bootstrap_ci(*preds, ["acuracy"])
    with pytest.raises(DataError, match="confidence"):
        bootstrap_ci(*preds, ["accuracy"], confidence=95)
    assert bootstrap_ci(*preds, n_resamples=0) == {}  # no intervals wanted: no work done
