"""Feature-space OOD scorers fitted on in-distribution training features (estimator style: ``fit`` returns
self, learned state ends in ``_``). Convention: a higher score means more in-distribution."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from imgclf.errors import ConfigError, DataError, NotFittedError
from imgclf.metrics._ood_scores import as_2d


def _fitted(estimator: Any, attribute: str, call: str) -> torch.Tensor:
    """The learned ``attribute`` of ``estimator``, or NotFittedError naming the call to make."""
    value = getattr(estimator, attribute, None)
    if value is None:
        name = type(estimator).__name__
        raise NotFittedError(f"this {name} is not fitted yet: call {name}().{call} before score().")
    return value


def _check_dim(features: torch.Tensor, expected: int, name: str) -> None:
    if features.shape[1] != expected:
        raise DataError(f"{name} was fitted on {expected}-dim features but got {features.shape[1]}-dim ones.")


class Mahalanobis:
    """Mahalanobis-distance score (Lee et al. 2018): class-conditional Gaussians with one shared covariance.

    ``fit(features, labels)`` learns ``means_`` ``(K, D)`` and ``precision_`` ``(D, D)`` (the inverse of the
    pooled within-class covariance plus ``ridge * mean variance`` on the diagonal); ``score(features)`` is
    minus the squared distance to the closest class mean. ``normalize`` L2-normalises features first.

    >>> scorer = Mahalanobis().fit(train_features, train_labels)  # doctest: +SKIP
    >>> scorer.score(test_features).shape  # doctest: +SKIP
    torch.Size([500])
    """

    def __init__(self, ridge: float = 1e-6, normalize: bool = False) -> None:
        self.ridge = ridge
        self.normalize = normalize
        self.means_: torch.Tensor | None = None
        self.precision_: torch.Tensor | None = None
        self.classes_: torch.Tensor | None = None

    def _prepare(self, features: Any) -> torch.Tensor:
        z = as_2d(features, "features").double().cpu()
        return F.normalize(z, dim=1) if self.normalize else z

    def fit(self, features: Any, labels: Any) -> Mahalanobis:
        """Learn class means and the shared covariance from in-distribution ``features`` ``(N, D)`` and
        ``labels`` ``(N,)``; returns self."""
        if self.ridge < 0:
            raise ConfigError(f"ridge must be non-negative, got {self.ridge}.")
        z = self._prepare(features)  # (N, D)
        y = torch.as_tensor(labels).long().cpu().flatten()
        if y.shape[0] != z.shape[0]:
            raise DataError(f"got {z.shape[0]} feature rows but {y.shape[0]} labels.")
        classes = torch.unique(y)
        if z.shape[0] <= classes.numel():
            raise DataError(f"Mahalanobis needs more samples ({z.shape[0]}) than classes ({classes.numel()}).")
        means = torch.stack([z[y == c].mean(dim=0) for c in classes])  # (K, D)
        centred = z - means[torch.searchsorted(classes, y)]  # (N, D)
        cov = centred.T @ centred / (z.shape[0] - classes.numel())  # (D, D)
        scale = float(cov.diagonal().mean()) or 1.0
        cov = cov + self.ridge * scale * torch.eye(cov.shape[0], dtype=cov.dtype)
        self.classes_, self.means_ = classes, means
        self.precision_ = torch.linalg.pinv(cov, hermitian=True)
        return self

    def distances(self, features: Any) -> torch.Tensor:
        """Squared Mahalanobis distance of each row to each class mean: ``(N, D) -> (N, K)``."""
        precision = _fitted(self, "precision_", "fit(train_features, train_labels)")
        means = _fitted(self, "means_", "fit(train_features, train_labels)")
        z = self._prepare(features)  # (N, D)
        _check_dim(z, means.shape[1], "Mahalanobis")
        # (z - m)^T P (z - m) = z^T P z - 2 z^T P m + m^T P m: memory O(N (D + K)) instead of O(N K D)
        zp = z @ precision  # (N, D)
        quad = (zp * z).sum(dim=1, keepdim=True) - 2 * zp @ means.T + ((means @ precision) * means).sum(dim=1)
        return quad.clamp_min(0)  # (N, K)

    def score(self, features: Any) -> torch.Tensor:
        """``-min_k distance_k``: ``(N, D) -> (N,)`` float32; higher means more in-distribution."""
        return (-self.distances(features).amin(dim=1)).float()


class KNNScorer:
    """Deep nearest-neighbour score (Sun et al. 2022): minus the cosine-space distance from the L2-normalised
    feature to its ``k``-th nearest L2-normalised training feature.

    ``fit(features)`` stores the normalised bank ``bank_`` ``(N, D)`` (labels are accepted and ignored);
    ``score`` works in chunks of ``chunk`` rows to bound memory.

    >>> KNNScorer(k=10).fit(train_features).score(test_features).shape  # doctest: +SKIP
    torch.Size([500])
    """

    def __init__(self, k: int = 50, chunk: int = 1024) -> None:
        self.k = k
        self.chunk = chunk
        self.bank_: torch.Tensor | None = None

    def fit(self, features: Any, labels: Any = None) -> KNNScorer:
        """Store the L2-normalised in-distribution ``features`` ``(N, D)``; returns self."""
        if self.k < 1 or self.chunk < 1:
            raise ConfigError(f"KNNScorer needs k >= 1 and chunk >= 1, got k={self.k}, chunk={self.chunk}.")
        bank = F.normalize(as_2d(features, "features").float().cpu(), dim=1)  # (N, D)
        if bank.shape[0] < self.k:
            raise DataError(f"KNNScorer(k={self.k}) needs at least {self.k} training features, got {bank.shape[0]}.")
        self.bank_ = bank
        return self

    def score(self, features: Any) -> torch.Tensor:
        """``-||z - z_(k)||``: ``(N, D) -> (N,)``; higher means more in-distribution."""
        bank = _fitted(self, "bank_", "fit(train_features)")
        z = F.normalize(as_2d(features, "features").float().cpu(), dim=1)  # (N, D)
        _check_dim(z, bank.shape[1], "KNNScorer")
        out = []
        for start in range(0, z.shape[0], self.chunk):
            sims = z[start : start + self.chunk] @ bank.T  # (n, M) cosine similarities
            kth = sims.topk(self.k, dim=1).values[:, -1]  # (n,) similarity of the k-th neighbour
            out.append(-torch.sqrt((2 - 2 * kth).clamp_min(0)))  # unit vectors: |a - b|^2 = 2 - 2 a.b
        return torch.cat(out) if out else torch.zeros(0)
