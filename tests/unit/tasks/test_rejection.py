"""Rejection rules as pure functions, against their definitions; their statistics through a bundle file."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from imgclf.bundle import load_arrays, save_arrays
from imgclf.errors import BundleError, ConfigError, DataError
from imgclf.metrics import energy
from imgclf.robustness import ood_metrics
from imgclf.tasks import (
    REJECTION_SCORES,
    fit_rejection,
    fit_rejection_stats,
    needs_features,
    ood_score,
    rejection_scores,
)


def clusters(n: int, seed: int, shift: float = 0.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Features (n, 16) around 3 class centres (+ ``shift`` on every axis), their labels and linear-head logits."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.eye(3, 16) * 4
    y = torch.randint(0, 3, (n,), generator=g)
    z = centres[y] + 0.5 * torch.randn(n, 16, generator=g) + shift
    return z, y, z[:, :3] * 2  # (n, 16), (n,), (n, 3)


def test_mahalanobis_is_minus_the_squared_distance_to_the_closest_class_mean() -> None:
    z, y, logits = clusters(300, 0)
    stats = fit_rejection_stats(z, logits, y, "mahalanobis")
    means = torch.stack([z[y == c].mean(0) for c in range(3)]).double()
    assert torch.allclose(stats["means"], means, atol=1e-6)
    q = z[:5].double()
    d = torch.stack([((q - m) @ stats["precision"] * (q - m)).sum(1) for m in means], dim=1)  # (5, 3)
    got = ood_score("mahalanobis", logits[:5], features=z[:5], stats=stats).double()
    assert torch.allclose(got, -d.amin(1), atol=1e-3)


def test_knn_is_minus_the_distance_to_the_kth_normalised_neighbour() -> None:
    z, y, logits = clusters(100, 1)
    stats = fit_rejection_stats(z, logits, y, "knn", k=3)
    assert int(stats["k"]) == 3 and torch.allclose(stats["bank"].norm(dim=1), torch.ones(100))
    q = torch.nn.functional.normalize(z[:4] + 0.3, dim=1)
    dists = torch.cdist(q, stats["bank"]).sort(dim=1).values[:, 2]
    assert torch.allclose(ood_score("knn", logits[:4], features=z[:4] + 0.3, stats=stats), -dists, atol=1e-5)


def test_vim_is_energy_minus_the_scaled_residual_norm() -> None:
    z, y, logits = clusters(200, 2)
    stats = fit_rejection_stats(z, logits, y, "vim", vim_dim=8)
    assert stats["residual"].shape == (16, 8)
    residual = ((z[:3] - z.mean(0)) @ stats["residual"]).norm(dim=1)
    expected = energy(logits[:3]) - float(stats["alpha"]) * residual
    assert torch.allclose(ood_score("vim", logits[:3], features=z[:3], stats=stats), expected, atol=1e-4)


@pytest.mark.parametrize("rule", ["mahalanobis", "knn", "vim"])
def test_feature_rules_separate_shifted_features_that_logits_cannot_tell_apart(rule: str) -> None:
    z, y, logits = clusters(300, 3)
    stats = fit_rejection_stats(z, logits, y, rule)
    z_in, _, l_in = clusters(100, 4)
    z_out = z_in.clone()
    z_out[:, 3:] += 3.0  # moved off the training features on the axes the head ignores: same logits
    assert torch.equal(l_in, z_out[:, :3] * 2)
    scores_in = ood_score(rule, l_in, features=z_in, stats=stats)
    scores_out = ood_score(rule, l_in, features=z_out, stats=stats)
    assert ood_metrics(scores_in, scores_out).auroc >= 0.99
    assert ood_metrics(energy(l_in), energy(l_in)).auroc == 0.5  # a logit score is blind to it


def test_the_default_rule_and_the_feature_flag() -> None:
    assert set(REJECTION_SCORES) == {"msp", "max_logit", "energy", "mahalanobis", "knn", "vim", "disagreement"}
    assert [needs_features(r) for r in ("msp", "energy", "vim", "disagreement")] == [False, False, True, True]
    with pytest.raises(ConfigError, match="ensemble"):  # its statistics are the members' heads, not fitted
        fit_rejection_stats(torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(4), "disagreement")
    assert fit_rejection_stats(torch.zeros(4, 2), torch.zeros(4, 2), torch.zeros(4), "energy") == {}
    with pytest.raises(DataError, match="features"):
        ood_score("knn", torch.zeros(2, 3))
    with pytest.raises(BundleError, match="robustness"):
        ood_score("mahalanobis", torch.zeros(2, 3), features=torch.zeros(2, 4), stats={})


def test_statistics_round_trip_through_a_checked_safetensors_file(tmp_path: Path) -> None:
    z, y, logits = clusters(50, 5)
    stats = fit_rejection_stats(z, logits, y, "mahalanobis")
    entry = save_arrays(tmp_path, "rejection.safetensors", stats)
    back = load_arrays(tmp_path, entry)
    assert set(back) == {"means", "precision"} and torch.equal(back["precision"], stats["precision"])
    assert not (tmp_path / "rejection.safetensors").read_bytes().startswith(b"\x80")  # not a pickle
    (tmp_path / "rejection.safetensors").write_bytes(b"tampered")
    with pytest.raises(BundleError, match="sha256"):
        load_arrays(tmp_path, entry)
    with pytest.raises(BundleError, match="outside"):
        load_arrays(tmp_path, {"file": "../x.safetensors"})
    assert load_arrays(tmp_path, None) == {} and load_arrays(tmp_path, {"score": "msp"}) == {}


def test_a_feature_rule_threshold_accepts_its_target_share_of_held_out_features() -> None:
    z, y, logits = clusters(400, 6)
    stats = fit_rejection_stats(z, logits, y, "mahalanobis")
    z_val, _, l_val = clusters(200, 7)
    rule = fit_rejection(l_val, score="mahalanobis", features=z_val, stats=stats, target_acceptance=0.9)
    accepted = rejection_scores(rule, l_val, features=z_val, stats=stats) >= rule["threshold"]
    assert abs(accepted.mean() - 0.9) < 0.01
    far = rejection_scores(rule, l_val, features=z_val + 5.0, stats=stats) >= rule["threshold"]
    assert far.mean() < 0.05  # same logits, features far from training: rejected
