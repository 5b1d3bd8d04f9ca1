"""Accuracy under every corruption and severity: the ImageNet-C style report for one model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from imgclf.errors import ConfigError, DataError
from imgclf.robustness._batches import Batches, iter_batches
from imgclf.robustness._corruptions import CORRUPTIONS, SEVERITIES, corrupt
from imgclf.robustness._registry import lookup
from imgclf.utils import eval_mode, model_device


@dataclass(frozen=True)
class CorruptionReport:
    """Accuracy of one model on clean and corrupted copies of the same ``n`` images.

    ``accuracies[name]`` holds one accuracy per entry of ``severities``. ``mean_corruption_accuracy`` is the
    mean over every corruption and severity; ``relative_drop`` is ``(clean - mean) / clean`` (0 when clean
    accuracy is 0).

    >>> report.mean_corruption_accuracy, report.per_severity()  # doctest: +SKIP
    (0.71, (0.88, 0.8, 0.71, 0.63, 0.54))
    """

    clean_accuracy: float
    accuracies: Mapping[str, tuple[float, ...]]
    severities: tuple[int, ...]
    n: int
    seed: int

    @property
    def names(self) -> tuple[str, ...]:
        """The corruptions evaluated, in order."""
        return tuple(self.accuracies)

    @property
    def mean_corruption_accuracy(self) -> float:
        """Mean accuracy over every corruption and severity."""
        return float(np.mean([a for row in self.accuracies.values() for a in row]))

    @property
    def relative_drop(self) -> float:
        """``(clean - mean corruption accuracy) / clean``: the share of the clean accuracy lost on average."""
        if self.clean_accuracy == 0:
            return 0.0
        return (self.clean_accuracy - self.mean_corruption_accuracy) / self.clean_accuracy

    def per_corruption(self) -> dict[str, float]:
        """Mean accuracy of each corruption over the severities."""
        return {name: float(np.mean(row)) for name, row in self.accuracies.items()}

    def per_severity(self) -> tuple[float, ...]:
        """Mean accuracy at each severity over the corruptions."""
        table = np.array([row for row in self.accuracies.values()])  # (corruptions, severities)
        return tuple(float(v) for v in table.mean(axis=0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: the table, the per-corruption / per-severity means and the summary numbers."""
        return {
            "clean_accuracy": self.clean_accuracy,
            "mean_corruption_accuracy": self.mean_corruption_accuracy,
            "relative_drop": self.relative_drop,
            "severities": list(self.severities),
            "accuracies": {name: list(row) for name, row in self.accuracies.items()},
            "per_corruption": self.per_corruption(),
            "per_severity": list(self.per_severity()),
            "n": self.n,
            "seed": self.seed,
        }


def corruption_accuracy(
    model: nn.Module,
    data: Batches,
    names: Sequence[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    *,
    seed: int = 0,
    max_samples: int | None = None,
    batch_size: int = 128,
) -> CorruptionReport:
    """Accuracy of a pixel-space ``model`` on each corruption ``names`` (default: all 15) at each severity.

    ``data`` is a loader of ``(pixel images (B, C, H, W) in [0, 1], labels (B,))`` batches or one
    ``(images, labels)`` pair; ``max_samples`` stops early. Batch ``i`` is corrupted with seed
    ``seed + i``, so the report repeats for the same data order. A normalised-input classifier is wrapped
    with :class:`NormalizedModel` first.

    >>> report = corruption_accuracy(NormalizedModel(model, mean, std), loader, ["fog", "snow"])  # doctest: +SKIP
    >>> report.accuracies["fog"]  # doctest: +SKIP
    (0.9, 0.86, 0.8, 0.71, 0.6)
    """
    chosen = list(CORRUPTIONS) if names is None else list(names)
    for name in chosen:
        lookup("corruption", CORRUPTIONS, name)
    levels = tuple(int(s) for s in severities)
    if not chosen or not levels or any(s not in SEVERITIES for s in levels):
        raise ConfigError(f"need at least one corruption and severities from 1 to 5, got {chosen} and {levels}.")
    device = model_device(model)
    correct = {name: [0] * len(levels) for name in chosen}
    clean, n = 0, 0
    with eval_mode(model), torch.no_grad():
        for i, (images, labels) in enumerate(iter_batches(data, batch_size=batch_size, max_samples=max_samples)):
            x, y = images.to(device=device, dtype=torch.float32), labels.to(device=device, dtype=torch.long)
            clean += int((model(x).argmax(dim=1) == y).sum())
            n += x.shape[0]
            for name in chosen:
                for j, severity in enumerate(levels):
                    corrupted = corrupt(x, name, severity, seed=seed + i)  # (B, C, H, W)
                    correct[name][j] += int((model(corrupted).argmax(dim=1) == y).sum())
    if n == 0:
        raise DataError("corruption_accuracy got no examples; check that the loader yields batches.")
    return CorruptionReport(
        clean_accuracy=clean / n,
        accuracies={name: tuple(c / n for c in counts) for name, counts in correct.items()},
        severities=levels,
        n=n,
        seed=seed,
    )
