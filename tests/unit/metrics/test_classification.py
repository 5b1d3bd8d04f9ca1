"""classification_metrics against scikit-learn on random predictions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from imgclf.errors import DataError
from imgclf.metrics import classification_metrics

from .conftest import random_predictions


def test_every_figure_matches_scikit_learn(preds: tuple[np.ndarray, np.ndarray]) -> None:
    p, y = preds
    names = [f"c{i}" for i in range(6)]
    r = classification_metrics(p, y, names, top_k=(1, 3, 5, 10))
    pred = p.argmax(1)
    assert r.n == 400 and r.class_names == tuple(names)
    assert r.accuracy == skm.accuracy_score(y, pred)
    assert r.top_k == {
        1: skm.top_k_accuracy_score(y, p, k=1),
        3: skm.top_k_accuracy_score(y, p, k=3),
        5: skm.top_k_accuracy_score(y, p, k=5),
    }  # k=10 > C is dropped
    assert r.balanced_accuracy == skm.balanced_accuracy_score(y, pred)
    assert r.macro_f1 == skm.f1_score(y, pred, average="macro")
    assert r.weighted_f1 == skm.f1_score(y, pred, average="weighted")
    assert r.macro_precision == skm.precision_score(y, pred, average="macro")
    assert r.weighted_recall == skm.recall_score(y, pred, average="weighted")
    assert r.kappa == skm.cohen_kappa_score(y, pred)
    assert r.mcc == skm.matthews_corrcoef(y, pred)
    assert np.array_equal(r.confusion, skm.confusion_matrix(y, pred))
    assert np.allclose(r.confusion_normalized, skm.confusion_matrix(y, pred, normalize="true"))
    assert r.macro_auc == pytest.approx(skm.roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=1e-12)
    assert r.log_loss == pytest.approx(skm.log_loss(y, p), abs=1e-12)
    assert r.brier == pytest.approx(skm.brier_score_loss(y, p, labels=range(6), scale_by_half=False), abs=1e-12)
    f1 = skm.f1_score(y, pred, average=None)
    for k, row in enumerate(r.per_class):
        assert row.name == names[k] and row.support == int((y == k).sum())
        assert row.f1 == f1[k] and row.recall == skm.recall_score(y, pred, labels=[k], average="macro")
        assert row.auc == skm.roc_auc_score(y == k, p[:, k])
        assert row.average_precision == skm.average_precision_score(y == k, p[:, k])
        assert row.predicted == int((pred == k).sum())
    assert r.macro_average_precision == pytest.approx(np.mean([c.average_precision for c in r.per_class]))


def test_absent_class_gives_nan_auc_and_says_so() -> None:
    p, y = random_predictions(300, 4, seed=2)
    y = np.where(y == 3, 0, y)  # class 3 never occurs in the labels
    r = classification_metrics(p, y, ["a", "b", "c", "d"])
    assert math.isnan(r.per_class[3].auc) and math.isnan(r.per_class[3].average_precision)
    assert r.auc_undefined == ("d",)
    assert r.macro_auc == pytest.approx(np.mean([skm.roc_auc_score(y == k, p[:, k]) for k in range(3)]))
    assert r.per_class[3].support == 0 and r.confusion.shape == (4, 4)
    assert r.confusion_normalized[3].tolist() == [0, 0, 0, 0]
    # Absent classes never head the "worst classes" list, and to_dict is strict JSON (NaN -> null).
    assert "d" not in [c.name for c in r.worst_classes()]
    text = json.dumps(r.to_dict(), allow_nan=False)
    assert json.loads(text)["per_class"][3]["auc"] is None


def test_binary_problem_and_torch_input() -> None:
    p, y = random_predictions(200, 2, seed=3)
    r = classification_metrics(torch.from_numpy(p).float(), torch.from_numpy(y), ["neg", "pos"])
    pred = p.argmax(1)
    assert r.accuracy == skm.accuracy_score(y, pred)
    assert r.top_k == {1: r.accuracy}
    assert r.macro_auc == pytest.approx(skm.roc_auc_score(y, p[:, 1]), abs=1e-6)
    assert r.per_class[1].auc == pytest.approx(skm.roc_auc_score(y, p[:, 1]), abs=1e-6)


def test_worst_classes_are_sorted_by_recall(preds: tuple[np.ndarray, np.ndarray]) -> None:
    p, y = preds
    worst = classification_metrics(p, y).worst_classes()
    recalls = [c.recall for c in worst]
    assert recalls == sorted(recalls) and len(worst) == 6


@pytest.mark.parametrize(
    ("probs", "labels", "match"),
    [
        ([[2.0, -1.0]], [0], "logits"),
        ([[0.5, 0.5]], [2], r"\[0, 2\)"),
        ([[0.5, 0.5], [0.5, 0.5]], [0], "one label per row"),
        (np.zeros((0, 3)), [], "empty"),
        ([[np.nan, 1.0]], [0], "NaN"),
    ],
)
def test_bad_input_raises_an_actionable_error(probs: object, labels: object, match: str) -> None:
    with pytest.raises(DataError, match=match):
        classification_metrics(probs, labels)


def test_class_names_must_match_columns(preds: tuple[np.ndarray, np.ndarray]) -> None:
    with pytest.raises(DataError, match="class names"):
        classification_metrics(*preds, ["a", "b"])
