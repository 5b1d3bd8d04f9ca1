"""Hierarchy: YAML loading, one clear error per kind of broken tree, tree queries, leaf matrix, round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from imgclf.config import Hierarchy, load_hierarchy
from imgclf.errors import ConfigError

CIFAR = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR_YAML = "vehicle: [airplane, automobile, ship, truck]\nanimal: [bird, cat, deer, dog, frog, horse]\n"


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "hierarchy.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def deep(tmp_path: Path) -> Hierarchy:
    """life -> {animal -> {mammal -> {cat, dog}, bird -> {owl}}, plant -> {oak}}; an unbalanced tree."""
    text = "life: [animal, plant]\nanimal: [mammal, bird]\nmammal: [cat, dog]\nbird: [owl]\nplant: [oak]\n"
    return load_hierarchy(_yaml(tmp_path, text), ["cat", "dog", "oak", "owl"])


def test_two_top_level_nodes_get_an_implicit_root(tmp_path: Path) -> None:
    h = load_hierarchy(_yaml(tmp_path, CIFAR_YAML), CIFAR)
    assert h.root == "root" and h.leaves == CIFAR and h.depth == 2
    assert h.ancestors("cat") == ("root", "animal") and h.parent("truck") == "vehicle" and h.parent("root") is None
    assert h.nodes[:3] == ("root", "vehicle", "animal") and len(h.nodes) == 13
    assert h.lca_height("cat", "dog") == 1 and h.lca_height("cat", "ship") == 2 and h.lca_height("cat", "cat") == 0
    m = h.leaf_matrix
    assert m.shape == (13, 10) and m.dtype == np.float32
    probs = np.full((1, 10), 0.1)
    probs[0, CIFAR.index("cat")] = 0.19
    probs[0, CIFAR.index("ship")] = 0.01
    node_probs = dict(zip(h.nodes, (probs @ m.T)[0], strict=True))
    assert node_probs["root"] == pytest.approx(1.0) and node_probs["animal"] == pytest.approx(0.69)
    assert node_probs["vehicle"] == pytest.approx(0.31) and node_probs["cat"] == pytest.approx(0.19)


def test_queries_on_an_unbalanced_tree(deep: Hierarchy) -> None:
    assert deep.root == "life" and deep.depth == 3
    assert deep.nodes == ("life", "animal", "plant", "mammal", "bird", "oak", "cat", "dog", "owl")
    assert deep.inner_nodes == ("life", "animal", "plant", "mammal", "bird")
    assert deep.ancestors("owl") == ("life", "animal", "bird") and deep.ancestors("oak") == ("life", "plant")
    assert [deep.level(n) for n in ("life", "plant", "oak", "cat")] == [0, 1, 2, 3]
    assert [deep.height(n) for n in ("life", "animal", "plant", "bird", "cat")] == [3, 2, 1, 1, 0]
    assert deep.lca("cat", "owl") == "animal" and deep.lca_height("cat", "owl") == 2
    assert deep.lca_height("cat", "oak") == 3  # through the root, the tallest node
    assert deep.lca_heights().tolist() == [[0, 1, 3, 2], [1, 0, 3, 2], [3, 3, 0, 3], [2, 2, 3, 0]]
    assert deep.leaves_under("animal") == ("cat", "dog", "owl")
    assert deep.node_at_level("oak", 1) == "plant" and deep.node_at_level("oak", 3) == "oak"
    with pytest.raises(ConfigError, match=r"'cta' is not a node of the hierarchy. Did you mean 'cat'"):
        deep.parent("cta")


def test_leaf_order_follows_the_data_classes_not_the_file(tmp_path: Path) -> None:
    h = load_hierarchy(_yaml(tmp_path, "a: [y, x]\nb: [z]\n"), ["z", "x", "y"])
    assert h.leaves == ("z", "x", "y")
    assert h.leaf_matrix.tolist()[h.nodes.index("a")] == [0, 1, 1]


def test_round_trip_through_json(deep: Hierarchy, tmp_path: Path) -> None:
    implicit = load_hierarchy(_yaml(tmp_path, CIFAR_YAML), CIFAR)
    for h in (deep, implicit):
        again = Hierarchy.from_dict(json.loads(json.dumps(h.to_dict())))
        assert again == h and again.nodes == h.nodes and np.array_equal(again.leaf_matrix, h.leaf_matrix)
    assert implicit.to_dict()["children"]["root"] == ["vehicle", "animal"]


@pytest.mark.parametrize(
    ("text", "leaves", "message"),
    [
        ("animal: [cat, dgo]\n", ["cat", "dog"], r"leaf 'dgo' is not a class of the data. Did you mean 'dog'"),
        ("animal: [cat]\n", ["cat", "dog"], r"class 'dog' is missing from the tree"),
        ("a: [b, cat]\nb: [c, dog]\nc: [a]\n", ["cat", "dog"], r"cycle \(a -> b -> c -> a\)"),
        ("a: [a, cat]\n", ["cat"], r"'a' lists itself as a child"),
        ("pets: [cat, dog]\nwild: [cat, fox]\n", ["cat", "dog", "fox"],
         r"'cat' has two parents, 'pets' and 'wild'"),
        ("pets: [cat, cat]\n", ["cat"], r"'cat' is listed twice under 'pets'"),
        ("animal: [cat, dog]\ncat: [kitten]\n", ["cat", "dog", "kitten"], r"class 'cat' has children"),
        ("root: [cat]\nother: [dog]\n", ["cat", "dog"], r"several top-level nodes \(root, other\)"),
        ("animal: cat\n", ["cat"], r"children of 'animal' must be a list"),
        ("animal: []\n", ["cat"], r"node 'animal' has no children"),
        ("- cat\n- dog\n", ["cat", "dog"], r"must map each inner node to the list of its children"),
        ("animal: [cat, dog\n", ["cat", "dog"], r"is not valid YAML"),
    ],
)
def test_each_broken_tree_gets_one_clear_error(tmp_path: Path, text: str, leaves: list[str], message: str) -> None:
    path = _yaml(tmp_path, text)
    with pytest.raises(ConfigError, match=message) as info:
        load_hierarchy(path, leaves)
    assert str(path) in str(info.value)


def test_missing_file_and_bad_stored_dict(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml does not exist"):
        load_hierarchy(tmp_path / "nope.yaml", ["a", "b"])
    with pytest.raises(ConfigError, match="must hold 'children'"):
        Hierarchy.from_dict({"leaves": ["a"]})
    with pytest.raises(ConfigError, match="root 'x' is not the top node"):
        Hierarchy.from_dict({"root": "x", "children": {"g": ["a", "b"]}, "leaves": ["a", "b"]})
    with pytest.raises(ConfigError, match="two parents"):
        Hierarchy("g", (("g", ("a", "b")), ("h", ("a",))), ("a", "b"))  # direct construction is checked too
