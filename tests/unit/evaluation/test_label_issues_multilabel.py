"""Likely label errors in multi-label data (cleanlab), with its two known pitfalls guarded."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgclf.errors import DataError
from imgclf.evaluation import LabelIssues, find_multilabel_label_issues


def _data(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Confident held-out probabilities of clean targets; 20 rows get one label dropped or added."""
    rng = np.random.default_rng(seed)
    y = (rng.random((n, 4)) < [0.4, 0.3, 0.25, 0.0]).astype(np.int64)  # class 3 ("d") never present
    probs = np.clip(0.05 + 0.85 * y + rng.normal(0, 0.04, y.shape), 0.0, 1.0)
    noisy = y.copy()
    flipped = rng.choice(n, 20, replace=False)
    noisy[flipped, 0] = 1 - noisy[flipped, 0]
    return probs, noisy, flipped


def test_flipped_labels_are_found_and_described() -> None:
    probs, noisy, flipped = _data()
    issues = find_multilabel_label_issues(probs, noisy, ["a", "b", "c", "d"])
    assert isinstance(issues, LabelIssues)  # the project's type: with_paths, iteration, to_dict
    found = set(issues)
    assert len(found & set(flipped.tolist())) >= 17 and len(found - set(flipped.tolist())) <= 5
    assert set(issues.indices[:10].tolist()) <= set(flipped.tolist())  # the most suspicious are real flips
    assert np.all(np.diff(issues.self_confidence) >= 0)  # lowest label quality first
    assert np.array_equal(issues.given, noisy[issues.indices])
    assert np.array_equal(issues.suggested, (probs[issues.indices] >= 0.5).astype(np.uint8))
    first = int(issues.indices[0])
    record = json.loads(json.dumps(issues.with_paths([f"img/{i}.png" for i in issues.indices]).to_dict()))["issues"][0]
    assert record["index"] == first and record["path"] == f"img/{first}.png"
    # The only disagreement planted is class "a": the record says whether the model would add or drop it.
    assert (record["missing"], record["extra"]) in ((["a"], []), ([], ["a"]))
    assert record["given"] == [n for n, v in zip("abcd", noisy[first], strict=True) if v]


def test_guards_cleanlab_pitfalls_and_bad_input() -> None:
    probs, noisy, _ = _data(200, seed=1)
    # A class without positives as the last column (cleanlab#266) and targets given as a multi-hot array, which
    # cleanlab itself would misread (cleanlab#516): both go through, with the same answer as without the class.
    full = find_multilabel_label_issues(probs, noisy)
    without = find_multilabel_label_issues(probs[:, :3], noisy[:, :3])
    assert full.indices.tolist() == without.indices.tolist() and 0 < len(full) < 40
    empty = find_multilabel_label_issues(probs, np.zeros_like(noisy))  # nothing labelled at all: nothing to say
    assert len(empty) == 0 and empty.given.shape == (0, 4)
    with pytest.raises(DataError, match="multi-hot targets, not class indices"):
        find_multilabel_label_issues(probs, noisy[:, 0])
