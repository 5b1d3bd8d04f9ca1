"""Drift verdicts: false alarms at or under the level on repeated in-distribution windows, shifts detected."""

from __future__ import annotations

import json

import numpy as np
import pytest

from imgclf.errors import DataError
from imgclf.monitor import TESTS, Window, check_window, drift_check, reference_stats

C, D = 5, 48


class World:
    """Embeddings from a Gaussian, class probabilities from a fixed linear head on them."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.head = np.random.default_rng(99).normal(size=(D, C)) / 3

    def draw(self, n: int, *, shift: np.ndarray | float = 0.0, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        f = self.rng.normal(size=(n, D)) * scale + shift  # (n, D)
        z = f @ self.head
        p = np.exp(z - z.max(1, keepdims=True))
        return p / p.sum(1, keepdims=True), f


@pytest.fixture(scope="module")
def world_and_reference() -> tuple[World, dict]:
    world = World(0)
    return world, reference_stats(*world.draw(3000))


def test_in_distribution_windows_alarm_at_or_under_the_nominal_level() -> None:
    # 10 training-time references x 60 windows each: the rate a user sees, averaged over which validation
    # sample happened to become the reference (a single reference moves the rate by a few points either way).
    alarms = []
    for seed in range(10):
        world = World(seed)
        ref = reference_stats(*world.draw(3000), max_samples=250)  # a smaller sample keeps the test quick
        alarms += [drift_check(ref, *world.draw(60), permutations=50).drifted for _ in range(60)]
    rate = float(np.mean(alarms))
    # 600 windows estimate the rate within +-0.009 (one standard error at 0.05): allow the 99% one-sided binomial
    # margin above the level; without the Bonferroni correction the rate is about 0.12
    assert rate <= 0.05 + 2.33 * np.sqrt(0.05 * 0.95 / len(alarms)), f"false-alarm rate {rate:.3f} exceeds 0.05"


@pytest.mark.parametrize("kind", ["mean_shift", "scale", "class_mix"])
def test_shifted_windows_are_detected(world_and_reference, kind: str) -> None:
    world, ref = world_and_reference
    detected = 0
    for _ in range(10):
        if kind == "mean_shift":
            probs, feats = world.draw(100, shift=0.4)
        elif kind == "scale":
            probs, feats = world.draw(100, scale=1.5)
        else:  # same embedding distribution inside each class, but one class dominates the traffic
            probs, feats = world.draw(600)
            keep = np.flatnonzero(probs.argmax(1) == 0)[:60].tolist() + list(range(40))
            probs, feats = probs[keep], feats[keep]
        detected += drift_check(ref, probs, feats, permutations=100).drifted
    assert detected == 10


def test_feature_only_drift_is_caught_by_the_feature_test() -> None:
    # Move the embeddings along a direction the head ignores: confidences and classes keep their distribution.
    world = World(1)
    ref = reference_stats(*world.draw(3000))
    null_dir = np.linalg.svd(world.head.T)[2][-1]  # (D,) orthogonal to every head column
    probs, feats = world.draw(150, shift=2.0 * null_dir)
    report = drift_check(ref, probs, feats)
    p = {t.name: t for t in report.tests}
    assert report.drifted and p["feature_mmd"].drifted
    assert not p["confidence_ks"].drifted and not p["class_chi2"].drifted


def test_bonferroni_and_report_shape(world_and_reference) -> None:
    world, ref = world_and_reference
    report = drift_check(ref, *world.draw(80, shift=1.0), alpha=0.01)
    assert json.loads(json.dumps(report.to_dict()))["verdict"] == report.verdict == "drift"
    for t in report.tests:
        assert t.p_adjusted == pytest.approx(min(1.0, 3 * t.p_value))
        assert t.drifted == (t.p_adjusted < 0.01)
    assert set(report.p_values) == set(TESTS)


def test_without_features_two_tests_and_a_note(world_and_reference) -> None:
    world, ref = world_and_reference
    probs, _ = world.draw(50)
    report = drift_check(ref, probs)
    assert [t.name for t in report.tests] == ["confidence_ks", "class_chi2"]
    assert report.notes and "feature test skipped" in report.notes[0]
    t = report.tests[0]
    assert t.p_adjusted == pytest.approx(min(1.0, 2 * t.p_value))


def test_projected_windows_and_input_checks(world_and_reference) -> None:
    world, ref = world_and_reference
    probs, feats = world.draw(40)
    from imgclf.monitor import project_features

    a = drift_check(ref, probs, feats)
    b = drift_check(ref, probs, project_features(ref, feats), projected=True)
    assert a.p_values == b.p_values
    with pytest.raises(DataError, match="at least 10"):
        drift_check(ref, probs[:5])
    with pytest.raises(DataError, match="classes"):
        drift_check(ref, probs[:, :3] / probs[:, :3].sum(1, keepdims=True))
    with pytest.raises(DataError, match=r"\[0, 5\)"):
        check_window(ref, Window(np.full(20, 0.9), np.full(20, 7)))
    with pytest.raises(DataError, match="alpha"):
        drift_check(ref, probs, alpha=1.5)
