"""Gaussian noise augmentation as a training-loop callback: the base classifier randomized smoothing needs
(Cohen et al. 2019 train it on images with the same noise the smoothed classifier adds)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from imgclf import engine as E
from imgclf.errors import ConfigError


class GaussianNoiseAugment(E.Callback):
    """Adds ``N(0, sigma^2)`` noise in pixel units ([0, 1] scale) to every training batch.

    Batches arrive normalised (``(pixel - mean) / std``), so the noise is divided by the per-channel ``std``: a
    sigma of 0.25 here is the same noise that ``SmoothedClassifier(..., sigma=0.25)`` adds to pixel images. No
    clipping, as in the paper. ``generator`` (CPU) makes the noise repeat.

    >>> callbacks.append(GaussianNoiseAugment(0.25, std=preprocessing.std))  # doctest: +SKIP
    """

    name = "noise_augment"

    def __init__(self, sigma: float, std: Sequence[float], generator: torch.Generator | None = None) -> None:
        if sigma <= 0:
            raise ConfigError(f"--noise-augment needs sigma > 0, got {sigma}; try 0.25 (pixels in [0, 1]).")
        if not std or any(s <= 0 for s in std):
            raise ConfigError(f"noise augmentation needs positive per-channel std values, got {list(std)}.")
        self.sigma, self.std, self.generator = float(sigma), tuple(float(s) for s in std), generator

    def on_batch_start(
        self, state: E.TrainState, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        std = torch.tensor(self.std, device=images.device, dtype=images.dtype).view(1, -1, 1, 1)  # (1, C, 1, 1)
        noise = torch.randn(images.shape, generator=self.generator).to(images.device, images.dtype)
        return images + self.sigma * noise / std, targets  # (B, C, H, W)
