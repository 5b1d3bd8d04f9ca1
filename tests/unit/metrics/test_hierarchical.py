"""Hierarchical precision / recall / F1, mistake severity and per-level accuracy on hand-computed examples."""

from __future__ import annotations

import pytest

from imgclf.config import Hierarchy
from imgclf.errors import DataError
from imgclf.metrics import hierarchical_metrics

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
TWO_LEVEL = Hierarchy.from_dict({"children": {"vehicle": ["airplane", "automobile", "ship", "truck"],
                                              "animal": ["bird", "cat", "deer", "dog", "frog", "horse"]},
                                 "leaves": CIFAR})  # fmt: skip
# life -> animal -> mammal -> {cat, dog}; animal -> bird -> {owl}; life -> plant -> {oak}   (unbalanced)
DEEP = Hierarchy.from_dict({"children": {"life": ["animal", "plant"], "animal": ["mammal", "bird"],
                                         "mammal": ["cat", "dog"], "bird": ["owl"], "plant": ["oak"]},
                            "leaves": ["cat", "dog", "oak", "owl"]})  # fmt: skip


def _idx(names: list[str], classes: list[str]) -> list[int]:
    return [classes.index(n) for n in names]


def test_two_level_tree_by_hand() -> None:
    true = ["cat", "cat", "cat", "ship", "truck"]
    pred = ["cat", "dog", "ship", "ship", "bird"]
    r = hierarchical_metrics(_idx(pred, CIFAR), _idx(true, CIFAR), TWO_LEVEL, CIFAR)
    # Augmented sets (root dropped): {animal, cat} vs {animal, cat} -> overlap 2; {animal, dog} vs {animal, cat}
    # -> 1; {vehicle, ship} vs {animal, cat} -> 0; ship/ship -> 2; {animal, bird} vs {vehicle, truck} -> 0.
    # Every set has 2 nodes: hP = hR = 5 / 10.
    assert r.hierarchical_precision == pytest.approx(0.5) and r.hierarchical_recall == pytest.approx(0.5)
    assert r.hierarchical_f1 == pytest.approx(0.5)
    assert r.accuracy == pytest.approx(0.4) and r.n_mistakes == 3 and r.n == 5
    # LCA heights of the mistakes: cat/dog 1 (animal), cat/ship 2 (root), truck/bird 2 (root).
    assert r.mistake_severity == pytest.approx(5 / 3) and r.mean_lca_height == pytest.approx(5 / 5)
    # Level 1 (vehicle / animal): right for cat, dog-for-cat, ship -> 3 of 5; level 2 = the leaves.
    assert r.level_accuracy == pytest.approx((0.6, 0.4))
    d = r.to_dict()
    assert d["level_accuracy"] == {"1": pytest.approx(0.6), "2": pytest.approx(0.4)}


def test_unbalanced_tree_by_hand() -> None:
    classes = ["cat", "dog", "oak", "owl"]
    true = ["cat", "cat", "oak", "owl"]
    pred = ["owl", "oak", "oak", "dog"]
    r = hierarchical_metrics(_idx(pred, classes), _idx(true, classes), DEEP, classes)
    # P: {animal, bird, owl} {plant, oak} {plant, oak} {animal, mammal, dog}   sizes 3 + 2 + 2 + 3 = 10
    # T: {animal, mammal, cat} x2, {plant, oak}, {animal, bird, owl}          sizes 3 + 3 + 2 + 3 = 11
    # overlaps: {animal} 1, {} 0, {plant, oak} 2, {animal} 1                   total 4
    assert r.hierarchical_precision == pytest.approx(4 / 10) and r.hierarchical_recall == pytest.approx(4 / 11)
    assert r.hierarchical_f1 == pytest.approx(2 * 0.4 * (4 / 11) / (0.4 + 4 / 11))
    # LCA heights: owl/cat -> animal (height 2), oak/cat -> life (3), dog/owl -> animal (2).
    assert r.mistake_severity == pytest.approx(7 / 3) and r.mean_lca_height == pytest.approx(7 / 4)
    # Level 1: animal/animal, plant/animal, plant/plant, animal/animal -> 3/4; level 2: bird/mammal, oak/mammal,
    # oak/oak (oak is its own level-2 node), mammal/bird -> 1/4; level 3: oak/oak only -> 1/4.
    assert r.level_accuracy == pytest.approx((0.75, 0.25, 0.25))


def test_perfect_predictions_and_class_order() -> None:
    classes = ["owl", "oak", "dog", "cat"]  # any order of the same names
    r = hierarchical_metrics([0, 1, 2, 3], [0, 1, 2, 3], DEEP, classes)
    assert r.accuracy == r.hierarchical_f1 == 1.0 and r.n_mistakes == 0 and r.mean_lca_height == 0.0
    assert r.mistake_severity != r.mistake_severity  # NaN: no mistakes to judge
    assert r.to_dict()["mistake_severity"] is None


def test_errors() -> None:
    with pytest.raises(DataError, match="the classes and the hierarchy's leaves differ"):
        hierarchical_metrics([0], [0], DEEP, ["cat", "dog", "oak", "pine"])
    with pytest.raises(DataError, match=r"pred_leaf must lie in \[0, 4\)"):
        hierarchical_metrics([7], [0], DEEP, ["cat", "dog", "oak", "owl"])
    with pytest.raises(DataError, match="true_leaf has 2 entries"):
        hierarchical_metrics([0], [0, 1], DEEP, ["cat", "dog", "oak", "owl"])
