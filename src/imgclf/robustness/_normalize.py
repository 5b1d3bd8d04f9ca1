"""Pixel-space view of a classifier: attacks and corruptions live in [0, 1], models take normalised input."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from imgclf import data as D
from imgclf.errors import ConfigError


class NormalizedModel(nn.Module):
    """Wrap a classifier that takes normalised input so that it takes pixel images in [0, 1].

    ``forward(x)`` computes ``model((x - mean) / std)`` for ``x`` of shape ``(B, C, H, W)``; the attacks, the
    corruption sweep and the robust-accuracy curve all take such a pixel-space model, so that an epsilon of
    8/255 means 8 grey levels whatever the normalisation.

    >>> pixel_model = NormalizedModel(model, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))  # doctest: +SKIP
    >>> pixel_model(torch.rand(2, 3, 32, 32)).shape  # doctest: +SKIP
    torch.Size([2, 10])
    """

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor(tuple(mean), dtype=torch.float32).flatten()
        std_t = torch.as_tensor(tuple(std), dtype=torch.float32).flatten()
        if mean_t.numel() == 0 or mean_t.shape != std_t.shape:
            raise ConfigError(
                f"NormalizedModel needs one mean and one std per channel, got {mean_t.numel()} means and "
                f"{std_t.numel()} stds; pass the model's DataConfig mean and std."
            )
        if not bool((std_t > 0).all()):
            raise ConfigError(f"NormalizedModel std values must be positive, got {std_t.tolist()}.")
        self.model = model
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1), persistent=False)  # (1, C, 1, 1)
        self.register_buffer("std", std_t.view(1, -1, 1, 1), persistent=False)  # (1, C, 1, 1)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Pixel images ``(B, C, H, W)`` in [0, 1] -> the normalised input the wrapped model expects."""
        return D.normalize(x, self.mean.flatten(), self.std.flatten())  # (B, C, H, W)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.normalize(x))  # (B, K)
