"""Hierarchy-aware losses of Bertinetto et al., "Making Better Mistakes" (CVPR 2020): soft labels and HXE."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from imgclf.config import Hierarchy
from imgclf.errors import ConfigError
from imgclf.utils import closest


def soft_label_targets(hierarchy: Hierarchy, beta: float, *, normalise: bool = True) -> np.ndarray:
    """The soft-label target of every class ``(L, L)``: row ``y`` is ``exp(-beta * d(y, j))`` normalised over
    ``j``, where ``d`` is :meth:`Hierarchy.lca_height`, divided by the largest LCA height when ``normalise``
    (as the authors' code does, so ``beta`` means the same on shallow and deep trees).

    >>> h = Hierarchy.from_dict({"children": {"a": ["x", "y"], "b": ["z"]}, "leaves": ["x", "y", "z"]})
    >>> soft_label_targets(h, 0.0)[0].round(3).tolist(), soft_label_targets(h, 50.0)[0].round(3).tolist()
    ([0.333, 0.333, 0.333], [1.0, 0.0, 0.0])
    """
    d = hierarchy.lca_heights().astype(np.float64)  # (L, L)
    if normalise and d.max() > 0:
        d = d / d.max()
    z = -beta * d
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


class SoftLabelsLoss(nn.Module):
    """Cross-entropy against hierarchy-aware soft labels (:func:`soft_label_targets`): a mistake that stays
    close in the tree costs less. ``forward(logits (B, L), labels (B,))`` with leaves in ``hierarchy.leaves``
    order; mean over the batch. Large ``beta`` tends to plain cross-entropy.
    """

    def __init__(self, hierarchy: Hierarchy, *, beta: float = 5.0, normalise: bool = True) -> None:
        super().__init__()
        self.beta = float(beta)
        targets = torch.tensor(soft_label_targets(hierarchy, self.beta, normalise=normalise), dtype=torch.float32)
        self.register_buffer("targets", targets, persistent=False)  # (L, L)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1)  # (B, L)
        return -(self.targets[labels.long()] * log_p).sum(dim=1).mean()


class HXELoss(nn.Module):
    """Hierarchical cross-entropy: ``-sum_l lambda(C_l) log p(C_l | C_{l+1})`` along the path ``C_0`` (the true
    leaf) ``-> C_1 -> ... -> root``, where ``p(C)`` sums the flat softmax over the leaves under ``C`` and
    ``lambda(C) = exp(-alpha * level(C))``, ``level`` counting edges from the root.

    Larger ``alpha`` weighs the coarse decisions (near the root) more than the fine ones; ``alpha = 0`` is
    plain cross-entropy (the log terms telescope to ``-log p(leaf)``). The paper writes ``lambda`` with the
    node's "height"; the weights here follow the authors' released code (distance from the root), which is
    what makes larger ``alpha`` trade top-1 accuracy for milder mistakes, as reported. The weights are not
    normalised. ``forward(logits (B, L), labels (B,))``, leaves in ``hierarchy.leaves`` order; batch mean.
    Node probabilities are log-sum-exps of the log-softmax, so the loss stays finite for confident models.
    """

    def __init__(self, hierarchy: Hierarchy, *, alpha: float = 0.1) -> None:
        super().__init__()
        self.alpha = float(alpha)
        nodes = hierarchy.nodes
        row = {n: i for i, n in enumerate(nodes)}
        steps = hierarchy.depth + 1
        paths = np.full((len(hierarchy.leaves), steps), row[hierarchy.root], dtype=np.int64)  # padded with root
        weights = np.zeros((len(hierarchy.leaves), steps - 1), dtype=np.float32)
        for j, leaf in enumerate(hierarchy.leaves):
            path = [leaf, *reversed(hierarchy.ancestors(leaf))]  # leaf, parent, ..., root
            paths[j, : len(path)] = [row[n] for n in path]
            weights[j, : len(path) - 1] = [math.exp(-self.alpha * hierarchy.level(n)) for n in path[:-1]]
        self.register_buffer("members", torch.from_numpy(hierarchy.leaf_matrix > 0), persistent=False)  # (N, L)
        self.register_buffer("paths", torch.from_numpy(paths), persistent=False)  # (L, D + 1)
        self.register_buffer("weights", torch.from_numpy(weights), persistent=False)  # (L, D)

    def forward(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        labels = labels.long()
        log_p = F.log_softmax(logits.float(), dim=1)  # (B, L)
        inside = self.members[self.paths[labels]]  # (B, D + 1, L): the leaves under each node of the path
        log_node = torch.logsumexp(log_p[:, None, :].masked_fill(~inside, -math.inf), dim=2)  # (B, D + 1)
        log_cond = log_node[:, :-1] - log_node[:, 1:]  # (B, D) log p(C_l | C_{l+1}); 0 on the root padding
        return -(self.weights[labels] * log_cond).sum(dim=1).mean()


HIERARCHICAL_LOSSES = {"soft-labels": (SoftLabelsLoss, ("beta", "normalise")), "hxe": (HXELoss, ("alpha",))}


def build_hierarchical_loss(kind: str, hierarchy: Hierarchy, **params: Any) -> nn.Module:
    """A hierarchy-aware loss taking ``(logits (B, n_leaves), labels (B,))``: ``"soft-labels"`` (``beta``,
    default 5, and ``normalise``) or ``"hxe"`` (``alpha``, default 0.1), after Bertinetto et al. 2020.

    >>> h = Hierarchy.from_dict({"children": {"a": ["x", "y"], "b": ["z"]}, "leaves": ["x", "y", "z"]})
    >>> loss = build_hierarchical_loss("hxe", h, alpha=0.0)  # alpha 0: plain cross-entropy
    >>> round(float(loss(torch.zeros(1, 3), torch.tensor([2]))), 4) == round(math.log(3), 4)
    True
    """
    if kind not in HIERARCHICAL_LOSSES:
        raise ConfigError(f"hierarchical loss {kind!r} is not valid.{closest(kind, HIERARCHICAL_LOSSES)} Choose "
                          f"{' or '.join(HIERARCHICAL_LOSSES)}")  # fmt: skip
    cls, allowed = HIERARCHICAL_LOSSES[kind]
    for key, value in params.items():
        if key not in allowed:
            raise ConfigError(f"hierarchical loss {kind!r} has no parameter {key!r}.{closest(key, allowed)} Valid: "
                              f"{', '.join(allowed)}")  # fmt: skip
        if key in ("alpha", "beta") and not (isinstance(value, (int, float)) and value >= 0):
            raise ConfigError(f"hierarchical loss {kind!r}: {key}={value!r} must be a number >= 0")
    return cls(hierarchy, **params)
