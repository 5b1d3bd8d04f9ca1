"""Reference statistics: JSON-ready, deterministic, bounded in size, and a projection fresh data can use."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgclf.errors import DataError
from imgclf.monitor import check_reference, project_features, reference_stats


def _probs(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    z = rng.normal(size=(n, c)) * 2
    p = np.exp(z - z.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


def test_reference_is_json_ready_bounded_and_deterministic() -> None:
    rng = np.random.default_rng(0)
    probs, feats = _probs(rng, 1200, 4), rng.normal(size=(1200, 80))
    ref = reference_stats(probs, feats, seed=3, max_samples=300)
    assert json.loads(json.dumps(ref)) == ref  # survives imgclf.json
    assert ref["n"] == 1200 and ref["num_classes"] == 4
    assert len(ref["confidence"]) == 300
    assert ref["class_counts"] == np.bincount(probs.argmax(1), minlength=4).tolist()  # over all rows
    spec = ref["features"]
    assert spec["dim"] == 80 and np.asarray(spec["components"]).shape == (32, 80)
    assert np.asarray(spec["sample"]).shape == (300, 32)
    gaps = np.abs(np.asarray(ref["confidence"])[:, None] - probs.max(1)[None, :]).min(axis=1)
    assert gaps.max() < 1e-5  # each stored confidence is one of the rows' (to 6 significant digits)
    assert reference_stats(probs, feats, seed=3, max_samples=300) == ref
    assert reference_stats(probs, feats, seed=4, max_samples=300)["confidence"] != ref["confidence"]


def test_projection_is_orthonormal_and_applies_to_new_rows() -> None:
    rng = np.random.default_rng(1)
    feats = rng.normal(size=(400, 10)) * np.linspace(3, 0.1, 10)  # variance concentrated in the first axes
    ref = reference_stats(_probs(rng, 400, 3), feats, n_components=4)
    comps = np.asarray(ref["features"]["components"])
    assert np.allclose(comps @ comps.T, np.eye(4), atol=1e-4)
    assert np.all(np.abs(comps[:, 6:]) < 0.3)  # PCA picked the high-variance axes
    new = rng.normal(size=(7, 10))
    expected = (new - np.asarray(ref["features"]["mean"])) @ comps.T
    assert np.allclose(project_features(ref, new), expected)


def test_fresh_rows_spread_like_the_stored_sample() -> None:
    # The PCA is fitted on rows other than the stored sample; fitted on the sample itself, fresh data would
    # look systematically narrower along the chosen axes (and every window would alarm).
    rng = np.random.default_rng(2)
    feats = rng.normal(size=(2000, 64))
    ref = reference_stats(_probs(rng, 2000, 3), feats)
    sample_var = np.asarray(ref["features"]["sample"]).var(axis=0).mean()
    fresh_var = project_features(ref, rng.normal(size=(2000, 64))).var(axis=0).mean()
    assert fresh_var == pytest.approx(sample_var, rel=0.1)


def test_without_features_and_bad_inputs() -> None:
    rng = np.random.default_rng(3)
    ref = reference_stats(_probs(rng, 50, 2))
    assert ref["features"] is None
    with pytest.raises(DataError, match="no feature sample"):
        project_features(ref, np.zeros((2, 5)))
    with pytest.raises(DataError, match="one row per prediction"):
        reference_stats(_probs(rng, 50, 2), np.zeros((49, 3)))
    with pytest.raises(DataError, match="NaN"):
        reference_stats(np.full((3, 2), np.nan))
    with pytest.raises(DataError, match="missing or incomplete"):
        check_reference({"version": 1})
    ref2 = reference_stats(_probs(rng, 50, 2), rng.normal(size=(50, 6)))
    with pytest.raises(DataError, match=r"shape \(N, 6\)"):
        project_features(ref2, np.zeros((2, 5)))
