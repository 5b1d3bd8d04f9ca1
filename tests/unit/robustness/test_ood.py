"""OOD scores, feature-space scorers, metrics against their definitions, thresholds and synthetic outliers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from imgclf.errors import ConfigError, DataError, NotFittedError
from imgclf.robustness import (
    OUTLIER_KINDS,
    KNNScorer,
    Mahalanobis,
    OODReport,
    choose_threshold,
    energy,
    max_logit,
    msp,
    ood_metrics,
    synthetic_outliers,
)


def test_logit_scores_match_their_definitions() -> None:
    z = torch.tensor([[2.0, 1.0, -1.0], [0.0, 0.0, 0.0], [10.0, -3.0, 9.0]])
    assert torch.allclose(msp(z), torch.softmax(z, dim=1).max(dim=1).values)
    assert torch.allclose(msp(z, temperature=2.0), torch.softmax(z / 2, dim=1).max(dim=1).values)
    assert torch.equal(max_logit(z), torch.tensor([2.0, 0.0, 10.0]))
    assert torch.allclose(energy(z), torch.log(torch.exp(z).sum(dim=1)))
    assert torch.allclose(energy(z, temperature=2.0), 2 * torch.log(torch.exp(z / 2).sum(dim=1)))
    confident, unsure = torch.tensor([[8.0, 0.0]]), torch.tensor([[0.1, 0.0]])
    for score in (msp, max_logit, energy):
        assert float(score(confident)) > float(score(unsure)), f"{score.__name__}: higher must mean in-distribution"
    assert torch.allclose(msp(np.array([[1.0, 1.0]])), torch.tensor([0.5], dtype=torch.float64))
    with pytest.raises(DataError, match="\\(N, D\\)"):
        msp(torch.zeros(3))
    with pytest.raises(ConfigError, match="temperature"):
        energy(z, temperature=0)


def test_auroc_is_1_for_separable_scores_0_for_reversed_and_about_half_for_identical_distributions() -> None:
    rng = np.random.default_rng(0)
    separable = ood_metrics(rng.uniform(1, 2, 200), rng.uniform(-1, 0.99, 300))
    assert separable.auroc == 1.0 and separable.fpr_at_95_tpr == 0.0 and separable.aupr_in == 1.0
    assert separable.aupr_out == pytest.approx(1.0)
    assert ood_metrics(rng.uniform(-1, 0, 50), rng.uniform(1, 2, 50)).auroc == 0.0
    same = ood_metrics(rng.normal(size=4000), rng.normal(size=4000))
    assert abs(same.auroc - 0.5) < 0.03
    assert abs(same.fpr_at_95_tpr - 0.95) < 0.03


def test_auroc_equals_the_pairwise_definition() -> None:
    rng = np.random.default_rng(1)
    s_in, s_out = rng.integers(0, 6, 40).astype(float), rng.integers(0, 5, 30).astype(float)  # with ties
    pairs = (s_in[:, None] > s_out[None, :]).mean() + 0.5 * (s_in[:, None] == s_out[None, :]).mean()
    report = ood_metrics(torch.tensor(s_in), s_out.tolist())
    assert report.auroc == pytest.approx(pairs)
    assert (report.n_in, report.n_out) == (40, 30)


def test_fpr_at_95_tpr_on_a_hand_made_case() -> None:
    scores_in = np.arange(1, 21, dtype=float)  # 20 scores: accepting 95 % (19 of them) needs threshold 2
    scores_out = np.array([0.0, 1.5, 2.5, 3.5, 30.0])  # three of five are >= 2
    assert ood_metrics(scores_in, scores_out).fpr_at_95_tpr == pytest.approx(3 / 5)
    # 95 % of 10 is 9.5, so ten must be accepted: threshold 1, and every OOD score >= 1 counts
    assert ood_metrics(np.arange(1, 11, dtype=float), [0.5, 1.0, 5.0]).fpr_at_95_tpr == pytest.approx(2 / 3)


def test_ood_report_to_dict_is_json_ready() -> None:
    report = ood_metrics([3.0, 2.0, 1.0], [0.0, 2.5])
    assert isinstance(report, OODReport)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["auroc"] == pytest.approx(4 / 6) and data["n_in"] == 3 and data["n_out"] == 2
    with pytest.raises(DataError, match="empty"):
        ood_metrics([], [1.0])
    with pytest.raises(DataError, match="NaN"):
        ood_metrics([float("nan"), 1.0], [1.0])


def test_choose_threshold_accepts_the_target_fraction() -> None:
    scores = np.random.default_rng(2).normal(size=1000)
    for target in (0.5, 0.9, 0.95, 0.99):
        t = choose_threshold(scores, target)
        accepted = float((scores >= t).mean())
        assert target <= accepted <= target + 1 / 1000
    assert choose_threshold(scores, 1.0) == scores.min()
    assert choose_threshold(torch.tensor([5.0, 1.0, 1.0, 1.0]), 0.5) == 1.0  # ties: accept all of them
    with pytest.raises(ConfigError, match="target_acceptance"):
        choose_threshold(scores, 0.0)
    with pytest.raises(ConfigError, match="target_acceptance"):
        choose_threshold(scores, 1.5)


def clusters(n_per: int, seed: int, dim: int = 16) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Three Gaussian classes with one shared, strongly anisotropic covariance; returns features, labels and
    the shared mixing matrix."""
    fixed = torch.Generator().manual_seed(99)  # the same classes for every seed
    mixing = torch.diag(torch.logspace(0, -2, dim)) @ torch.linalg.qr(torch.randn(dim, dim, generator=fixed))[0]
    means = 3 * torch.randn(3, dim, generator=fixed)
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(3).repeat_interleave(n_per)
    return means[y] + torch.randn(3 * n_per, dim, generator=g) @ mixing, y, mixing


def test_mahalanobis_matches_its_definition() -> None:
    x, y, _ = clusters(200, seed=0)
    scorer = Mahalanobis(ridge=0.0).fit(x, y)
    xd, yd = x.double(), y.numpy()
    means = np.stack([xd[yd == c].mean(0).numpy() for c in range(3)])
    centred = xd.numpy() - means[yd]
    precision = np.linalg.inv(centred.T @ centred / (len(yd) - 3))
    probe = x[:5].double().numpy()
    expected = -np.min([np.einsum("nd,de,ne->n", probe - m, precision, probe - m) for m in means], axis=0)
    assert np.allclose(scorer.score(x[:5]).numpy(), expected, rtol=1e-4)


def test_mahalanobis_flags_a_shift_along_a_low_variance_direction() -> None:
    x, y, mixing = clusters(300, seed=0)
    test_in, _, _ = clusters(100, seed=1)
    # shift class-0-like points a small Euclidean distance along the direction the classes hardly vary in
    weakest = torch.linalg.svd(mixing).Vh[-1]  # (D,) unit vector of least variance
    test_out = clusters(100, seed=2)[0][:100] + 0.5 * weakest
    scorer = Mahalanobis().fit(x, y)
    assert ood_metrics(scorer.score(test_in), scorer.score(test_out)).auroc > 0.99
    with pytest.raises(DataError, match="16-dim"):
        scorer.score(torch.zeros(2, 5))


def test_knn_matches_its_definition_and_separates_a_new_cluster() -> None:
    x, y, _ = clusters(200, seed=0)
    scorer = KNNScorer(k=5).fit(x, y)
    bank = torch.nn.functional.normalize(x, dim=1)
    probe = torch.nn.functional.normalize(x[:4] + 0.1, dim=1)
    kth = torch.cdist(probe, bank).sort(dim=1).values[:, 4]
    assert torch.allclose(scorer.score(x[:4] + 0.1), -kth, atol=1e-4)
    test_in, _, _ = clusters(100, seed=1)
    far = 3 * torch.randn(1, 16, generator=torch.Generator().manual_seed(7))  # a fourth class centre
    test_out = far + 0.3 * torch.randn(300, 16, generator=torch.Generator().manual_seed(8))
    assert ood_metrics(scorer.score(test_in), scorer.score(test_out)).auroc > 0.99
    assert torch.allclose(KNNScorer(k=5, chunk=7).fit(x).score(test_in), scorer.score(test_in))  # chunks agree


@pytest.mark.parametrize("scorer", [Mahalanobis(), KNNScorer(k=3)])
def test_feature_scorers_follow_the_estimator_rules(scorer) -> None:
    learned = [name for name in vars(scorer) if name.endswith("_")]
    assert learned and all(getattr(scorer, name) is None for name in learned)
    with pytest.raises(NotFittedError, match=r"fit\("):
        scorer.score(torch.zeros(2, 4))
    x, y, _ = clusters(20, seed=0)
    assert scorer.fit(x, y) is scorer
    assert all(getattr(scorer, name) is not None for name in learned)
    assert scorer.score(x).shape == (60,)


def test_feature_scorers_reject_unusable_training_data() -> None:
    with pytest.raises(DataError, match="at least 10"):
        KNNScorer(k=10).fit(torch.randn(5, 3))
    with pytest.raises(DataError, match="labels"):
        Mahalanobis().fit(torch.randn(5, 3), torch.zeros(4))
    with pytest.raises(DataError, match="\\(N, D\\)"):
        Mahalanobis().fit(torch.randn(5), torch.zeros(5))


def test_synthetic_outliers_are_seeded_pixel_images_of_every_kind() -> None:
    images = synthetic_outliers(12, (3, 28, 28), seed=0)
    assert images.shape == (12, 3, 28, 28) and images.dtype == torch.float32
    assert float(images.min()) >= 0 and float(images.max()) <= 1
    assert torch.equal(images, synthetic_outliers(12, (3, 28, 28), seed=0))
    assert not torch.equal(images, synthetic_outliers(12, (3, 28, 28), seed=1))
    kinds = {kind: i for i, kind in enumerate(OUTLIER_KINDS)}  # kinds cycle in order
    assert float(images[kinds["constant"]].std(dim=(1, 2)).max()) == 0.0
    uniform = images[kinds["uniform"]]
    assert abs(float(uniform.mean()) - 0.5) < 0.05 and abs(float(uniform.std()) - 12**-0.5) < 0.03
    blobs = images[kinds["blobs"]]
    neighbour_gap = float((blobs[:, 1:] - blobs[:, :-1]).abs().mean())
    assert neighbour_gap < 0.5 * float((uniform[:, 1:] - uniform[:, :-1]).abs().mean()), "blobs must be smooth"
    assert all(not torch.equal(images[i], images[j]) for i in range(6) for j in range(i + 1, 6))
    grey = synthetic_outliers(4, (1, 16, 20), seed=0, kinds=("stripes", "checkerboard"))
    assert grey.shape == (4, 1, 16, 20)
    assert synthetic_outliers(0, (3, 8, 8)).shape == (0, 3, 8, 8)
    with pytest.raises(ConfigError, match="Did you mean 'blobs'"):
        synthetic_outliers(2, kinds=("blob",))
