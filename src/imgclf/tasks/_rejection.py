"""The rejection rule: a score per image (higher = more in-distribution) and the threshold below which the answer
is ``unknown``. One implementation, used by training, calibrate, predict, evaluate, robustness, export and serve.

A rule is a JSON-able dict stored in the bundle: ``{"score": "msp", "threshold": 0.62, "temperature": 1.3,
"target_acceptance": 0.95, ...}``; ``temperature`` is the one the score was computed at (msp only). A feature
rule (``mahalanobis``, ``knn``, ``vim``) scores the pooled pre-logit features of the same forward pass with
statistics fitted on training features (:func:`fit_rejection_stats`); they travel in ``rejection.safetensors``
beside the weights and the rule records that file (``"file"``, ``"sha256"``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from imgclf import metrics as M
from imgclf.errors import BundleError, ConfigError, DataError
from imgclf.tasks._base import Answer

LOGIT_SCORES = ("msp", "max_logit", "energy")  # computable from logits alone
FEATURE_SCORES = ("mahalanobis", "knn", "vim")  # also need the pooled features and fitted statistics
#: Ensemble bundles only: the members' disagreement, from the pooled features and the members' stored heads.
ENSEMBLE_SCORES = ("disagreement",)
REJECTION_SCORES = LOGIT_SCORES + FEATURE_SCORES + ENSEMBLE_SCORES
DEFAULT_ACCEPTANCE = 0.95
#: The most training images a feature rule's statistics are fitted on (a seeded sample of the training split).
FIT_IMAGES = 2000

_SCORE_DOCS = {
    "msp": "maximum softmax probability (calibrated)",
    "max_logit": "largest logit",
    "energy": "negative free energy (logsumexp of the logits)",
    "mahalanobis": "minus the Mahalanobis distance to the closest class mean (shared covariance)",
    "knn": "minus the cosine-space distance to the k-th nearest training feature",
    "vim": "ViM: energy minus the scaled norm of the feature outside the training features' principal space",
    "disagreement": "minus the mutual information between an ensemble's members' probabilities (nats)",
}


def _known(name: str) -> str:
    if name not in _SCORE_DOCS:
        raise BundleError(f"unknown rejection score {name!r}; this imgclf computes {', '.join(REJECTION_SCORES)}")
    return name


def describe_score(name: str) -> str:
    """One line saying what the rejection score ``name`` measures.

    >>> describe_score("energy")
    'negative free energy (logsumexp of the logits)'
    """
    return _SCORE_DOCS[_known(name)]


def needs_features(name: str | None) -> bool:
    """Whether the score ``name`` needs the pooled pre-logit features (so inference must return them too).

    >>> needs_features("msp"), needs_features("knn"), needs_features(None)
    (False, True, False)
    """
    return name is not None and _known(name) in FEATURE_SCORES + ENSEMBLE_SCORES


def default_knn_k(n_train: int) -> int:
    """Sun et al. use k = 50 with the full training set and scale k with the share of it kept; for the few
    thousand features a bundle stores, 1% of them (at least 1, at most 50)."""
    return max(1, min(50, round(0.01 * n_train)))


def fit_rejection_stats(features: Any, logits: Any, labels: Any, score: str, *, k: int | None = None,
                        vim_dim: int | None = None) -> dict[str, torch.Tensor]:  # fmt: skip
    """The statistics ``score`` needs, fitted on in-distribution training ``features`` ``(N, D)``, ``logits``
    ``(N, K)`` and class ``labels`` ``(N,)``: a dict of CPU tensors (safetensors-ready); ``{}`` for logit scores.

    ``mahalanobis``: ``means`` ``(K, D)`` and shared ``precision`` ``(D, D)``; ``knn``: the normalised ``bank``
    ``(N, D)`` and ``k``; ``vim``: ``origin`` ``(D,)`` (the mean feature), ``residual`` ``(D, D - d)`` (the
    directions of least training variance, ``d = vim_dim`` or ``min(D // 2, 1000)``) and ``alpha`` (mean max
    logit / mean residual norm, Wang et al. 2022).

    >>> sorted(fit_rejection_stats(torch.randn(40, 4), torch.randn(40, 2), torch.arange(40) % 2, "mahalanobis"))
    ['means', 'precision']
    """
    if not needs_features(score):
        return {}
    if score in ENSEMBLE_SCORES:
        raise ConfigError("the disagreement rule's statistics are the ensemble's member heads, not fitted on "
                          "features: store it with `imgclf robustness ENSEMBLE DATA --rule disagreement` or "
                          "`imgclf ensemble ... --rule disagreement`")  # fmt: skip
    z = M.as_2d(features, "features").float().cpu()
    if score == "mahalanobis":
        maha = M.Mahalanobis().fit(z, labels)
        return {"means": maha.means_, "precision": maha.precision_}  # type: ignore[dict-item]
    if score == "knn":
        k = default_knn_k(z.shape[0]) if k is None else int(k)
        return {"bank": M.KNNScorer(k=k).fit(z).bank_, "k": torch.tensor(k)}  # type: ignore[dict-item]
    logits_t = M.as_2d(logits, "logits").float().cpu()
    if logits_t.shape[0] != z.shape[0]:
        raise DataError(f"got {z.shape[0]} feature rows but {logits_t.shape[0]} logit rows.")
    d = min(z.shape[1] // 2, 1000) if vim_dim is None else int(vim_dim)
    if not 0 < d < z.shape[1]:
        raise ConfigError(f"ViM needs 0 < principal dimension < {z.shape[1]} (the feature size), got {d}.")
    origin = z.mean(dim=0)  # (D,)
    centred = (z - origin).double()
    _, vecs = torch.linalg.eigh(centred.T @ centred / z.shape[0])  # ascending eigenvalues
    residual = vecs[:, : z.shape[1] - d].float().contiguous()  # (D, D - d) least-variance directions
    norms = ((z - origin) @ residual).norm(dim=1)  # (N,)
    alpha = logits_t.amax(dim=1).mean() / norms.mean().clamp_min(1e-12)
    return {"origin": origin, "residual": residual, "alpha": alpha.reshape(())}


def _stat(stats: Mapping[str, torch.Tensor] | None, key: str, name: str) -> torch.Tensor:
    if not stats or key not in stats:
        raise BundleError(
            f"the {name} rejection rule needs its fitted statistics ({key!r} is missing): the bundle's "
            "rejection.safetensors is absent or damaged; re-run `imgclf robustness MODEL DATA` to rewrite it"
        )
    return stats[key]


def ood_score(name: str, logits: Any, temperature: float = 1.0, *, features: Any = None,
              stats: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:  # fmt: skip
    """The score ``(N,)`` of ``name`` (higher = more in-distribution): msp at ``temperature`` (calibrated),
    max_logit or energy at T = 1 from logits ``(N, K)``; mahalanobis, knn, vim from the pooled ``features``
    ``(N, D)`` of the same pass with the ``stats`` of :func:`fit_rejection_stats`; disagreement (ensembles) from
    the ensemble's pooled features with its members' heads (``imgclf.models.ensemble_head_stats``).

    >>> [round(v, 3) for v in ood_score("msp", torch.tensor([[4.0, 0.0]])).tolist()]
    [0.982]
    """
    _known(name)
    z = torch.as_tensor(np.asarray(logits) if not isinstance(logits, torch.Tensor) else logits).float()
    if name == "msp":
        return M.msp(z, float(temperature or 1.0))
    if name == "max_logit":
        return M.max_logit(z)
    if name == "energy":
        return M.energy(z)
    if features is None:
        raise DataError(f"the {name} rejection rule scores pre-logit features, but only logits were given.")
    f = M.as_2d(features if isinstance(features, torch.Tensor) else np.asarray(features), "features").float().cpu()
    if name == "mahalanobis":
        maha = M.Mahalanobis()
        maha.means_ = _stat(stats, "means", name).double()
        maha.precision_ = _stat(stats, "precision", name).double()
        return maha.score(f)
    if name == "disagreement":
        return -_member_disagreement(f, stats)
    if name == "knn":
        knn = M.KNNScorer(k=int(_stat(stats, "k", name)))
        knn.bank_ = _stat(stats, "bank", name).float()
        return knn.score(f)
    origin, residual = _stat(stats, "origin", name).float(), _stat(stats, "residual", name).float()
    if f.shape[1] != origin.shape[0]:
        raise DataError(f"ViM was fitted on {origin.shape[0]}-dim features but got {f.shape[1]}-dim ones.")
    return M.energy(z).float().cpu() - float(_stat(stats, "alpha", name)) * ((f - origin) @ residual).norm(dim=1)


def _member_disagreement(features: torch.Tensor, stats: Mapping[str, torch.Tensor] | None) -> torch.Tensor:
    """Mutual information ``(N,)`` of the ensemble members' softmax outputs, each member's logits recomputed from
    its slice of the pooled ``features`` ``(N, sum D_k)`` with its stored head (``weight``, ``bias``, ``widths``)."""
    # imported here: only ensemble bundles get this far, and `import imgclf.tasks` stays free of the model zoo
    from imgclf.models import mutual_information

    weight, bias = _stat(stats, "weight", "disagreement").float(), _stat(stats, "bias", "disagreement").float()
    widths = [int(w) for w in _stat(stats, "widths", "disagreement").tolist()]
    if features.shape[1] != sum(widths):
        raise DataError(f"the disagreement rule was stored for {sum(widths)}-dim ensemble features, got "
                        f"{features.shape[1]}-dim ones: re-run `imgclf robustness` on this bundle")  # fmt: skip
    chunks, heads = torch.split(features, widths, dim=1), torch.split(weight, widths, dim=1)
    stack = torch.stack([f @ w.T + b for f, w, b in zip(chunks, heads, bias)])  # (K, N, C)
    return mutual_information(stack, "softmax")


def rejection_scores(rule: dict[str, Any], logits: Any, temperature: Any = None, *, features: Any = None,
                     stats: Mapping[str, torch.Tensor] | None = None) -> np.ndarray:  # fmt: skip
    """The rule's score of each row of ``logits`` ``(N, C)`` (and ``features`` ``(N, D)`` for a feature rule,
    with its ``stats``) as float64 ``(N,)``. THE scoring function: predict, evaluate, serve, batch and the
    exported model's inference all call it.

    The score is computed at the temperature the threshold was chosen at (``rule["temperature"]``), falling back
    to ``temperature`` (the bundle's calibration) for rules written before it was recorded.
    """
    t = rule.get("temperature", temperature)
    t = float(t) if isinstance(t, (int, float)) and t else 1.0
    return ood_score(str(rule["score"]), logits, t, features=features, stats=stats).double().cpu().numpy()


def with_reasons(answers: Sequence[Answer], rule: dict[str, Any] | None) -> list[Answer]:
    """``answers`` (:class:`~imgclf.tasks.Answer`) with a one-line ``reason`` on each one the ``rule`` flagged.

    >>> rule = {"score": "msp", "threshold": 0.5}
    >>> with_reasons([Answer("unknown", 0.4, unknown=True, ood_score=0.3)], rule)[0].reason
    "msp score 0.3 is below the bundle's threshold 0.5: unlike the training images"
    """
    if not rule or "threshold" not in rule:
        return list(answers)
    return [replace(a, reason=f"{rule['score']} score {a.ood_score:.4g} is below the bundle's threshold "
                              f"{float(rule['threshold']):.4g}: unlike the training images")
            if a.unknown and a.ood_score is not None else a for a in answers]  # fmt: skip


def fit_rejection(logits: Any, *, score: str = "msp", temperature: Any = None,
                  target_acceptance: float = DEFAULT_ACCEPTANCE, features: Any = None,
                  stats: Mapping[str, torch.Tensor] | None = None, **info: Any) -> dict[str, Any]:  # fmt: skip
    """A rule accepting ``target_acceptance`` of the in-distribution ``logits`` (held-out images; with their
    ``features`` and the fitted ``stats`` for a feature rule), at the calibration ``temperature``; ``info``
    (e.g. auroc, the OOD source, why this score) is stored alongside.

    >>> fit_rejection(np.array([[3.0, 0.0], [1.0, 0.0]]), target_acceptance=0.5)["score"]
    'msp'
    """
    t = float(temperature) if isinstance(temperature, (int, float)) and temperature else 1.0
    rule = {"score": _known(score), "temperature": t, "target_acceptance": target_acceptance, **info}
    scores = rejection_scores(rule, logits, features=features, stats=stats)
    rule["threshold"] = M.choose_threshold(scores, target_acceptance)
    return rule
