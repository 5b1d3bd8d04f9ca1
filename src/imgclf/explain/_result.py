"""Result types of the explain package: attribution maps and faithfulness scores."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass(frozen=True, eq=False)
class Attribution:
    """Attribution maps for a batch of images, one map per image, each normalised to [0, 1].

    ``maps`` is a CPU float tensor ``(B, H, W)`` at the input resolution; 1 marks the most important pixel of
    each image (an all-zero map means the method found no evidence). ``targets`` are the explained classes,
    ``predicted`` / ``scores`` the model's top class and its probability, ``target_scores`` the probability of
    the explained class. ``layer`` names the module CAM methods read (``None`` for the others).

    >>> att = explain(model, images, method="gradcam")  # doctest: +SKIP
    >>> att.maps.shape, att.to_dict()["method"]  # doctest: +SKIP
    (torch.Size([2, 224, 224]), 'gradcam')
    """

    maps: torch.Tensor  # (B, H, W) float32 in [0, 1]
    method: str
    targets: tuple[int, ...]
    predicted: tuple[int, ...]
    scores: tuple[float, ...]
    target_scores: tuple[float, ...]
    layer: str | None = None
    options: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.targets)

    def to_dict(self, include_maps: bool = False) -> dict[str, Any]:
        """JSON-ready summary; per-image peak location and mean instead of the maps unless ``include_maps``.

        >>> att.to_dict()["images"][0]["peak"]  # doctest: +SKIP
        [12, 30]
        """
        b, h, w = self.maps.shape
        flat = self.maps.reshape(b, -1)  # (B, H*W)
        peaks = flat.argmax(dim=1)  # (B,)
        images = []
        for i in range(b):
            entry: dict[str, Any] = {
                "target": self.targets[i],
                "predicted": self.predicted[i],
                "score": self.scores[i],
                "target_score": self.target_scores[i],
                "peak": [int(peaks[i]) // w, int(peaks[i]) % w],
                "mean": float(flat[i].mean()),
            }
            if include_maps:
                entry["map"] = self.maps[i].tolist()
            images.append(entry)
        return {
            "method": self.method,
            "layer": self.layer,
            "options": dict(self.options),
            "shape": [b, h, w],
            "images": images,
        }


@dataclass(frozen=True)
class Faithfulness:
    """Deletion and insertion curves of the target-class probability (Petsiuk et al. 2018, RISE).

    ``fractions`` are the shares of pixels removed (deletion) or restored (insertion) at each step, most
    attributed first; the curves hold the target probability per image and step, and the AUCs are their
    trapezoid areas over ``fractions``. A faithful map gives a low deletion AUC and a high insertion AUC.

    >>> f = deletion_insertion(model, images, att)  # doctest: +SKIP
    >>> f.mean_deletion_auc < f.mean_insertion_auc  # doctest: +SKIP
    True
    """

    targets: tuple[int, ...]
    fractions: tuple[float, ...]
    deletion_curves: tuple[tuple[float, ...], ...]
    insertion_curves: tuple[tuple[float, ...], ...]
    deletion_auc: tuple[float, ...]
    insertion_auc: tuple[float, ...]

    @property
    def mean_deletion_auc(self) -> float:
        """Deletion AUC averaged over images (lower is better)."""
        return sum(self.deletion_auc) / len(self.deletion_auc)

    @property
    def mean_insertion_auc(self) -> float:
        """Insertion AUC averaged over images (higher is better)."""
        return sum(self.insertion_auc) / len(self.insertion_auc)

    def to_dict(self, include_curves: bool = True) -> dict[str, Any]:
        """JSON-ready dict: mean and per-image AUCs, and the curves unless ``include_curves`` is False."""
        out: dict[str, Any] = {
            "mean_deletion_auc": self.mean_deletion_auc,
            "mean_insertion_auc": self.mean_insertion_auc,
            "deletion_auc": list(self.deletion_auc),
            "insertion_auc": list(self.insertion_auc),
            "targets": list(self.targets),
        }
        if include_curves:
            out["fractions"] = list(self.fractions)
            out["deletion_curves"] = [list(c) for c in self.deletion_curves]
            out["insertion_curves"] = [list(c) for c in self.insertion_curves]
        return out


@dataclass(frozen=True)
class SanityResult:
    """Cascading model-randomisation check (Adebayo et al. 2018): how much the maps of a copy of the model whose
    layers are re-initialised from the top down still resemble the trained model's maps.

    ``layers[i]`` is the layer (or group of layers) randomised at step ``i``, output side first; step ``i`` has
    ``layers[: i + 1]`` randomised, the last step all of them. ``correlations[i]`` is the mean map similarity
    (Spearman) at step ``i``. ``flat_maps`` counts trained-model maps with no evidence at all (constant): such a
    map explains nothing and scores as identical to the randomised one (1), so an empty map fails. The check
    ``passed`` when no map is flat and the fully randomised similarity is below ``threshold``.

    >>> res = cascading_randomization(model, images, "gradcam")  # doctest: +SKIP
    >>> res.passed, [round(c, 2) for c in res.correlations]  # doctest: +SKIP
    (True, [0.41, 0.12, 0.05, 0.03])
    """

    method: str
    layers: tuple[str, ...]
    correlations: tuple[float, ...]
    flat_maps: int
    images: int
    threshold: float = 0.5

    @property
    def correlation(self) -> float:
        """Similarity with every layer randomised (the last step)."""
        return self.correlations[-1]

    @property
    def passed(self) -> bool:
        return self.flat_maps == 0 and self.correlation < self.threshold

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "passed": self.passed, "correlation": self.correlation,
                "threshold": self.threshold, "flat_maps": self.flat_maps, "images": self.images,
                "steps": [{"randomised": layer, "correlation": c}
                          for layer, c in zip(self.layers, self.correlations, strict=True)]}  # fmt: skip
