"""Randomized smoothing (Cohen, Rosenfeld & Kolter 2019, "Certified adversarial robustness via randomized
smoothing"): the smoothed classifier g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c), its PREDICT (with
abstention) and CERTIFY (an L2 radius from a Clopper-Pearson bound), and certified accuracy against radius."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from imgclf.errors import ConfigError, DataError
from imgclf.robustness._batches import Batches, iter_batches
from imgclf.robustness._normalize import NormalizedModel
from imgclf.utils import eval_mode, model_device

ABSTAIN = -1


def clopper_pearson_lower(successes: Any, trials: int, alpha: float) -> np.ndarray:
    """One-sided ``(1 - alpha)`` Clopper-Pearson lower confidence bound on a binomial proportion.

    ``successes`` (array of counts out of ``trials``) -> the ``alpha`` quantile of ``Beta(k, n - k + 1)``
    (0 when ``k = 0``); exact, so it holds at level ``1 - alpha`` for every ``n``. With ``k = n`` it is
    ``alpha ** (1 / n)``.

    >>> float(clopper_pearson_lower([100], 100, 0.001)[0])  # 0.001 ** (1 / 100)
    0.933254300796991
    """
    from scipy.stats import beta

    if not 0 < alpha < 1 or trials < 1:
        raise ConfigError(f"need 0 < alpha < 1 and trials >= 1, got alpha={alpha}, trials={trials}.")
    k = np.asarray(successes, dtype=np.float64)
    if (k < 0).any() or (k > trials).any():
        raise DataError(f"successes must lie in [0, {trials}], got {k.min()}..{k.max()}.")
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(alpha, k, trials - k + 1)
    return np.where(k > 0, bound, 0.0)


@dataclass(frozen=True)
class SmoothedPrediction:
    """PREDICT's answers: ``labels`` ``(N,)`` (``ABSTAIN`` = -1 where the top two classes could not be told
    apart at level ``alpha``), the two-sided binomial test's ``p_values`` ``(N,)`` and the vote ``counts``
    ``(N, K)``."""

    labels: torch.Tensor
    p_values: torch.Tensor
    counts: torch.Tensor

    @property
    def abstained(self) -> torch.Tensor:
        return self.labels == ABSTAIN


@dataclass(frozen=True)
class Certificate:
    """CERTIFY's answers: ``labels`` ``(N,)`` (``ABSTAIN`` where the lower bound on p_A is below 1/2),
    ``radii`` ``(N,)`` (``sigma * Phi^-1(p_A_lower)``, 0 where abstained) and ``p_lower`` ``(N,)``.

    Whatever the attacker does inside an L2 ball of radius ``radii[i]`` around ``x[i]``, the smoothed
    classifier's answer stays ``labels[i]`` -- with probability at least ``1 - alpha`` over the Monte Carlo noise.
    """

    labels: torch.Tensor
    radii: torch.Tensor
    p_lower: torch.Tensor


class SmoothedClassifier:
    """The smoothed version of a pixel-space base classifier ``base`` with Gaussian noise of std ``sigma``.

    Noise is added to pixel images in [0, 1] (not clipped, as in the paper). ``batch_size`` bounds how many
    noisy copies go through ``base`` at once; ``generator`` (CPU) makes the noise repeat.

    >>> smooth = SmoothedClassifier(NormalizedModel(model, mean, std), sigma=0.25)  # doctest: +SKIP
    >>> cert = smooth.certify(images, n0=100, n=1000, alpha=0.001)  # doctest: +SKIP
    >>> cert.radii  # doctest: +SKIP
    tensor([0.61, 0.00, 0.33])
    """

    def __init__(self, base: nn.Module, sigma: float, *, batch_size: int = 512,
                 generator: torch.Generator | None = None) -> None:  # fmt: skip
        if sigma <= 0:
            raise ConfigError(f"randomized smoothing needs sigma > 0, got {sigma}; try 0.25 (pixels in [0, 1]).")
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}.")
        self.base, self.sigma, self.batch_size, self.generator = base, float(sigma), batch_size, generator

    @torch.no_grad()
    def counts(self, x: torch.Tensor, n: int) -> torch.Tensor:
        """How often the base classifier picks each class under ``n`` noise draws: ``(B, C, H, W) -> (B, K)``."""
        if n < 1:
            raise ConfigError(f"the number of noise samples must be at least 1, got {n}.")
        if x.dim() != 4:
            raise DataError(f"randomized smoothing needs images (B, C, H, W), got shape {tuple(x.shape)}.")
        if x.shape[0] == 0:
            return torch.zeros(0, 1, dtype=torch.long)
        chunks = []
        per_chunk = max(1, self.batch_size // n)  # images per forward pass
        with eval_mode(self.base):
            k = int(self.base(x[:1]).shape[1])
            for start in range(0, x.shape[0], per_chunk):
                xs = x[start : start + per_chunk]
                tally = torch.zeros(xs.shape[0], k, dtype=torch.long, device=x.device)  # (b, K)
                for done in range(0, n, self.batch_size):
                    m = min(self.batch_size, n - done)
                    reps = xs.repeat_interleave(m, dim=0)  # (b * m, C, H, W)
                    noise = torch.randn(reps.shape, generator=self.generator).to(reps.device, reps.dtype)
                    pred = self.base(reps + self.sigma * noise).argmax(dim=1).view(xs.shape[0], m)  # (b, m)
                    tally.scatter_add_(1, pred, torch.ones_like(pred))
                chunks.append(tally.cpu())
        return torch.cat(chunks)

    def predict(self, x: torch.Tensor, n: int = 100, alpha: float = 0.001) -> SmoothedPrediction:
        """Cohen et al.'s PREDICT: the top class of ``n`` noisy votes, or ``ABSTAIN`` when a two-sided binomial
        test of the top two counts (``n_A`` vs ``n_B``, p = 1/2) gives a p-value above ``alpha``. The answer
        differs from g(x) with probability at most ``alpha``.

        >>> smooth.predict(images, n=100, alpha=0.001).labels  # doctest: +SKIP
        tensor([ 3, -1,  7])
        """
        _check_alpha(alpha)
        if x.shape[0] == 0:
            return SmoothedPrediction(torch.zeros(0, dtype=torch.long), torch.zeros(0), torch.zeros(0, 1))
        return predict_from_counts(self.counts(x, n), alpha)

    def certify(self, x: torch.Tensor, n0: int = 100, n: int = 1000, alpha: float = 0.001) -> Certificate:
        """Cohen et al.'s CERTIFY: guess the top class c_A from ``n0`` noisy votes, then bound
        ``p_A = P(f(x + noise) = c_A)`` from below with a one-sided ``(1 - alpha)`` Clopper-Pearson interval over
        ``n`` fresh votes; abstain when the bound is below 1/2, else certify the L2 radius
        ``sigma * Phi^-1(p_A_lower)``.

        >>> cert = smooth.certify(images, n0=100, n=1000)  # doctest: +SKIP
        >>> cert.labels, cert.radii  # doctest: +SKIP
        (tensor([3, -1]), tensor([0.4120, 0.0000]))
        """
        from scipy.stats import norm

        _check_alpha(alpha)
        if x.shape[0] == 0:
            empty = torch.zeros(0)
            return Certificate(torch.zeros(0, dtype=torch.long), empty, empty)
        guess = self.counts(x, n0).argmax(dim=1)  # (B,) selection uses separate samples
        votes = self.counts(x, n)  # (B, K) estimation
        n_a = votes.gather(1, guess[:, None]).squeeze(1).numpy()  # (B,)
        p_lower = clopper_pearson_lower(n_a, n, alpha)
        certified = p_lower > 0.5
        radii = np.where(certified, self.sigma * norm.ppf(np.clip(p_lower, 0.5, 1.0)), 0.0)
        labels = torch.where(torch.from_numpy(certified), guess, torch.full_like(guess, ABSTAIN))
        return Certificate(labels, torch.from_numpy(radii).float(), torch.from_numpy(p_lower).float())


def predict_from_counts(counts: torch.Tensor, alpha: float = 0.001) -> SmoothedPrediction:
    """PREDICT's decision on vote ``counts`` ``(B, K)``: the top class, or ``ABSTAIN`` when the two-sided binomial
    test of the top two counts (p = 1/2) gives a p-value above ``alpha``.

    >>> predict_from_counts(torch.tensor([[100, 0], [52, 48]])).labels.tolist()
    [0, -1]
    """
    from scipy.stats import binomtest

    _check_alpha(alpha)
    counts = counts.long().cpu()
    top2 = counts.topk(min(2, counts.shape[1]), dim=1)
    n_a = top2.values[:, 0]
    n_b = top2.values[:, 1] if counts.shape[1] > 1 else torch.zeros_like(n_a)
    p = torch.tensor([binomtest(int(a), int(a + b), 0.5).pvalue if a + b > 0 else 1.0
                      for a, b in zip(n_a.tolist(), n_b.tolist())], dtype=torch.float64)  # fmt: skip
    labels = torch.where(p <= alpha, top2.indices[:, 0], torch.full_like(top2.indices[:, 0], ABSTAIN))
    return SmoothedPrediction(labels, p, counts)


class SmoothedVotes(nn.Module):
    """``model`` (normalised input, ``mean`` / ``std``) under randomized smoothing as a module: ``forward`` gives
    the vote counts ``(B, K)`` (as floats) of ``n`` copies with Gaussian pixel noise of std ``sigma``, so the
    ordinary inference pass can run it; :func:`predict_from_counts` then decides or abstains.

    >>> # counts = engine.run_inference(SmoothedVotes(model, 0.25, mean, std), images, pre).logits
    """

    def __init__(self, model: nn.Module, sigma: float, mean: Sequence[float], std: Sequence[float], *,
                 n: int = 100, seed: int = 0) -> None:  # fmt: skip
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1), persistent=False)
        self.n = int(n)
        self.smooth = SmoothedClassifier(NormalizedModel(model, mean, std), sigma,
                                         generator=torch.Generator().manual_seed(seed))  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.smooth.counts(x * self.std + self.mean, self.n).float().to(x.device)  # (B, K)


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha}; 0.001 is the usual choice.")


@dataclass(frozen=True)
class CertifiedCurve:
    """Certified accuracy of a smoothed classifier at each L2 ``radii`` on ``n`` images: the share of images it
    classifies correctly with a certified radius of at least that much (Cohen et al.'s "approximate certified
    test set accuracy"). ``abstain_rate`` is the share where CERTIFY abstained; ``clean_accuracy`` the base
    classifier's accuracy on the clean images; ``certified_radii`` the certified radius of every image, -1 where
    CERTIFY abstained or certified a wrong class."""

    sigma: float
    radii: tuple[float, ...]
    accuracies: tuple[float, ...]
    abstain_rate: float
    clean_accuracy: float
    n: int
    n0: int
    samples: int
    alpha: float
    certified_radii: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict of every field."""
        return {"sigma": self.sigma, "radii": list(self.radii), "accuracies": list(self.accuracies),
                "abstain_rate": self.abstain_rate, "clean_accuracy": self.clean_accuracy, "n": self.n,
                "n0": self.n0, "samples": self.samples, "alpha": self.alpha,
                "certified_radii": list(self.certified_radii)}  # fmt: skip

    def accuracy_at(self, radius: float) -> float:
        """Certified accuracy at any radius (not only the tabulated ones)."""
        return float(np.mean([r >= radius for r in self.certified_radii])) if self.certified_radii else 0.0


DEFAULT_RADII = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def certified_accuracy(
    base: nn.Module,
    data: Batches,
    sigma: float,
    *,
    radii: Sequence[float] = DEFAULT_RADII,
    n0: int = 100,
    n: int = 1000,
    alpha: float = 0.001,
    max_samples: int | None = None,
    batch_size: int = 512,
    seed: int = 0,
) -> CertifiedCurve:
    """Certify every image of ``data`` (pixel images in [0, 1] and labels) with :meth:`SmoothedClassifier.certify`
    and tabulate certified accuracy at each of ``radii``.

    >>> curve = certified_accuracy(NormalizedModel(model, mean, std), (images, labels), sigma=0.25)  # doctest: +SKIP
    >>> dict(zip(curve.radii, curve.accuracies))  # doctest: +SKIP
    {0.0: 0.81, 0.25: 0.7, 0.5: 0.52, ...}
    """
    smooth = SmoothedClassifier(base, sigma, batch_size=batch_size, generator=torch.Generator().manual_seed(seed))
    device = model_device(base)
    radius_ok, abstained, clean, total = [], 0, 0, 0
    for images, labels in iter_batches(data, batch_size=64, max_samples=max_samples):
        x, y = images.to(device=device, dtype=torch.float32), labels.long()
        with torch.no_grad(), eval_mode(base):
            clean += int((base(x).argmax(dim=1).cpu() == y).sum())
        cert = smooth.certify(x, n0=n0, n=n, alpha=alpha)
        abstained += int((cert.labels == ABSTAIN).sum())
        total += x.shape[0]
        radius_ok += torch.where(cert.labels == y, cert.radii, torch.full_like(cert.radii, -1.0)).tolist()
    if total == 0:
        raise DataError("certified_accuracy got no examples; check that the loader yields batches.")
    levels = sorted(float(r) for r in radii)
    if not levels or levels[0] < 0:
        raise ConfigError(f"radii must be non-negative, got {list(radii)}.")
    return CertifiedCurve(
        sigma=float(sigma), radii=tuple(levels),
        accuracies=tuple(float(np.mean([r >= level for r in radius_ok])) for level in levels),
        abstain_rate=abstained / total, clean_accuracy=clean / total, n=total, n0=n0, samples=n, alpha=alpha,
        certified_radii=tuple(float(r) for r in radius_ok),
    )  # fmt: skip
