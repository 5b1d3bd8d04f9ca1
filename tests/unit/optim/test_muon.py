"""Muon: orthogonalised steps for hidden weights, exact Nesterov SGD for the rest; the linear schedule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imgclf.config import OptimConfig
from imgclf.optim import build_optimizer, lr_factor
from imgclf.optim._muon import Muon, orthogonalise


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(16, 64), (64, 16), (64, 576)])
def test_orthogonalise_flattens_the_spectrum(shape: tuple[int, int], dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    g = 100 * torch.randn(*shape) @ torch.diag(torch.logspace(-1, 1, shape[1]))  # columns over 2 decades
    q = orthogonalise(g, dtype=dtype)
    s, raw = torch.linalg.svdvals(q.float()), torch.linalg.svdvals(g)
    assert q.shape == g.shape and q.dtype == g.dtype
    assert raw.max() > 100 and raw.max() / raw.min() > 4
    assert s.min() > 0.2 and s.max() < 1.6  # every direction moves at about the same rate


def test_orthogonalise_runs_in_bf16_only_where_bf16_is_fast(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU without bf16 instructions the iterations run in fp32 (emulated bf16 made them ~20% of the speed
    recipe's time); with them, in bf16 (as Muon's reference does): the two differ by bf16's rounding."""
    from imgclf.optim import _muon

    g = torch.randn(32, 96, generator=torch.Generator().manual_seed(0))
    fp32, bf16 = orthogonalise(g, dtype=torch.float32), orthogonalise(g, dtype=torch.bfloat16)
    assert 0 < (fp32 - bf16).abs().max() < 0.05
    for fast, expected in ((False, fp32), (True, bf16)):
        monkeypatch.setattr(_muon, "fast_bf16", lambda device, fast=fast: fast)
        assert torch.equal(orthogonalise(g), expected)


def test_sgd_groups_match_torch_nesterov_sgd_exactly() -> None:
    torch.manual_seed(0)
    a, b = torch.randn(5, requires_grad=True), None
    b = a.detach().clone().requires_grad_(True)
    ours = Muon([{"params": [a], "orthogonal": False, "lr": 0.1, "momentum": 0.85, "weight_decay": 0.01}])
    ref = torch.optim.SGD([b], lr=0.1, momentum=0.85, nesterov=True, weight_decay=0.01)
    for _ in range(5):
        for p, opt in ((a, ours), (b, ref)):
            opt.zero_grad()
            (p**3).sum().backward()
            opt.step()
    assert torch.allclose(a, b, atol=1e-6)


def test_orthogonal_groups_keep_the_norm_and_lower_the_loss() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(256, 20), torch.randint(0, 4, (256,))
    hidden, head = nn.Linear(20, 32, bias=False), nn.Linear(32, 4)
    model = nn.Sequential(hidden, nn.ReLU(), head)
    opt = build_optimizer(list(hidden.parameters()), list(head.parameters()),
                          OptimConfig(optimizer="muon", lr=0.05, momentum=0.85), batch_size=1)  # fmt: skip
    loss = nn.functional.cross_entropy
    first = loss(model(x), y).item()
    for _ in range(60):
        opt.zero_grad()
        loss(model(x), y).backward()
        opt.step()
    assert loss(model(x), y).item() < 0.7 * first
    # renormalised before every step to sqrt(out features), then one step of size ~lr: the norm stays near it
    assert abs(hidden.weight.norm().item() - 32**0.5) < 0.1 * 32**0.5


def test_build_optimizer_muon_groups() -> None:
    conv, bn, fc = nn.Conv2d(3, 8, 3, bias=True), nn.BatchNorm2d(8), nn.Linear(8, 2, bias=False)
    bn.weight.requires_grad = False  # frozen: left out
    opt = build_optimizer([*conv.parameters(), *bn.parameters()], list(fc.parameters()),
                          OptimConfig(optimizer="muon", lr=0.2), batch_size=100)  # fmt: skip
    groups = {id(p): g for g in opt.param_groups for p in g["params"]}
    assert groups[id(conv.weight)]["orthogonal"] and groups[id(conv.weight)]["lr"] == pytest.approx(0.2)
    bias_group = groups[id(conv.bias)]
    assert not bias_group["orthogonal"] and groups[id(bn.bias)] is bias_group
    assert bias_group["lr"] == pytest.approx(0.053 / 0.24 * 0.2 * 100)  # per image, times the batch
    assert groups[id(fc.weight)]["lr"] == pytest.approx(0.67 / 0.24 * 0.2 * 100)
    assert id(bn.weight) not in groups
    assert opt.param_groups[-1]["orthogonal"]  # the logged lr is optim.lr's
    # weight decay shrinks by weight_decay * batch per step at the peak rate (default 2e-6 per image)
    assert bias_group["lr"] * bias_group["weight_decay"] == pytest.approx(2e-6 * 100)


def test_linear_schedule_decays_to_zero_after_warmup() -> None:
    cfg = OptimConfig(schedule="linear", warmup_epochs=1)
    factors = [lr_factor(s, cfg, 10, 5) for s in range(50)]
    assert factors[9] < 1.0 and factors[10] == pytest.approx(1.0)
    assert factors[30] == pytest.approx(0.5)
    assert factors[-1] == pytest.approx(1 / 40)
    assert all(a >= b for a, b in zip(factors[10:], factors[11:]))
