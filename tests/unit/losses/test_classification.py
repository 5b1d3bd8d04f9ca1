from __future__ import annotations

import torch
import torch.nn.functional as F

from imgclf.losses import balanced_class_weights, build_loss


def test_ce_matches_torch_with_smoothing_and_weights() -> None:
    torch.manual_seed(0)
    logits, labels = torch.randn(16, 4), torch.randint(0, 4, (16,))
    w = torch.tensor([1.0, 2.0, 0.5, 1.5])
    ours = build_loss("ce", label_smoothing=0.1)(logits, labels)
    assert torch.allclose(ours, F.cross_entropy(logits, labels, label_smoothing=0.1), atol=1e-6)
    ours_w = build_loss("ce", class_weights=w)(logits, labels)
    assert torch.allclose(ours_w, F.cross_entropy(logits, labels, weight=w), atol=1e-6)


def test_soft_targets_equal_hard_one_hot() -> None:
    logits, labels = torch.randn(8, 3), torch.randint(0, 3, (8,))
    loss = build_loss("ce")
    assert torch.allclose(loss(logits, labels), loss(logits, F.one_hot(labels, 3).float()))


def test_focal_down_weights_easy_examples() -> None:
    easy = torch.tensor([[8.0, 0.0]])
    hard = torch.tensor([[0.2, 0.0]])
    y = torch.tensor([0])
    ce, focal = build_loss("ce"), build_loss("focal", focal_gamma=2.0)
    assert focal(easy, y) / ce(easy, y) < 0.01
    assert focal(hard, y) / ce(hard, y) > 0.2


def test_balanced_weights_are_inverse_frequency() -> None:
    w = balanced_class_weights([10, 30, 0])
    assert w[0] == 3 * w[1] and w[2] == 0
