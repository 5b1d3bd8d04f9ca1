"""Calibration figures on synthetic probabilities with known calibration, and temperature scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import log_loss

from imgclf.errors import DataError
from imgclf.metrics import apply_temperature, calibration_metrics, fit_temperature, softmax


def _calibrated(n: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities from a Dirichlet and labels drawn from them: calibrated by construction."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.full(c, 0.5), size=n)
    y = (p.cumsum(1) > rng.random((n, 1))).argmax(1)
    return p, y


def test_perfectly_calibrated_probabilities_give_ece_near_zero() -> None:
    p, y = _calibrated(20000, 5, seed=0)
    cal = calibration_metrics(p, y)
    assert cal.ece < 0.02 and cal.ece_equal_mass < 0.02
    assert abs(cal.accuracy - cal.mean_confidence) < 0.02


def test_overconfident_probabilities_give_large_ece() -> None:
    p, y = _calibrated(20000, 5, seed=0)
    sharp = p**4 / (p**4).sum(1, keepdims=True)  # same argmax, confidences pushed towards 1
    cal, sharp_cal = calibration_metrics(p, y), calibration_metrics(sharp, y)
    assert sharp_cal.ece > 0.1 and sharp_cal.ece > 5 * cal.ece
    assert sharp_cal.mean_confidence > sharp_cal.accuracy + 0.1
    assert sharp_cal.mce >= sharp_cal.ece
    assert sharp_cal.nll > cal.nll and sharp_cal.accuracy == cal.accuracy


def test_figures_and_bins_follow_their_definitions() -> None:
    p, y = _calibrated(3000, 4, seed=1)
    cal = calibration_metrics(p, y, n_bins=10)
    conf, correct = p.max(1), p.argmax(1) == y
    assert cal.bins.count.sum() == 3000 and cal.bins_equal_mass.count.sum() == 3000
    assert np.ptp(cal.bins_equal_mass.count) <= 1  # equal mass
    assert np.allclose(cal.bins.lower, np.arange(10) / 10) and cal.bins.upper[-1] == 1.0
    # Direct ECE: weighted gap over equal-width bins (k/10, (k+1)/10].
    ece = 0.0
    for lo in np.arange(10) / 10:
        m = (conf > lo) & (conf <= lo + 0.1) if lo > 0 else conf <= 0.1
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    assert cal.ece == pytest.approx(ece, abs=1e-9)
    assert cal.mce == pytest.approx(np.nanmax(cal.bins.gap))
    assert cal.nll == pytest.approx(log_loss(y, p), abs=1e-12)
    assert cal.brier == pytest.approx(np.mean(np.sum((p - np.eye(4)[y]) ** 2, 1)), abs=1e-12)
    d = cal.to_dict()
    assert len(d["bins"]["count"]) == 10 and d["n_bins"] == 10


@pytest.mark.parametrize("t_true", [0.6, 2.5])
def test_known_temperature_is_recovered(t_true: float) -> None:
    rng = np.random.default_rng(2)
    logits = rng.normal(scale=3.0, size=(4000, 10))
    y = (softmax(logits / t_true).cumsum(1) > rng.random((4000, 1))).argmax(1)
    t = fit_temperature(logits, y)
    assert t == pytest.approx(t_true, rel=0.1)


def test_temperature_lowers_nll_keeps_accuracy_and_takes_tensors() -> None:
    rng = np.random.default_rng(3)
    logits = rng.normal(scale=2.0, size=(2000, 5))
    y = (softmax(logits).cumsum(1) > rng.random((2000, 1))).argmax(1)
    over = torch.from_numpy(logits * 3).float()  # an overconfident model's logits
    t = fit_temperature(over, torch.from_numpy(y))
    raw, cal = apply_temperature(over, 1.0), apply_temperature(over, t)
    assert isinstance(cal, torch.Tensor) and torch.allclose(cal.sum(1), torch.ones(2000))
    assert torch.equal(raw.argmax(1), cal.argmax(1))
    assert calibration_metrics(cal, y).nll < calibration_metrics(raw, y).nll
    assert calibration_metrics(cal, y).ece < calibration_metrics(raw, y).ece / 2


def test_separable_data_stays_within_bounds() -> None:
    logits = np.array([[5.0, 0.0], [0.0, 5.0]] * 50)
    y = np.array([0, 1] * 50)
    t = fit_temperature(logits, y, bounds=(0.05, 20.0))
    assert t == pytest.approx(0.05, rel=1e-6)  # NLL keeps falling as T -> 0; the bound stops it


def test_bad_temperature_and_inputs_raise() -> None:
    with pytest.raises(DataError, match="temperature"):
        apply_temperature(np.zeros((2, 3)), 0.0)
    with pytest.raises(DataError, match="NaN"):
        fit_temperature(np.array([[np.nan, 0.0]]), [0])
    with pytest.raises(DataError, match="n_bins"):
        calibration_metrics([[0.5, 0.5]], [0], n_bins=0)
