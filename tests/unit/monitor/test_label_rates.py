"""Drift of a multi-label model: each label's positive rate is tested against the reference."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgclf.errors import DataError
from imgclf.monitor import drift_check, monitor_log, reference_stats

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


def _log(path, probs: np.ndarray, classes: list[str]) -> None:  # noqa: ANN001 - a Path
    """Audit-log records as the server writes them for a multi-label model: its label set, top class."""
    lines = []
    for row in probs:
        labels = [c for c, p in zip(classes, row) if p >= 0.5]
        k = int(row.argmax())
        lines.append(json.dumps({"label": ";".join(labels), "class_index": k, "confidence": float(row[k]),
                                 "labels": labels, "model": "m"}))  # fmt: skip
    path.write_text("\n".join(lines) + "\n")


def test_monitor_reads_the_label_sets_a_multilabel_server_logged(tmp_path) -> None:  # noqa: ANN001
    classes = list("abcde")
    rng = np.random.default_rng(1)
    ref = reference_stats(_probs(rng, 600, RATES), thresholds=[0.5] * 5)
    # label "b" is suddenly in every logged label set
    probs = _probs(rng, 200, RATES)
    _log(tmp_path / "same.jsonl", probs, classes)
    moved = probs.copy()
    moved[:, 1] = np.where(moved[:, 1] < 0.5, moved[:, 1] + 0.5, moved[:, 1])
    _log(tmp_path / "moved.jsonl", moved, classes)
    same = monitor_log(ref, tmp_path / "same.jsonl", window=100, class_names=classes)
    drifted = monitor_log(ref, tmp_path / "moved.jsonl", window=100, class_names=classes)
    assert not same.drifted
    rates = [next(t for t in r.tests if t.name == "label_rate_chi2") for r in drifted.reports]
    assert drifted.drifted and all(t.drifted for t in rates)
    assert max(t.p_value for t in rates) < 1e-6
    unread = monitor_log(ref, tmp_path / "moved.jsonl", window=100)  # no class names: the label sets are unread
    assert not any(t.name == "label_rate_chi2" for r in unread.reports for t in r.tests)
    with pytest.raises(DataError, match="label 'b'"):
        monitor_log(ref, tmp_path / "moved.jsonl", window=100, class_names=["a", "c", "d", "e", "f"])
