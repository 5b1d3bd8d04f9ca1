"""Randomized smoothing against Cohen et al.'s definitions, and the noise augmentation that trains its base."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from imgclf.errors import ConfigError
from imgclf.robustness import (
    ABSTAIN,
    GaussianNoiseAugment,
    NormalizedModel,
    SmoothedClassifier,
    certified_accuracy,
    clopper_pearson_lower,
    pgd,
)

from .conftest import MEAN, STD, SmallMLP, prototype_images

SIGMA = 0.25


@pytest.fixture(scope="module")
def noisy_model(_one_thread: None) -> NormalizedModel:
    """The conftest MLP trained on images with N(0, 0.25^2) pixel noise: a base classifier for smoothing."""
    torch.manual_seed(0)
    model = NormalizedModel(SmallMLP(), MEAN, STD)
    x, y = prototype_images(512, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for _ in range(80):
        loss = nn.functional.cross_entropy(model(x + SIGMA * torch.randn(x.shape, generator=g)), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def test_clopper_pearson_matches_its_closed_forms_and_covers() -> None:
    n, alpha = 100, 0.001
    assert clopper_pearson_lower([n], n, alpha)[0] == pytest.approx(alpha ** (1 / n))  # k = n: alpha^(1/n)
    assert clopper_pearson_lower([0], n, alpha)[0] == 0.0
    bounds = clopper_pearson_lower(np.arange(n + 1), n, alpha)
    assert np.all(np.diff(bounds) > 0) and np.all(bounds <= np.arange(n + 1) / n)
    rng = np.random.default_rng(0)  # coverage: the bound exceeds the true p in at most ~alpha of trials
    p, level = 0.7, 0.05
    k = rng.binomial(50, p, size=4000)
    assert np.mean(clopper_pearson_lower(k, 50, level) > p) <= level


class Constant(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tensor([0.0, 0.0, 1.0]).expand(x.shape[0], 3)  # always class 2


class CoinFlip(nn.Module):
    """Class 1 when the mean pixel is above 0.5: at a grey image the noise makes it a fair coin."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([-m + 0.5, m - 0.5], dim=1)


def test_a_constant_base_is_certified_at_the_closed_form_radius() -> None:
    from scipy.stats import norm

    smooth = SmoothedClassifier(Constant(), SIGMA, generator=torch.Generator().manual_seed(0))
    x = torch.rand(3, 3, 8, 8)
    cert = smooth.certify(x, n0=10, n=200, alpha=0.001)
    assert cert.labels.tolist() == [2, 2, 2]
    assert cert.radii[0].item() == pytest.approx(SIGMA * norm.ppf(0.001 ** (1 / 200)), rel=1e-4)
    assert smooth.predict(x, n=50).labels.tolist() == [2, 2, 2]


def test_a_fair_coin_makes_predict_and_certify_abstain() -> None:
    smooth = SmoothedClassifier(CoinFlip(), SIGMA, generator=torch.Generator().manual_seed(0))
    x = torch.full((4, 3, 8, 8), 0.5)
    pred = smooth.predict(x, n=200, alpha=0.001)
    assert bool(pred.abstained.all()) and int(pred.counts.sum()) == 4 * 200
    cert = smooth.certify(x, n0=50, n=400, alpha=0.001)
    assert cert.labels.tolist() == [ABSTAIN] * 4 and float(cert.radii.abs().max()) == 0.0


class SoftSmoothed(nn.Module):
    """log E[softmax(f(x + noise))] over fixed noise draws: the differentiable surrogate an attacker on the
    smoothed classifier uses (Salman et al. 2019)."""

    def __init__(self, base: nn.Module, draws: int = 64) -> None:
        super().__init__()
        self.base, self.noise = base, SIGMA * torch.randn(draws, 3, 8, 8, generator=torch.Generator().manual_seed(9))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        noisy = (x[:, None] + self.noise[None]).flatten(0, 1)  # (B * draws, 3, 8, 8)
        probs = torch.softmax(self.base(noisy), dim=1).view(x.shape[0], self.noise.shape[0], -1).mean(1)
        return probs.clamp_min(1e-12).log()  # (B, K)


def boundary_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Images between their class prototype and another one (weight 0.5 to 1 on their own): some near the
    decision boundary, so certified radii spread from 0 to the largest one the sample size allows."""
    x, y = prototype_images(n, seed)
    other, _ = prototype_images(n, seed + 100)
    t = torch.rand(n, 1, 1, 1, generator=torch.Generator().manual_seed(seed))
    return t * x + (1 - t) * other, y  # weight t on a random other pattern (sometimes the same class)


def test_a_certified_point_is_never_flipped_by_pgd_inside_its_radius(noisy_model: NormalizedModel) -> None:
    x, _ = boundary_images(40, seed=5)
    smooth = SmoothedClassifier(noisy_model, SIGMA, generator=torch.Generator().manual_seed(1))
    cert = smooth.certify(x, n0=64, n=500, alpha=0.001)
    ok = (cert.labels != ABSTAIN) & (cert.radii > 0.05)
    assert int(ok.sum()) >= 10 and float(cert.radii[ok].std()) > 0.1, cert.radii
    surrogate = SoftSmoothed(noisy_model)
    flipped_outside = 0
    for i in torch.nonzero(ok).flatten().tolist():
        xi, ci = x[i : i + 1], cert.labels[i : i + 1]
        radius = float(cert.radii[i])
        for scale in (0.95, 3.0):
            eps = scale * radius
            x_adv = pgd(surrogate, xi, ci, eps, norm="l2", steps=20, generator=torch.Generator().manual_seed(i))
            assert float((x_adv - xi).norm()) <= eps + 1e-5
            answer = smooth.predict(x_adv, n=500, alpha=0.001).labels.item()
            if scale < 1:
                assert answer in (int(ci), ABSTAIN), f"certified at radius {radius:.3f}, flipped at {eps:.3f}"
            else:
                flipped_outside += int(answer not in (int(ci), ABSTAIN))
    assert flipped_outside >= 1, "PGD never flipped a point even at 3x its radius: the attack is too weak to test"


def test_certified_accuracy_falls_with_radius_and_is_bounded(noisy_model: NormalizedModel) -> None:
    x, y = prototype_images(32, seed=6)
    curve = certified_accuracy(noisy_model, (x, y), SIGMA, radii=[0.5, 0.0, 0.25, 2.0], n0=32, n=200)
    assert curve.radii == (0.0, 0.25, 0.5, 2.0)
    assert all(a >= b for a, b in zip(curve.accuracies, curve.accuracies[1:]))
    assert curve.accuracies[-1] == 0.0  # sigma * Phi^-1(alpha^(1/200)) < 0.7 bounds every radius
    assert curve.accuracies[0] >= 0.8 and 0 <= curve.abstain_rate <= 1 - curve.accuracies[0]
    assert curve.accuracy_at(0.25) == curve.accuracies[1] and curve.n == 32
    assert curve.to_dict()["sigma"] == SIGMA


def test_noise_augmentation_adds_pixel_sigma_in_normalised_units() -> None:
    cb = GaussianNoiseAugment(0.3, std=(0.5, 0.25, 0.1), generator=torch.Generator().manual_seed(0))
    images, targets = torch.zeros(64, 3, 16, 16), torch.arange(64)
    noisy, same = cb.on_batch_start(None, images, targets)  # type: ignore[arg-type]
    assert same is targets
    measured = noisy.transpose(0, 1).flatten(1).std(dim=1)
    assert measured.tolist() == pytest.approx([0.6, 1.2, 3.0], rel=0.05)
    with pytest.raises(ConfigError, match="sigma"):
        GaussianNoiseAugment(0.0, std=(0.5,))
