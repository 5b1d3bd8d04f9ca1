from __future__ import annotations

import pytest
import torch
from torch import nn

from imgclf.config import OptimConfig
from imgclf.optim import build_optimizer, build_scheduler, lr_factor


def test_warmup_then_cosine_to_zero() -> None:
    cfg = OptimConfig(warmup_epochs=1, schedule="cosine")
    f = [lr_factor(s, cfg, steps_per_epoch=10, epochs=5) for s in range(50)]
    assert f[0] < f[5] < f[9] <= 1.0  # linear warmup
    assert f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))  # decays monotonically
    assert f[-1] < 0.01


def test_step_schedule() -> None:
    cfg = OptimConfig(warmup_epochs=0, schedule="step", step_epochs=2, step_gamma=0.1)
    assert lr_factor(19, cfg, 10, 6) == pytest.approx(1.0)
    assert lr_factor(20, cfg, 10, 6) == pytest.approx(0.1)


def test_backbone_gets_lower_lr_and_no_decay_on_biases() -> None:
    backbone, head = nn.Linear(4, 4), nn.Linear(4, 2)
    opt = build_optimizer(list(backbone.parameters()), list(head.parameters()), OptimConfig(lr=0.1),
                          backbone_lr_scale=0.1)  # fmt: skip
    lrs = sorted({g["lr"] for g in opt.param_groups})
    assert lrs == pytest.approx([0.01, 0.1])
    assert {g["weight_decay"] for g in opt.param_groups if g["params"][0].ndim == 1} == {0.0}


def test_sgd_is_nesterov_and_scheduler_steps() -> None:
    m = nn.Linear(2, 2)
    opt = build_optimizer([], list(m.parameters()), OptimConfig(optimizer="sgd", lr=0.1, warmup_epochs=0))
    assert isinstance(opt, torch.optim.SGD) and opt.param_groups[0]["nesterov"]
    sched = build_scheduler(opt, OptimConfig(optimizer="sgd", lr=0.1, warmup_epochs=0), 5, 2)
    for _ in range(5):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
