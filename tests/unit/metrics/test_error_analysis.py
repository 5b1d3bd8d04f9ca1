"""Error analysis: confused pairs, top losses, risk-coverage thresholds, confidence histograms."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgclf.errors import DataError
from imgclf.metrics import (
    classification_metrics,
    confidence_histogram,
    most_confused,
    risk_coverage,
    top_losses,
)

from .conftest import random_predictions


def test_most_confused_pairs_are_ranked_by_count() -> None:
    conf = np.array([[50, 7, 1], [2, 40, 9], [0, 3, 30]])
    pairs = most_confused(conf, ["cat", "dog", "fox"], k=3)
    assert [(p.true, p.predicted, p.count) for p in pairs] == [("dog", "fox", 9), ("cat", "dog", 7), ("fox", "dog", 3)]
    assert pairs[0].rate == pytest.approx(9 / 51)
    assert len(most_confused(conf, ["cat", "dog", "fox"], k=100)) == 5  # only non-zero off-diagonal cells
    with pytest.raises(DataError, match="square"):
        most_confused(np.zeros((2, 3)), ["a", "b"])


def test_top_losses_are_the_most_wrong_samples(preds: tuple[np.ndarray, np.ndarray]) -> None:
    p, y = preds
    tl = top_losses(p, y, k=10)
    nll = -np.log(p[np.arange(len(y)), y])
    assert set(tl.indices.tolist()) == set(np.argsort(-nll)[:10].tolist())
    assert np.all(np.diff(tl.losses) <= 0) and tl.losses == pytest.approx(nll[tl.indices])
    assert np.array_equal(tl.labels, y[tl.indices]) and np.array_equal(tl.predicted, p[tl.indices].argmax(1))
    assert len(tl) == 10 and json.dumps(tl.to_dict())


@pytest.mark.parametrize("target", [0.6, 0.8, 0.95])
def test_risk_coverage_threshold_reaches_the_target_on_the_data(target: float) -> None:
    p, y = random_predictions(2000, 5, seed=6)
    rc = risk_coverage(p, y, target_accuracy=target)
    conf, correct = p.max(1), p.argmax(1) == y
    assert rc.threshold is not None
    accepted = conf >= rc.threshold
    assert correct[accepted].mean() >= target
    assert accepted.mean() == pytest.approx(rc.threshold_coverage)
    assert correct[accepted].mean() == pytest.approx(rc.accuracy_at_threshold)
    # It is the largest such coverage: accepting the next most confident rejected sample breaks the target.
    rejected = np.flatnonzero(~accepted)
    if rejected.size:
        nxt = rejected[np.argmax(conf[rejected])]
        assert correct[conf >= conf[nxt]].mean() < target


def test_risk_coverage_curve_and_unreachable_target() -> None:
    p, y = random_predictions(500, 4, seed=7, skill=1.0)
    rc = risk_coverage(p, y, target_accuracy=1.0)
    assert rc.threshold is None or rc.accuracy_at_threshold == 1.0
    assert rc.coverage[-1] == 1.0 and np.all(np.diff(rc.coverage) > 0) and np.all(np.diff(rc.thresholds) < 0)
    acc = classification_metrics(p, y).accuracy
    assert rc.accuracy[-1] == pytest.approx(acc)
    # An informative confidence: AURC well below the risk of answering everything.
    assert rc.aurc < 1 - acc
    always_wrong = np.eye(4)[(y + 1) % 4] * 0.96 + 0.01
    none = risk_coverage(always_wrong, y, target_accuracy=0.5)
    assert none.threshold is None and none.threshold_coverage is None
    assert json.loads(json.dumps(none.to_dict()))["threshold"] is None


def test_confidence_histogram_splits_right_and_wrong(preds: tuple[np.ndarray, np.ndarray]) -> None:
    p, y = preds
    h = confidence_histogram(p, y, n_bins=10)
    correct = p.argmax(1) == y
    assert h.correct.sum() == correct.sum() and h.wrong.sum() == (~correct).sum()
    assert np.array_equal(h.correct, np.histogram(p.max(1)[correct], bins=np.linspace(0, 1, 11))[0])
    # Right answers are more confident on average than wrong ones for a model with skill.
    mids = (h.edges[1:] + h.edges[:-1]) / 2
    assert (mids * h.correct).sum() / h.correct.sum() > (mids * h.wrong).sum() / h.wrong.sum()
