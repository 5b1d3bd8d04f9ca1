"""Carlini-Wagner L2 against its definition, on the small model trained in conftest.py."""

from __future__ import annotations

import pytest
import torch

from imgclf.errors import ConfigError
from imgclf.robustness import ATTACKS, cw_curve, cw_l2, pgd, robust_accuracy_curve

from .conftest import Trained


@pytest.fixture(scope="module")
def cw(trained: Trained):
    return cw_l2(trained.model, trained.x[:48], trained.y[:48], steps=60, search_steps=5)


def test_every_returned_example_is_misclassified_and_its_norm_is_its_distance(trained: Trained, cw) -> None:
    x, y = trained.x[:48], trained.y[:48]
    assert cw.success.float().mean() >= 0.95, "C&W should fool almost every example of an undefended model"
    with torch.no_grad():
        pred = trained.model(cw.adversarial).argmax(1)
    assert bool((pred[cw.success] != y[cw.success]).all())
    dist = (cw.adversarial - x).flatten(1).norm(dim=1)
    assert torch.allclose(dist[cw.success], cw.norms[cw.success], atol=1e-4)
    assert torch.equal(cw.adversarial[~cw.success], x[~cw.success])
    assert float(cw.adversarial.min()) >= 0.0 and float(cw.adversarial.max()) <= 1.0


def test_cw_finds_smaller_perturbations_than_pgd_l2_needs(trained: Trained, cw) -> None:
    x, y = trained.x[:48], trained.y[:48]
    grid = [0.1 * i for i in range(1, 41)]
    minimal = torch.full((48,), float("inf"))
    for eps in grid:  # the smallest radius at which PGD-L2 succeeds, per example
        x_adv = pgd(trained.model, x, y, eps, norm="l2", steps=20, generator=torch.Generator().manual_seed(0))
        with torch.no_grad():
            fooled = trained.model(x_adv).argmax(1) != y
        minimal = torch.where(fooled & minimal.isinf(), torch.tensor(eps), minimal)
    assert float(cw.norms.median()) < float(minimal.median()), (cw.norms.median(), minimal.median())


def test_confidence_buys_a_margin_at_a_larger_distance(trained: Trained, cw) -> None:
    x, y = trained.x[:48], trained.y[:48]
    strong = cw_l2(trained.model, x, y, steps=60, search_steps=5, confidence=2.0)
    both = strong.success & cw.success
    with torch.no_grad():
        logits = trained.model(strong.adversarial[both])
    true = logits.gather(1, y[both, None]).squeeze(1)
    other = logits.scatter(1, y[both, None], -float("inf")).amax(1)
    assert bool((other - true >= 2.0 - 1e-4).all())
    assert float(strong.norms[both].median()) > float(cw.norms[both].median())


def test_the_curve_from_one_run_matches_the_registry_attack_per_eps(trained: Trained) -> None:
    x, y = trained.x[:24], trained.y[:24]
    kw = {"steps": 30, "search_steps": 3}
    curve = cw_curve(trained.model, (x, y), [1.0, 0.0, 3.0], attack_kwargs=kw)
    assert curve.epsilons == (0.0, 1.0, 3.0) and curve.attack == "cw" and curve.norm == "l2"
    assert curve.accuracies[0] == pytest.approx(trained.model(x).argmax(1).eq(y).float().mean().item())
    assert curve.accuracies[0] >= curve.accuracies[1] >= curve.accuracies[2]
    per_eps = robust_accuracy_curve(trained.model, (x, y), [0.0, 1.0, 3.0], ATTACKS["cw"], attack_kwargs=kw)
    assert per_eps.accuracies == pytest.approx(curve.accuracies)
    assert curve.options["median_l2"] > 0


def test_cw_leaves_no_parameter_grads_and_checks_its_arguments(trained: Trained) -> None:
    trained.model.zero_grad(set_to_none=True)
    cw_l2(trained.model, trained.x[:4], trained.y[:4], steps=3, search_steps=1)
    assert all(p.grad is None for p in trained.model.parameters())
    with pytest.raises(ConfigError, match="steps"):
        cw_l2(trained.model, trained.x[:4], trained.y[:4], steps=0)
