from __future__ import annotations

import numpy as np

from imgclf.evaluation import analyse
from imgclf.tasks import SingleLabelTask, checked_temperature


def _logits(n: int, accuracy: float, scale: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    correct = rng.random(n) < accuracy
    pred = np.where(correct, labels, (labels + 1) % 3)
    logits = rng.normal(0, 0.1, (n, 3))
    logits[np.arange(n), pred] += scale * np.where(correct, 1.0, 0.3)  # mistakes are less confident
    return logits, labels


def test_checked_temperature_refuses_unsupported_splits() -> None:
    t, reason = checked_temperature(*_logits(10, 0.8, 3.0))
    assert t is None and "only 10 images" in reason
    t, reason = checked_temperature(*_logits(200, 1.0, 3.0))
    assert t is None and "every image" in reason
    t, _ = checked_temperature(*_logits(400, 0.8, 8.0))  # overconfident: T > 1 softens
    assert t is not None and t > 1.5


def test_analyse_fills_every_section() -> None:
    logits, labels = _logits(300, 0.85, 3.0)
    ev = analyse(logits, labels, SingleLabelTask(["a", "b", "c"]), temperature=1.3, n_resamples=100)
    assert set(ev.intervals) >= {"accuracy", "macro_f1", "ece"}
    assert ev.intervals["accuracy"].low <= ev.metrics.accuracy <= ev.intervals["accuracy"].high
    assert ev.risk.threshold is not None and len(ev.errors) == 25
    d = ev.to_dict()
    assert d["temperature"] == 1.3 and d["n"] == 300 and d["task"] == "single"
    assert d["accuracy"] == ev.metrics.accuracy  # the task's headline figures sit at the top of --json
