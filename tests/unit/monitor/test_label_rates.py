"""Drift of a multi-label model: each label's positive rate is tested against the reference."""

from __future__ import annotations

import numpy as np

from imgclf.monitor import drift_check, reference_stats

RATES = np.array([0.9, 0.5, 0.3, 0.2, 0.1])


def _probs(rng: np.random.Generator, n: int, scale: np.ndarray) -> np.ndarray:
    return rng.random((n, len(scale))) * scale  # independent per-label probabilities, not softmax rows


def test_reference_counts_label_positives_at_the_thresholds() -> None:
    p = np.array([[0.9, 0.1], [0.6, 0.7], [0.2, 0.4]])
    ref = reference_stats(p, thresholds=[0.5, 0.4])
    assert ref["label_counts"] == [2, 2] and ref["thresholds"] == [0.5, 0.4]


def test_a_label_whose_rate_changes_is_drift_and_a_stable_stream_is_not() -> None:
    rng = np.random.default_rng(0)
    ref = reference_stats(_probs(rng, 600, RATES), thresholds=[0.5] * 5)
    same = drift_check(ref, _probs(rng, 300, RATES))
    assert not same.drifted
    shifted = RATES.copy()
    shifted[4] = 0.9  # the rarest label suddenly appears in about 40% of images
    moved = drift_check(ref, _probs(rng, 300, shifted))
    rate = next(t for t in moved.tests if t.name == "label_rate_chi2")
    assert moved.drifted and rate.drifted and rate.p_value < 1e-6
