"""The single-label task and the rejection rule: decoding, calibration guard, thresholds at their target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from imgclf.errors import BundleError, ConfigError
from imgclf.tasks import (
    SingleLabelTask,
    fit_rejection,
    make_task,
    ood_score,
    rejection_scores,
    task_from_dict,
)


def test_decode_gives_top_k_and_unknown_only_where_the_rule_rejects() -> None:
    task = SingleLabelTask(("cat", "dog", "fox"))
    probs = np.array([[0.7, 0.2, 0.1], [0.3, 0.3, 0.4]])
    answers = task.decode(probs, top_k=2, ood=np.array([0.9, 0.1]), threshold=0.5)
    assert [a.label for a in answers] == ["cat", "unknown"]
    assert answers[1].topk == (("fox", 0.4), ("cat", 0.3)) and answers[1].unknown
    shown = task.decode(probs, ood=np.array([0.9, 0.1]), threshold=0.5, reject=False)
    assert shown[1].label == "fox" and shown[1].unknown  # the raw answer, still flagged
    d = answers[1].to_dict()
    assert d["label"] == "unknown" and d["unknown"] is True and d["topk"][0] == {"label": "fox", "score": 0.4}


def test_batch_score_counts_correct_argmax_including_soft_targets() -> None:
    task = SingleLabelTask(("a", "b"))
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    assert task.batch_score(logits, torch.tensor([0, 1, 1])) == 2.0
    assert task.batch_score(logits, torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.0, 1.0]])) == 2.0


def test_rejection_threshold_accepts_its_target_share_and_follows_the_temperature() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (400, 5))
    rule = fit_rejection(logits, temperature=2.0, target_acceptance=0.9)
    accepted = rejection_scores(rule, logits) >= rule["threshold"]
    assert abs(accepted.mean() - 0.9) < 0.01 and rule["temperature"] == 2.0
    # computed at the recorded temperature, not at a later calibration's
    np.testing.assert_allclose(rejection_scores(rule, logits, temperature=5.0),
                               ood_score("msp", torch.tensor(logits), 2.0).double().numpy())


def test_unknown_scores_and_tasks_fail_with_a_clear_message() -> None:
    with pytest.raises(BundleError, match="unknown rejection score 'odin'"):
        ood_score("odin", np.zeros((1, 2)))
    with pytest.raises(ConfigError, match="choose one of"):
        make_task("regression", ["a"])
    with pytest.raises(BundleError, match="upgrade imgclf"):
        task_from_dict({"kind": "segmentation"}, ["a"])
    assert task_from_dict(None, ["a", "b"]).kind == "single"  # schema-1 bundles
