"""The distillation loss against its definition, computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from imgclf.errors import ConfigError
from imgclf.export import distillation_loss


def _softmax(row: list[float], t: float) -> list[float]:
    exps = [math.exp(v / t) for v in row]
    return [e / sum(exps) for e in exps]


def _by_hand(s: list[list[float]], t: list[list[float]], y: list[int], temp: float, alpha: float) -> float:
    kl = ce = 0.0
    for srow, trow, label in zip(s, t, y, strict=True):
        ps, pt = _softmax(srow, temp), _softmax(trow, temp)
        kl += sum(q * math.log(q / p) for p, q in zip(ps, pt, strict=True))
        ce += -math.log(_softmax(srow, 1.0)[label])
    n = len(y)
    return alpha * temp**2 * kl / n + (1 - alpha) * ce / n


@pytest.mark.parametrize(("temp", "alpha"), [(4.0, 0.7), (1.0, 0.5), (2.5, 0.0), (3.0, 1.0)])
def test_matches_hand_computation(temp: float, alpha: float) -> None:
    s = [[1.0, -0.5, 2.0], [0.3, 0.1, -1.2], [-2.0, 1.5, 0.0]]
    t = [[3.0, 0.0, 1.0], [0.0, 2.0, -1.0], [-1.0, 0.5, 0.5]]
    y = [2, 0, 1]
    got = distillation_loss(torch.tensor(s), torch.tensor(t), torch.tensor(y), temperature=temp, alpha=alpha)
    assert got.item() == pytest.approx(_by_hand(s, t, y, temp, alpha), rel=1e-5)


def test_zero_when_student_equals_teacher_and_alpha_one() -> None:
    logits = torch.randn(6, 4)
    loss = distillation_loss(logits, logits.clone(), torch.zeros(6, dtype=torch.long), alpha=1.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6)


def test_gradient_reaches_student_only() -> None:
    s = torch.randn(4, 3, requires_grad=True)
    t = torch.randn(4, 3, requires_grad=True)
    distillation_loss(s, t, torch.tensor([0, 1, 2, 0])).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_bad_arguments() -> None:
    s, y = torch.randn(2, 3), torch.tensor([0, 1])
    with pytest.raises(ConfigError, match="temperature"):
        distillation_loss(s, s, y, temperature=0.0)
    with pytest.raises(ConfigError, match="alpha"):
        distillation_loss(s, s, y, alpha=1.5)
    with pytest.raises(ConfigError, match="same classes"):
        distillation_loss(s, torch.randn(2, 4), y)
