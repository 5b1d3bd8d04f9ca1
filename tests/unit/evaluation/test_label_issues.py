"""Likely label errors found by cleanlab on held-out probabilities."""

from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest

from imgclf.evaluation import find_label_issues, find_multilabel_label_issues


def _no_pool(*args: object, **kw: object) -> None:
    raise AssertionError("cleanlab forked a multiprocessing pool")


def test_flipped_labels_are_found_first() -> None:
    rng = np.random.default_rng(0)
    n, c = 600, 3
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c))
    z[np.arange(n), y] += 4.0
    probs = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    noisy = y.copy()
    flipped = rng.choice(n, 30, replace=False)
    noisy[flipped] = (y[flipped] + 1) % c
    issues = find_label_issues(probs, noisy, ["a", "b", "c"])
    found = set(issues)
    assert len(found & set(flipped.tolist())) >= 25  # most flips are found
    assert len(found - set(flipped.tolist())) <= 10  # and few clean rows are accused
    top = issues.indices[:10]
    assert set(top.tolist()) <= set(flipped.tolist())  # the most suspicious ones are real flips
    assert np.array_equal(issues.given, noisy[issues.indices])
    assert np.array_equal(issues.suggested, probs[issues.indices].argmax(1))
    assert np.all(np.diff(issues.self_confidence) >= 0)  # ranked by self-confidence, lowest first
    record = json.loads(json.dumps(issues.to_dict()))["issues"][0]
    assert record["given"] in ("a", "b", "c") and record["index"] == int(top[0]) and "path" not in record
    named = issues.with_paths([f"img/{i}.png" for i in issues.indices])
    assert named.to_dict()["issues"][0]["path"] == f"img/{int(top[0])}.png"


def test_cleanlab_never_forks_a_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its default pool forks from a process with threads (torch, TensorBoard, a server): a child that forks while a
    lock is held waits forever, and a training run hung in its report. With four cores seen, no pool is made."""
    monkeypatch.setattr(multiprocessing, "cpu_count", lambda: 4)
    monkeypatch.setattr(multiprocessing, "Pool", _no_pool)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 300)
    probs = np.full((300, 3), 0.1)
    probs[np.arange(300), y] = 0.8
    flipped = np.arange(0, 300, 30)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + 1) % 3
    assert set(find_label_issues(probs, noisy, ["a", "b", "c"])) == set(flipped.tolist())
    multi = np.eye(3, dtype=np.int64)[y]
    noisy_multi = multi.copy()
    noisy_multi[flipped] = np.eye(3, dtype=np.int64)[noisy[flipped]]
    assert set(find_multilabel_label_issues(probs, noisy_multi, ["a", "b", "c"])) >= set(flipped.tolist())
