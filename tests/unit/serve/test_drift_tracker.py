"""The server's own drift windows: a multi-label model's windows test each label's rate too."""

from __future__ import annotations

import numpy as np

from imgclf.monitor import reference_stats
from imgclf.serve._drift import DriftTracker
from imgclf.serve._metrics import ServerMetrics
from imgclf.serve._predictor import ImageResult
from imgclf.tasks import Answer

CLASSES = ("a", "b", "c", "d")


def _results(probs: np.ndarray) -> list[ImageResult]:
    out = []
    for row in probs:
        labels = tuple(c for c, p in zip(CLASSES, row) if p >= 0.5)
        k = int(row.argmax())
        out.append(ImageResult(Answer(";".join(labels), float(row[k]), labels=labels), k, float(row[k])))
    return out


def _verdict(tracker: DriftTracker, probs: np.ndarray):  # noqa: ANN202 - a DriftReport
    tracker.add(_results(probs))
    with tracker._busy:  # the window is tested on a background thread: wait for it
        pass
    return tracker.latest


def test_a_multilabel_server_window_tests_each_label_rate() -> None:
    rng = np.random.default_rng(0)
    rates = np.array([0.9, 0.5, 0.3, 0.1])
    ref = reference_stats(rng.random((600, 4)) * rates, thresholds=[0.5] * 4)
    tracker = DriftTracker(ref, ServerMetrics(), window=100, classes=CLASSES)
    same = _verdict(tracker, rng.random((100, 4)) * rates)
    moved = rng.random((100, 4)) * rates
    moved[:, 3] = 0.6 + 0.4 * rng.random(100)  # label "d" suddenly in every answer
    drifted = _verdict(tracker, moved)
    rate = {t.name: t for t in drifted.tests}["label_rate_chi2"]
    assert rate.drifted and rate.p_value < 1e-6 and drifted.drifted
    assert not {t.name: t for t in same.tests}["label_rate_chi2"].drifted
    # a tracker that does not know the classes (a single-label server) runs no label test
    plain = DriftTracker(ref, ServerMetrics(), window=100)
    assert "label_rate_chi2" not in {t.name for t in _verdict(plain, moved).tests}
