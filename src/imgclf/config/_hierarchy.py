"""A class hierarchy (a tree over the class names) read from YAML: ``inner node: [children, ...]``."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from imgclf.errors import ConfigError
from imgclf.utils import closest

IMPLICIT_ROOT = "root"

Edges = tuple[tuple[str, tuple[str, ...]], ...]


def _as_mapping(data: Any, where: str) -> dict[str, list[str]]:
    """``{node: [children]}`` with every name a string; ConfigError naming ``where`` otherwise."""
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(f"{where} must map each inner node to the list of its children, e.g. "
                          f"'animal: [cat, dog]' one per line; got {type(data).__name__}")  # fmt: skip
    out: dict[str, list[str]] = {}
    for node, children in data.items():
        name = str(node).strip()
        if isinstance(children, (str, int, float)):
            raise ConfigError(f"{where}: the children of {name!r} must be a list, e.g. '{name}: [{children}]'")
        if not children:
            raise ConfigError(f"{where}: node {name!r} has no children; list them ('{name}: [a, b]') or remove it")
        if not isinstance(children, Sequence):
            raise ConfigError(f"{where}: the children of {name!r} must be a list, got {type(children).__name__}")
        if name in out:
            raise ConfigError(f"{where}: node {name!r} is listed twice; merge its children into one list")
        out[name] = [str(c).strip() for c in children]
    return out


def _validate(mapping: dict[str, list[str]], leaves: Sequence[str], where: str) -> tuple[str, Edges]:
    """Check ``mapping`` is a tree whose leaves are exactly ``leaves``; return its root and edges (an implicit
    root ``"root"`` is added above several top-level nodes)."""
    parent: dict[str, str] = {}
    for node, children in mapping.items():
        for child in children:
            if child == node:
                raise ConfigError(f"{where}: node {child!r} lists itself as a child (a cycle); remove it")
            if child in parent:
                other = parent[child]
                if other == node:
                    raise ConfigError(f"{where}: {child!r} is listed twice under {node!r}; keep one")
                raise ConfigError(f"{where}: {child!r} has two parents, {other!r} and {node!r}; a hierarchy is a "
                                  "tree, so keep it under one of them")  # fmt: skip
            parent[child] = node
    for node in mapping:  # every node must reach a top-level node through its parents
        seen = [node]
        while seen[-1] in parent:
            seen.append(parent[seen[-1]])
            if seen[-1] in seen[:-1]:
                loop = seen[seen.index(seen[-1]) :]
                raise ConfigError(f"{where}: the nodes form a cycle ({' -> '.join(reversed(loop))}); a hierarchy is "
                                  "a tree: remove one of these links")  # fmt: skip
    tops = [n for n in mapping if n not in parent]
    edges = [(n, tuple(c)) for n, c in mapping.items()]
    if len(tops) == 1:
        root = tops[0]
    else:
        if IMPLICIT_ROOT in mapping or IMPLICIT_ROOT in parent:
            raise ConfigError(f"{where} has several top-level nodes ({', '.join(tops)}) and one node is named "
                              f"{IMPLICIT_ROOT!r}; put them all under one top node")  # fmt: skip
        root = IMPLICIT_ROOT
        edges.insert(0, (root, tuple(tops)))
    names = [str(x) for x in leaves]
    classes = set(names)
    if len(classes) != len(names):
        raise ConfigError(f"{where}: the class names repeat a name; each class must be one leaf")
    tree_leaves = [c for _, children in edges for c in children if c not in mapping]
    for leaf in tree_leaves:
        if leaf not in classes:
            raise ConfigError(f"{where}: leaf {leaf!r} is not a class of the data.{closest(leaf, names)} The leaves "
                              "must be exactly the class names")  # fmt: skip
    for name in names:
        if name in mapping:
            raise ConfigError(f"{where}: class {name!r} has children; classes must be the leaves of the tree, so "
                              "rename the inner node or the class")  # fmt: skip
        if name not in parent:
            raise ConfigError(f"{where}: class {name!r} is missing from the tree; list it under its parent node "
                              "(every class must be a leaf)")  # fmt: skip
    return root, tuple(edges)


@dataclass(frozen=True)
class Hierarchy:
    """A tree over class names: inner nodes group classes (the leaves) into coarser categories.

    ``leaves`` are the class names in the data's (and the model's) order; ``edges`` pairs every inner node with
    its children, in the order given. ``nodes`` lists every node breadth-first from ``root`` (a stable order:
    the rows of ``leaf_matrix``). The level of a node is its distance from the root (root 0); ``depth`` is the
    largest level of a leaf. The height of a node is its longest distance down to a leaf (a leaf has height
    0), so ``lca_height(a, b)`` is 0 for ``a == b``, 1 for siblings, and grows with how far apart the classes
    are in the tree (the mistake severity of Bertinetto et al. 2020).

    >>> import numpy as np
    >>> h = Hierarchy.from_dict({"children": {"animal": ["cat", "dog"], "vehicle": ["car"]},
    ...                          "leaves": ["car", "cat", "dog"]})
    >>> h.root, h.ancestors("cat"), h.depth, h.lca_height("cat", "dog"), h.lca_height("cat", "car")
    ('root', ('root', 'animal'), 2, 1, 2)
    >>> h.nodes
    ('root', 'animal', 'vehicle', 'cat', 'dog', 'car')
    >>> (np.array([0.2, 0.5, 0.3]) @ h.leaf_matrix.T).round(2).tolist()  # probability of every node
    [1.0, 0.8, 0.2, 0.5, 0.3, 0.2]
    """

    root: str
    edges: Edges
    leaves: tuple[str, ...]
    _parent: dict[str, str] = field(init=False, repr=False, compare=False)
    _children: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _nodes: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _level: dict[str, int] = field(init=False, repr=False, compare=False)
    _height: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        edges = tuple((str(n), tuple(str(c) for c in cs)) for n, cs in self.edges)
        root, checked = _validate(dict(edges), self.leaves, "hierarchy")
        if root != self.root or checked != edges:
            raise ConfigError(f"hierarchy: root {self.root!r} does not match its edges (their top node is {root!r})")
        object.__setattr__(self, "edges", edges)
        object.__setattr__(self, "leaves", tuple(str(x) for x in self.leaves))
        children = dict(edges)
        nodes, level = [self.root], {self.root: 0}
        for node in nodes:  # breadth-first: the list grows while we walk it
            for child in children.get(node, ()):
                level[child] = level[node] + 1
                nodes.append(child)
        height: dict[str, int] = {}
        for node in reversed(nodes):
            height[node] = 1 + max(height[c] for c in children[node]) if node in children else 0
        object.__setattr__(self, "_children", children)
        object.__setattr__(self, "_parent", {c: n for n, cs in edges for c in cs})
        object.__setattr__(self, "_nodes", tuple(nodes))
        object.__setattr__(self, "_level", level)
        object.__setattr__(self, "_height", height)

    # -- structure --------------------------------------------------------------------------------------------
    @property
    def nodes(self) -> tuple[str, ...]:
        """Every node, breadth-first from the root, children in the order given."""
        return self._nodes

    @property
    def inner_nodes(self) -> tuple[str, ...]:
        """The nodes that are not leaves (the root first), in :attr:`nodes` order."""
        return tuple(n for n in self._nodes if n in self._children)

    @property
    def depth(self) -> int:
        """The largest level of a leaf (2 for root -> category -> class)."""
        return max(self._level[leaf] for leaf in self.leaves)

    def _known(self, node: str) -> str:
        if node not in self._level:
            raise ConfigError(f"{node!r} is not a node of the hierarchy.{closest(str(node), self._nodes)}")
        return node

    def parent(self, node: str) -> str | None:
        """The parent of ``node`` (None for the root)."""
        return self._parent.get(self._known(node))

    def children(self, node: str) -> tuple[str, ...]:
        """The children of ``node`` (empty for a leaf)."""
        return self._children.get(self._known(node), ())

    def ancestors(self, node: str) -> tuple[str, ...]:
        """The path from the root down to the parent of ``node``: ``(root, ..., parent)``; empty for the root."""
        out = []
        current = self._parent.get(self._known(node))
        while current is not None:
            out.append(current)
            current = self._parent.get(current)
        return tuple(reversed(out))

    def level(self, node: str) -> int:
        """The distance of ``node`` from the root (root 0)."""
        return self._level[self._known(node)]

    def height(self, node: str) -> int:
        """The longest distance from ``node`` down to a leaf (a leaf 0)."""
        return self._height[self._known(node)]

    def leaves_under(self, node: str) -> tuple[str, ...]:
        """The leaves in the subtree of ``node``, in :attr:`leaves` order."""
        self._known(node)
        return tuple(leaf for leaf in self.leaves if leaf == node or node in self.ancestors(leaf))

    def lca(self, a: str, b: str) -> str:
        """The lowest common ancestor of ``a`` and ``b`` (``a`` itself when ``a == b``)."""
        path_a = (*self.ancestors(a), a)
        path_b = (*self.ancestors(b), b)
        common = self.root
        for x, y in zip(path_a, path_b, strict=False):
            if x != y:
                break
            common = x
        return common

    def lca_height(self, a: str, b: str) -> int:
        """The height of the lowest common ancestor of ``a`` and ``b``: 0 when equal, 1 for siblings."""
        return self._height[self.lca(a, b)]

    # -- arrays -----------------------------------------------------------------------------------------------
    @property
    def leaf_matrix(self) -> np.ndarray:
        """Float32 ``(len(nodes), len(leaves))`` 0/1 membership: row ``i`` marks the leaves under ``nodes[i]``, so
        ``leaf_probs @ leaf_matrix.T`` gives every node's probability ``(N, len(nodes))``."""
        index = {leaf: j for j, leaf in enumerate(self.leaves)}
        out = np.zeros((len(self._nodes), len(self.leaves)), dtype=np.float32)
        row = {n: i for i, n in enumerate(self._nodes)}
        for leaf, j in index.items():
            for node in (*self.ancestors(leaf), leaf):
                out[row[node], j] = 1.0
        return out

    def lca_heights(self) -> np.ndarray:
        """Int64 ``(L, L)`` matrix of :meth:`lca_height` between every pair of leaves, in :attr:`leaves` order."""
        return np.array([[self.lca_height(a, b) for b in self.leaves] for a in self.leaves], dtype=np.int64)

    def node_at_level(self, leaf: str, level: int) -> str:
        """The node on the path to ``leaf`` at ``level`` (``leaf`` itself when it lies above that level)."""
        path = (*self.ancestors(leaf), leaf)
        return path[min(level, len(path) - 1)]

    # -- storage ----------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"root", "children": {node: [children]}, "leaves"}`` (the implicit root included)."""
        return {"root": self.root, "children": {n: list(cs) for n, cs in self.edges}, "leaves": list(self.leaves)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "hierarchy") -> Hierarchy:
        """The hierarchy stored by :meth:`to_dict` (``root`` optional), validated like :func:`load_hierarchy`."""
        if not isinstance(data, Mapping) or "children" not in data or "leaves" not in data:
            raise ConfigError(f"{where} must hold 'children' (node -> list of children) and 'leaves' (class names)")
        root, edges = _validate(_as_mapping(data["children"], where), data["leaves"], where)
        if data.get("root") not in (None, root):
            raise ConfigError(f"{where}: root {data['root']!r} is not the top node of its children ({root!r})")
        return cls(root, edges, tuple(str(x) for x in data["leaves"]))


def load_hierarchy(path: str | os.PathLike, leaves: Sequence[str]) -> Hierarchy:
    """Read a class hierarchy from YAML: each inner node mapped to the list of its children; the leaves must be
    exactly ``leaves`` (the data's class names, whose order the hierarchy keeps).

    Several top-level nodes get an implicit common root named ``"root"`` (so a file may list just the coarse
    categories). Each problem raises one ConfigError naming the file: a leaf that is not a class (with the
    closest class name), a class missing from the tree, a class with children, a cycle, a node with two
    parents (both named), a node listed twice.

    >>> # hierarchy.yaml:   vehicle: [airplane, automobile, ship, truck]
    >>> #                   animal: [bird, cat, deer, dog, frog, horse]
    >>> # h = load_hierarchy("hierarchy.yaml", splits.classes); h.ancestors("cat") -> ('root', 'animal')
    """
    p = Path(path)
    where = f"hierarchy file {p}"
    if not p.is_file():
        raise ConfigError(f"{where} does not exist; write a YAML file mapping each inner node to its children, "
                          "e.g. 'animal: [cat, dog]'")  # fmt: skip
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from exc
    root, edges = _validate(_as_mapping(data, where), leaves, where)
    return Hierarchy(root, edges, tuple(str(x) for x in leaves))
