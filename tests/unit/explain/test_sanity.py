"""Model-randomisation sanity check (Adebayo et al. 2018) and the rank correlation behind it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from imgclf.explain import cascading_randomization, randomization_check, spearman

from .conftest import MarkerTask


@pytest.mark.parametrize(("method", "options"), [("smoothgrad", {"samples": 8}), ("gradcam", {})])
def test_trained_and_randomised_models_disagree(marker_task: MarkerTask, method: str, options: dict) -> None:
    model = marker_task.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    rho = randomization_check(model, marker_task.images[:8], method, **options)
    assert rho < 0.5
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the caller's model is untouched
    assert torch.equal(torch.get_rng_state(), rng)


class InputOnly(nn.Module):
    """Scores depend on the weights only through one scale, so gradient maps ignore the weights."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        energy = x.pow(2).sum(dim=(1, 2, 3))  # (B,)
        return self.scale * torch.stack([energy, -energy], dim=1)  # (B, 2)


def test_weight_blind_maps_fail_the_check() -> None:
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert randomization_check(InputOnly(), images, "integrated-gradients", target=0, steps=4) > 0.99


def test_spearman_known_values() -> None:
    a = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert spearman(a, a * 10) == pytest.approx(1.0)
    assert spearman(a, -a) == pytest.approx(-1.0)
    assert spearman(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([10.0, 20.0, 15.0])) == pytest.approx(0.5)
    # ties get average ranks: ranks (1.5, 1.5, 3, 4) vs (1, 2, 3, 4) -> 0.9486...
    assert spearman(torch.tensor([0.0, 0.0, 1.0, 2.0]), a) == pytest.approx(0.9486832980505138)
    assert spearman(torch.zeros(4), a) == 0.0


class Blind(nn.Module):
    """Scores that ignore the image: every gradient map is empty (all zero)."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Linear(1, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.ones(x.shape[0], 1, device=x.device)) + 0 * x.sum(dim=(1, 2, 3))[:, None]  # (B, 2)


@pytest.mark.parametrize("method", ["smoothgrad", "integrated-gradients"])
def test_an_empty_map_fails_the_check(method: str) -> None:
    images = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    options = {"samples": 4} if method == "smoothgrad" else {"steps": 4}
    assert randomization_check(Blind(), images, method, **options) == 1.0  # was 0: "uncorrelated", a pass
    res = cascading_randomization(Blind(), images, method, **options)
    assert res.flat_maps == 3 and not res.passed


def test_cascade_randomises_from_the_output_side_down_and_a_learned_map_passes(marker_task: MarkerTask) -> None:
    model = marker_task.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = cascading_randomization(model, marker_task.images[:8], "gradcam")
    owners = [n for n, m in model.named_modules() if next(m.parameters(recurse=False), None) is not None]
    assert res.layers[0].split("+")[0] == owners[-1]  # the classifier goes first
    assert sorted(n for step in res.layers for n in step.split("+")) == sorted(owners)
    assert res.flat_maps == 0 and res.passed and res.correlation < 0.5
    assert len(res.correlations) == len(res.layers) >= 2
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert res.to_dict()["steps"][-1]["correlation"] == res.correlation


def test_weight_blind_maps_fail_the_cascade() -> None:
    images = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    res = cascading_randomization(InputOnly(), images, "integrated-gradients", target=0, steps=4)
    assert not res.passed and res.correlation > 0.99 and res.flat_maps == 0
