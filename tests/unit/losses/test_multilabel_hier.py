"""Multi-label losses (BCE, timm's ASL, pos_weight) and the hierarchy-aware losses against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from imgclf.config import Hierarchy
from imgclf.errors import ConfigError
from imgclf.losses import build_hierarchical_loss, build_loss, multilabel_pos_weights, soft_label_targets

# life -> animal -> mammal -> {cat, dog}; animal -> bird -> {owl}; life -> plant -> {oak}   (unbalanced)
DEEP = Hierarchy.from_dict({"children": {"life": ["animal", "plant"], "animal": ["mammal", "bird"],
                                         "mammal": ["cat", "dog"], "bird": ["owl"], "plant": ["oak"]},
                            "leaves": ["cat", "dog", "oak", "owl"]})  # fmt: skip
SMALL = Hierarchy.from_dict({"children": {"a": ["x", "y"], "b": ["z"]}, "leaves": ["x", "y", "z"]})


# -- multi-label ---------------------------------------------------------------------------------------------------
def test_bce_is_torch_bce_with_pos_weight_and_smoothing() -> None:
    torch.manual_seed(0)
    logits, y = torch.randn(6, 4), (torch.rand(6, 4) > 0.6).float()
    w = torch.tensor([1.0, 2.0, 0.5, 4.0])
    ours = build_loss("bce", pos_weight=w)(logits, y)
    assert torch.allclose(ours, F.binary_cross_entropy_with_logits(logits, y, pos_weight=w), atol=1e-6)
    smoothed = build_loss("bce", label_smoothing=0.2)(logits, y)
    assert torch.allclose(smoothed, F.binary_cross_entropy_with_logits(logits, y * 0.8 + 0.1), atol=1e-6)


def _asl_by_definition(x: float, y: int, gamma_neg: float = 4, gamma_pos: float = 1, clip: float = 0.05,
                       w: float = 1.0) -> float:  # fmt: skip
    """Ridnik et al. 2021, one entry: L+ = (1 - p)^g+ log p ; L- = p_m^g- log(1 - p_m), p_m = max(p - m, 0)."""
    p = 1 / (1 + math.exp(-x))
    if y:
        return -w * (1 - p) ** gamma_pos * math.log(p)
    pm = max(p - clip, 0.0)
    return -(pm**gamma_neg) * math.log(1 - pm)


def test_asl_matches_its_definition_summed_over_classes_and_averaged_over_the_batch() -> None:
    x = torch.tensor([[2.0, -1.0, 0.3], [-0.5, 1.5, -3.0]])
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    w = [1.0, 1.0, 3.0]
    expected = sum(_asl_by_definition(float(x[i, j]), int(y[i, j]), w=w[j]) for i in range(2) for j in range(3)) / 2
    got = build_loss("asl", pos_weight=torch.tensor(w))(x, y)
    assert float(got) == pytest.approx(expected, rel=1e-5)
    # ASL cares less about easy negatives than BCE does: a batch of clear negatives costs almost nothing.
    easy = torch.full((4, 3), -2.0)
    assert float(build_loss("asl")(easy, torch.zeros(4, 3))) < 0.01 * float(build_loss("bce")(easy, torch.zeros(4, 3)))


def test_pos_weights_from_counts_and_loss_errors() -> None:
    y = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [1, 0, 0]])
    assert multilabel_pos_weights(y).tolist() == [pytest.approx(1 / 3), 3.0, 1.0]  # no positives: 1
    assert multilabel_pos_weights(torch.tensor(y), max_weight=2.0).tolist()[1] == 2.0
    with pytest.raises(ConfigError, match="choose ce or focal .*bce or asl"):
        build_loss("bc")
    with pytest.raises(ConfigError, match="pos_weight"):
        build_loss("bce", class_weights=torch.ones(3))
    with pytest.raises(ConfigError, match="class_weights, not pos_weight"):
        build_loss("ce", pos_weight=torch.ones(3))
    with pytest.raises(ValueError, match=r"\(B, C\) 0/1 targets"):
        build_loss("bce")(torch.zeros(2, 3), torch.tensor([0, 1]))


# -- soft labels ---------------------------------------------------------------------------------------------------
def test_soft_labels_match_their_definition() -> None:
    beta = 3.0
    # LCA heights from x: x 0, y 1 (siblings), z 2 (through the root); normalised by the largest (2).
    row = np.exp(-beta * np.array([0.0, 0.5, 1.0]))
    assert soft_label_targets(SMALL, beta)[0] == pytest.approx(row / row.sum())
    raw = np.exp(-beta * np.array([0.0, 1.0, 2.0]))
    assert soft_label_targets(SMALL, beta, normalise=False)[0] == pytest.approx(raw / raw.sum())
    logits = torch.tensor([[1.0, 0.5, -1.0], [0.0, 2.0, 0.3]])
    labels = torch.tensor([0, 2])
    log_p = F.log_softmax(logits, dim=1).numpy()
    t = soft_label_targets(SMALL, beta)
    expected = -(t[[0, 2]] * log_p).sum(axis=1).mean()
    assert float(build_hierarchical_loss("soft-labels", SMALL, beta=beta)(logits, labels)) == pytest.approx(expected)
    huge = build_hierarchical_loss("soft-labels", SMALL, beta=200.0)(logits, labels)
    assert float(huge) == pytest.approx(float(F.cross_entropy(logits, labels)), abs=1e-5)  # beta -> inf: CE


def test_hierarchical_losses_punish_a_far_mistake_more_than_a_near_one() -> None:
    label = torch.tensor([0])  # cat
    near = torch.tensor([[0.0, 4.0, 0.0, 0.0]])  # confident "dog": same mammal parent
    far = torch.tensor([[0.0, 0.0, 4.0, 0.0]])  # confident "oak": a plant
    losses = [build_hierarchical_loss("soft-labels", DEEP, beta=4.0), build_hierarchical_loss("hxe", DEEP, alpha=0.5)]
    for loss in losses:
        assert float(loss(near, label)) < float(loss(far, label))
    ce = torch.nn.CrossEntropyLoss()
    assert float(ce(near, label)) == pytest.approx(float(ce(far, label)))  # plain CE cannot tell them apart


# -- HXE -----------------------------------------------------------------------------------------------------------
def _hxe_by_definition(p: np.ndarray, leaf: str, alpha: float) -> float:
    """-sum over the path C_0 = leaf -> ... -> root of exp(-alpha * level(C_l)) log p(C_l | C_{l+1})."""
    leaves = DEEP.leaves

    def prob(node: str) -> float:
        return sum(p[leaves.index(x)] for x in DEEP.leaves_under(node))

    path = [leaf, *reversed(DEEP.ancestors(leaf))]
    return -sum(math.exp(-alpha * DEEP.level(c)) * math.log(prob(c) / prob(up)) for c, up in zip(path, path[1:]))


def test_hxe_matches_its_definition_on_an_unbalanced_tree() -> None:
    logits = torch.tensor([[0.2, -1.0, 0.5, 1.0], [2.0, 0.1, -0.3, 0.0], [-1.0, 0.0, 3.0, 0.5]])
    labels = torch.tensor([0, 3, 2])  # cat (depth 3), owl (depth 3, only child of bird), oak (depth 2)
    p = torch.softmax(logits, dim=1).double().numpy()
    for alpha in (0.0, 0.3, 1.0):
        expected = np.mean([_hxe_by_definition(p[i], DEEP.leaves[int(y)], alpha) for i, y in enumerate(labels)])
        got = build_hierarchical_loss("hxe", DEEP, alpha=alpha)(logits, labels)
        assert float(got) == pytest.approx(expected, rel=1e-5)
    zero = build_hierarchical_loss("hxe", DEEP, alpha=0.0)(logits, labels)
    assert float(zero) == pytest.approx(float(F.cross_entropy(logits, labels)), rel=1e-5)  # alpha 0: CE


def test_hxe_is_finite_for_confident_logits_and_has_gradients() -> None:
    logits = torch.tensor([[80.0, -80.0, -80.0, -80.0]], requires_grad=True)
    loss = build_hierarchical_loss("hxe", DEEP, alpha=0.2)(logits, torch.tensor([2]))  # confidently wrong
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() > 50 and torch.isfinite(logits.grad).all()


def test_build_hierarchical_loss_errors() -> None:
    with pytest.raises(ConfigError, match="'hex' is not valid. Did you mean 'hxe'"):
        build_hierarchical_loss("hex", SMALL)
    with pytest.raises(ConfigError, match="no parameter 'beta'.*Valid: alpha"):
        build_hierarchical_loss("hxe", SMALL, beta=1.0)
    with pytest.raises(ConfigError, match="alpha=-1 must be a number >= 0"):
        build_hierarchical_loss("hxe", SMALL, alpha=-1)
