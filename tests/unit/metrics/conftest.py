"""Random but seeded predictions shared by the metrics tests."""

from __future__ import annotations

import numpy as np
import pytest


def random_predictions(n: int, c: int, seed: int, skill: float = 1.5) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities ``(n, c)`` from noisy logits that favour the true class by ``skill``, and labels ``(n,)``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    z = rng.normal(size=(n, c))
    z[np.arange(n), y] += skill
    p = np.exp(z - z.max(axis=1, keepdims=True))
    return p / p.sum(axis=1, keepdims=True), y


@pytest.fixture
def preds() -> tuple[np.ndarray, np.ndarray]:
    return random_predictions(400, 6, seed=1)
