"""Attacks against their definitions on a small model trained in the fixture (see conftest.py)."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from imgclf.errors import ConfigError, DataError
from imgclf.robustness import ATTACKS, NormalizedModel, RobustCurve, apgd, fgsm, pgd, robust_accuracy_curve

from .conftest import MEAN, STD, SmallMLP, Trained

LINF_EPS = [0.0, 0.05, 0.1, 0.15, 0.2, 0.3]
L2_EPS = [0.0, 0.5, 1.0, 2.0, 3.0, 5.0]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def test_normalized_model_normalises_then_calls_the_model() -> None:
    inner = SmallMLP().eval()
    wrapped = NormalizedModel(inner, MEAN, STD)
    x = torch.rand(4, 3, 8, 8)
    expected = inner((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1))
    assert torch.allclose(wrapped(x), expected, atol=1e-6)
    with pytest.raises(ConfigError, match="std"):
        NormalizedModel(inner, MEAN, (0.2, 0.0, 0.2))
    with pytest.raises(ConfigError, match="one mean and one std per channel"):
        NormalizedModel(inner, MEAN, (0.2, 0.2))


def test_the_fixture_model_is_accurate(trained: Trained) -> None:
    assert trained.clean_accuracy >= 0.95


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "apgd"])
def test_eps_zero_gives_clean_accuracy_and_unchanged_images(trained: Trained, attack: str) -> None:
    curve = robust_accuracy_curve(trained.model, (trained.x, trained.y), [0.0], attack)
    assert curve.accuracies == (trained.clean_accuracy,)
    assert curve.clean_accuracy == trained.clean_accuracy
    assert torch.equal(ATTACKS[attack](trained.model, trained.x, trained.y, 0.0), trained.x)


@pytest.mark.parametrize(("attack", "norm", "epsilons"), [("fgsm", "linf", LINF_EPS), ("pgd", "linf", LINF_EPS),
                                                          ("apgd", "linf", LINF_EPS), ("pgd", "l2", L2_EPS),
                                                          ("apgd", "l2", L2_EPS)])  # fmt: skip
def test_accuracy_falls_monotonically_with_eps(trained: Trained, attack: str, norm: str, epsilons: list) -> None:
    kwargs = {} if attack == "fgsm" else {"norm": norm, "steps": 10, "generator": torch.Generator().manual_seed(0)}
    # cumulative=False: every epsilon is attacked independently, so monotonicity is the attack's own doing
    curve = robust_accuracy_curve(trained.model, (trained.x, trained.y), epsilons, attack, attack_kwargs=kwargs,
                                  cumulative=False)  # fmt: skip
    acc = curve.accuracies
    assert all(b <= a for a, b in zip(acc, acc[1:])), acc
    assert acc[-1] <= 0.5 * acc[0], f"the largest eps should fool most examples: {acc}"


def test_pgd_is_at_least_as_strong_as_fgsm_and_apgd_as_pgd(trained: Trained) -> None:
    data = (trained.x, trained.y)
    common = {"steps": 10, "generator": torch.Generator().manual_seed(0)}
    f = robust_accuracy_curve(trained.model, data, LINF_EPS, "fgsm", cumulative=False)
    p = robust_accuracy_curve(trained.model, data, LINF_EPS, "pgd", attack_kwargs=common, cumulative=False)
    common["generator"] = torch.Generator().manual_seed(0)
    a = robust_accuracy_curve(trained.model, data, LINF_EPS, "apgd", attack_kwargs=common, cumulative=False)
    for eps, fa, pa, aa in zip(LINF_EPS, f.accuracies, p.accuracies, a.accuracies, strict=True):
        assert pa <= fa, f"PGD weaker than FGSM at eps={eps}: {pa} > {fa}"
        assert aa <= pa + 0.02, f"APGD weaker than PGD at the same 10-step budget, eps={eps}: {aa} > {pa}"
    assert sum(p.accuracies) < sum(f.accuracies), "PGD never beat FGSM: the iterations do nothing"


def test_l2_pgd_beats_a_random_direction_of_the_same_size(trained: Trained) -> None:
    g = torch.Generator().manual_seed(0)
    noise = torch.randn(trained.x.shape, generator=g)
    noise = noise / noise.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    x_rand = (trained.x + 2.0 * noise).clamp(0, 1)
    x_adv = pgd(trained.model, trained.x, trained.y, 2.0, norm="l2", steps=10, generator=g)
    assert accuracy(trained.model, x_adv, trained.y) <= accuracy(trained.model, x_rand, trained.y) - 0.3


@pytest.mark.parametrize(
    ("attack", "norm", "eps"),
    [("fgsm", "linf", 0.1), ("pgd", "linf", 0.1), ("apgd", "linf", 0.1), ("pgd", "l2", 1.0), ("apgd", "l2", 1.0)],
)
def test_perturbations_stay_in_the_eps_ball_and_in_pixel_range(trained: Trained, attack: str, norm: str,
                                                               eps: float) -> None:  # fmt: skip
    x = trained.x.clone()
    x[:, :, :2] = 1.0  # saturated rows: the step must be clipped back into [0, 1]
    x[:, :, -2:] = 0.0
    kwargs = {} if attack == "fgsm" else {"norm": norm, "steps": 5}
    x_adv = ATTACKS[attack](trained.model, x, trained.y, eps, **kwargs)
    delta = x_adv - x
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert float(x_adv.min()) >= 0.0 and float(x_adv.max()) <= 1.0
    if norm == "linf":
        assert float(delta.abs().max()) <= eps + 1e-6
        assert float(delta.abs().max()) >= 0.5 * eps, "the attack barely moved"
    else:
        norms = delta.flatten(1).norm(dim=1)
        assert float(norms.max()) <= eps + 1e-5
        assert float(norms.median()) >= 0.5 * eps, "the attack barely moved"


class ModeRecorder(nn.Module):
    """Wraps a model and records the ``training`` flag at every forward pass."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.modes: list[bool] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.modes.append(self.training)
        return self.inner(x)


@pytest.mark.parametrize("attack", ["fgsm", "pgd", "apgd"])
def test_attacks_run_in_eval_mode_restore_the_mode_and_leave_no_parameter_grads(trained: Trained,
                                                                                 attack: str) -> None:  # fmt: skip
    recorder = ModeRecorder(trained.model).train()
    x_adv = ATTACKS[attack](recorder, trained.x[:16], trained.y[:16], 0.1)
    assert recorder.modes and not any(recorder.modes), "the model was not in eval mode during the attack"
    assert recorder.training and trained.model.training, "the model's train/eval mode was not restored"
    trained.model.eval()
    assert all(p.grad is None for p in recorder.parameters()), "the attack left gradients on the parameters"
    assert not x_adv.requires_grad


def test_attacks_work_inside_no_grad_blocks(trained: Trained) -> None:
    with torch.no_grad():
        x_adv = pgd(trained.model, trained.x, trained.y, 0.3, steps=5)
    assert accuracy(trained.model, x_adv, trained.y) < trained.clean_accuracy


def test_random_start_repeats_with_a_seeded_generator(trained: Trained) -> None:
    def run(seed: int) -> torch.Tensor:
        return pgd(trained.model, trained.x, trained.y, 0.1, steps=3, generator=torch.Generator().manual_seed(seed))

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))


@pytest.mark.parametrize("attack", [pgd, apgd])
def test_restarts_keep_the_worst_case_per_example(trained: Trained, attack) -> None:
    def fooled(restarts: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(0)  # the first restart draws the same start either way
        x_adv = attack(trained.model, trained.x, trained.y, 0.15, steps=3, restarts=restarts, generator=g)
        with torch.no_grad():
            return trained.model(x_adv).argmax(1) != trained.y

    one, three = fooled(1), fooled(3)
    assert bool((three | ~one).all()), "an example fooled with one restart was not fooled with three"
    assert int(three.sum()) >= int(one.sum())


class NarrowWell(nn.Module):
    """Two classes; class 1 wins only while the mean pixel is within about 0.03 of 0.6."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))  # (B,)
        return torch.stack([torch.zeros_like(m), 1 - 1000 * (m - 0.6) ** 2], dim=1)  # (B, 2)


def well_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.full((4, 1, 8, 8), 0.5), torch.zeros(4, dtype=torch.long)  # mean 0.5: class 0, 0.1 from the well


def test_pgd_keeps_the_worst_iterate_not_the_last() -> None:
    # steps of 0.095 from 0.5: 0.595 (inside the well, fooled), then overshoot to 0.69 (outside again)
    x, y = well_inputs()
    x_adv = pgd(NarrowWell(), x, y, 0.3, steps=2, step_size=0.095, random_start=False)
    assert torch.allclose(x_adv.mean(dim=(1, 2, 3)), torch.full((4,), 0.595))
    assert bool((NarrowWell()(x_adv).argmax(1) == 1).all())


def test_apgd_halves_its_step_to_find_a_narrow_well_that_a_fixed_step_misses() -> None:
    x, y = well_inputs()
    fixed = pgd(NarrowWell(), x, y, 0.3, steps=10, step_size=0.6, generator=torch.Generator().manual_seed(0))
    adaptive = apgd(NarrowWell(), x, y, 0.3, steps=10, generator=torch.Generator().manual_seed(0))  # starts at 0.6
    assert accuracy(NarrowWell(), fixed, y) == 1.0, "the well should be too narrow for fixed steps of 2 * eps"
    assert accuracy(NarrowWell(), adaptive, y) == 0.0


def test_fgsm_is_one_signed_gradient_step(trained: Trained) -> None:
    x, y = trained.x[:8], trained.y[:8]
    x_req = x.clone().requires_grad_(True)
    loss = nn.functional.cross_entropy(trained.model(x_req), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x_req)
    expected = (x + 0.05 * grad.sign()).clamp(0, 1)
    assert torch.allclose(fgsm(trained.model, x, y, 0.05), expected)


def test_curve_accepts_a_loader_and_matches_tensors(trained: Trained) -> None:
    loader = DataLoader(TensorDataset(trained.x, trained.y), batch_size=50)
    from_loader = robust_accuracy_curve(trained.model, loader, [0.1, 0.0], "fgsm")
    from_tensors = robust_accuracy_curve(trained.model, (trained.x, trained.y), [0.0, 0.1], "fgsm", batch_size=7)
    assert from_loader.epsilons == (0.0, 0.1)  # sorted
    assert from_loader.accuracies == from_tensors.accuracies
    assert from_loader.n == len(trained.y)
    assert robust_accuracy_curve(trained.model, loader, [0.1], "fgsm", max_samples=60).n == 60


def test_cumulative_curve_counts_an_example_fooled_at_small_eps_as_fooled_at_larger_eps(trained: Trained) -> None:
    data = (trained.x, trained.y)
    kwargs = {"steps": 3, "generator": torch.Generator().manual_seed(0)}
    raw = robust_accuracy_curve(trained.model, data, LINF_EPS, "pgd", attack_kwargs=kwargs, cumulative=False)
    kwargs["generator"] = torch.Generator().manual_seed(0)
    cum = robust_accuracy_curve(trained.model, data, LINF_EPS, "pgd", attack_kwargs=kwargs, cumulative=True)
    assert all(c <= r for c, r in zip(cum.accuracies, raw.accuracies))
    assert all(b <= a for a, b in zip(cum.accuracies, cum.accuracies[1:]))


def test_curve_to_dict_is_json_ready(trained: Trained) -> None:
    curve = robust_accuracy_curve(trained.model, (trained.x, trained.y), [0, 0.1], "pgd",
                                  attack_kwargs={"norm": "linf", "steps": 2})  # fmt: skip
    data = json.loads(json.dumps(curve.to_dict()))
    assert data["attack"] == "pgd" and data["norm"] == "linf" and data["options"]["steps"] == 2
    assert data["epsilons"] == [0.0, 0.1] and len(data["accuracies"]) == 2
    assert isinstance(curve, RobustCurve) and curve.accuracy_at(0.1) == data["accuracies"][1]
    with pytest.raises(ConfigError, match="not swept"):
        curve.accuracy_at(0.5)


def test_curve_accepts_a_custom_attack_callable(trained: Trained) -> None:
    def do_nothing(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
        return x

    curve = robust_accuracy_curve(trained.model, (trained.x, trained.y), [0.0, 0.5], do_nothing)
    assert curve.attack == "do_nothing" and curve.accuracies == (trained.clean_accuracy,) * 2


def test_bad_arguments_fail_early_with_a_hint(trained: Trained) -> None:
    data = (trained.x, trained.y)
    with pytest.raises(ConfigError, match="Did you mean 'pgd'"):
        robust_accuracy_curve(trained.model, data, [0.1], "pdg")
    with pytest.raises(ConfigError, match="does not take"):
        robust_accuracy_curve(trained.model, data, [0.1], "fgsm", attack_kwargs={"norm": "l2"})
    with pytest.raises(ConfigError, match="non-negative"):
        robust_accuracy_curve(trained.model, data, [-0.1], "fgsm")
    with pytest.raises(ConfigError, match="linf"):
        pgd(trained.model, trained.x, trained.y, 0.1, norm="l1")
    with pytest.raises(DataError, match="NormalizedModel"):
        pgd(trained.model, (trained.x - 0.5) / 0.25, trained.y, 0.1)  # normalised images, not pixels
    with pytest.raises(DataError, match="labels"):
        fgsm(trained.model, trained.x, trained.y[:3], 0.1)
