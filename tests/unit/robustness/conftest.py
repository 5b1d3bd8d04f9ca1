"""A tiny classifier trained in a second on a separable synthetic problem, and natural-looking test images."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from imgclf.robustness import NormalizedModel

MEAN, STD = (0.5, 0.45, 0.4), (0.25, 0.25, 0.25)
CLASSES, SIDE = 3, 8


@pytest.fixture(autouse=True, scope="package")
def _one_thread() -> Iterator[None]:
    """Tiny tensors: one thread is faster than two fighting over shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def prototype_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel images ``(n, 3, 8, 8)`` in [0, 1]: one of three fixed patterns plus noise; labels ``(n,)``."""
    protos = torch.rand(CLASSES, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(123))
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    x = 0.25 + 0.5 * protos[y] + 0.1 * torch.randn(n, 3, SIDE, SIDE, generator=g)
    return x.clamp(0, 1), y  # some pixels sit at 0 or 1, so clipping to [0, 1] matters


class SmallMLP(nn.Module):
    """Two hidden ReLU layers: non-linear, so iterative attacks beat one-step FGSM."""

    def __init__(self) -> None:
        super().__init__()
        width = 48
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(3 * SIDE * SIDE, width), nn.ReLU(),
            nn.Linear(width, width), nn.ReLU(), nn.Linear(width, CLASSES),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, K)


@dataclass(frozen=True)
class Trained:
    model: NormalizedModel  # pixel-space view of a normalised-input classifier
    x: torch.Tensor  # (N, 3, 8, 8) held-out pixel images
    y: torch.Tensor  # (N,)
    clean_accuracy: float


@pytest.fixture(scope="package")
def trained(_one_thread: None) -> Trained:
    torch.manual_seed(0)
    model = NormalizedModel(SmallMLP(), MEAN, STD)
    x, y = prototype_images(512, seed=1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    xt, yt = prototype_images(160, seed=2)
    with torch.no_grad():
        accuracy = float((model(xt).argmax(1) == yt).float().mean())
    return Trained(model, xt, yt, accuracy)
