"""Pixel normalisation, one implementation: model inputs are ``(x - mean) / std`` of pixels in [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def _stats(values: Sequence[float] | torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Per-channel values shaped to broadcast over ``like`` (``(C, H, W)`` or ``(B, C, H, W)``)."""
    t = torch.as_tensor(values, dtype=like.dtype if like.is_floating_point() else torch.float32, device=like.device)
    return t.reshape(-1, 1, 1) if like.dim() == 3 else t.reshape(1, -1, 1, 1)


def normalize(pixels: torch.Tensor, mean: Sequence[float] | torch.Tensor,
              std: Sequence[float] | torch.Tensor) -> torch.Tensor:  # fmt: skip
    """Pixels in [0, 1] ``(B, C, H, W)`` or ``(C, H, W)`` -> the normalised input a model takes.

    >>> normalize(torch.ones(3, 1, 1), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)).flatten().tolist()
    [2.0, 2.0, 2.0]
    """
    return (pixels - _stats(mean, pixels)) / _stats(std, pixels)


def denormalize(inputs: torch.Tensor, mean: Sequence[float] | torch.Tensor, std: Sequence[float] | torch.Tensor,
                *, clamp: bool = True) -> torch.Tensor:  # fmt: skip
    """Normalised model inputs -> pixels (in [0, 1] with ``clamp``), the inverse of :func:`normalize`.

    >>> denormalize(torch.zeros(1, 3, 1, 1), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)).flatten().tolist()
    [0.5, 0.5, 0.5]
    """
    pixels = inputs * _stats(std, inputs) + _stats(mean, inputs)
    return pixels.clamp(0, 1) if clamp else pixels
