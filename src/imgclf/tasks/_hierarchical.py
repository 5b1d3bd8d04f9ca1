"""Hierarchical classification: a softmax over the leaves of a class tree, consistent by construction.

The probability of an inner node is the sum of its leaves' probabilities, so a predicted path can never
contradict itself. When the best leaf is unsure, the answer backs off to its deepest ancestor whose probability
reaches the stored threshold ("vehicle" rather than a coin-flip between "truck" and "automobile").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from torch import nn

from imgclf import losses as L
from imgclf import metrics as M
from imgclf.config import Hierarchy, TrainConfig
from imgclf.errors import ConfigError
from imgclf.tasks._base import Answer, TaskMetrics
from imgclf.tasks._single import SingleLabelTask

DEFAULT_BACKOFF = 0.5


class HierarchicalTask(SingleLabelTask):
    """Leaves of a :class:`~imgclf.config.Hierarchy` as classes; answers carry their ancestors and back off.

    >>> h = {"children": {"animal": ["cat", "dog"], "vehicle": ["car"]}, "leaves": ["car", "cat", "dog"]}
    >>> a = HierarchicalTask(("car", "cat", "dog"), hierarchy=h).decode(np.array([[0.1, 0.45, 0.45]]))[0]
    >>> a.label, a.leaf, a.ancestors
    ('animal', 'cat', ('root', 'animal'))
    """

    kind = "hierarchical"

    def __init__(self, classes: Sequence[str], hierarchy: Hierarchy | Mapping[str, Any],
                 backoff_threshold: float = DEFAULT_BACKOFF) -> None:  # fmt: skip
        super().__init__(classes)
        self.hierarchy = hierarchy if isinstance(hierarchy, Hierarchy) else Hierarchy.from_dict(hierarchy)
        if tuple(self.hierarchy.leaves) != self.classes:
            raise ConfigError("the hierarchy's leaves must be the model's classes in the same order")
        if not 0 < backoff_threshold <= 1:
            raise ConfigError(f"backoff_threshold={backoff_threshold} must be in (0, 1]")
        self.backoff_threshold = float(backoff_threshold)
        self._nodes = self.hierarchy.nodes
        self._matrix = self.hierarchy.leaf_matrix  # (n_nodes, n_leaves)

    def build_loss(self, cfg: TrainConfig, targets: np.ndarray) -> nn.Module:
        if cfg.hierarchy_loss == "none":
            return super().build_loss(cfg, targets)
        return L.build_hierarchical_loss(cfg.hierarchy_loss, self.hierarchy)

    def node_probabilities(self, probs: np.ndarray) -> np.ndarray:
        """Every node's probability ``(N, n_nodes)`` (order: ``hierarchy.nodes``): the sum of its leaves."""
        return np.asarray(probs, dtype=np.float64) @ self._matrix.T.astype(np.float64)

    def decode(self, probs: np.ndarray, *, top_k: int = 5, ood: np.ndarray | None = None,
               threshold: float | None = None, reject: bool = True, backoff: bool = True) -> list[Answer]:  # fmt: skip
        answers = super().decode(probs, top_k=top_k, ood=ood, threshold=threshold, reject=reject)
        node_p = dict(zip(self._nodes, self.node_probabilities(probs).T))  # node -> (N,)
        out = []
        for i, answer in enumerate(answers):
            leaf = answer.topk[0][0]
            ancestors = self.hierarchy.ancestors(leaf)
            label, score = answer.label, answer.score
            if backoff and label != "unknown" and score is not None and score < self.backoff_threshold:
                for node in reversed(ancestors):  # deepest first; the root (probability 1) always qualifies
                    if node_p[node][i] >= self.backoff_threshold:
                        label, score = node, float(node_p[node][i])
                        break
            out.append(Answer(label, score, answer.topk, answer.unknown, answer.ood_score, ancestors=ancestors,
                              leaf=leaf))  # fmt: skip
        return out

    def metrics(self, probs: np.ndarray, targets: np.ndarray, *, n_resamples: int = 1000,
                seed: int = 0) -> TaskMetrics:  # fmt: skip
        flat = super().metrics(probs, targets, n_resamples=n_resamples, seed=seed)
        report = M.hierarchical_metrics(probs.argmax(1), targets, self.hierarchy, list(self.classes))
        d = report.to_dict()
        values = {**flat.values, **{k: v for k, v in d.items() if isinstance(v, (int, float)) and k != "n"}}
        detail = {**flat.detail, **{k: v for k, v in d.items() if not isinstance(v, (int, float))}}
        return TaskMetrics(values, flat.intervals, detail)

    def summary(self, probs: np.ndarray, targets: np.ndarray) -> dict[str, float]:
        out = super().summary(probs, targets)
        report = M.hierarchical_metrics(probs.argmax(1), targets, self.hierarchy, list(self.classes))
        d = report.to_dict()
        return {**out, "hierarchical_f1": float(d["hierarchical_f1"]), "mistake_severity": float(d["mistake_severity"])}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "hierarchy": self.hierarchy.to_dict(), "backoff_threshold": self.backoff_threshold}
