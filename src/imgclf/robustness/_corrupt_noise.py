"""Noise corruptions of ImageNet-C (Hendrycks & Dietterich 2019) on ``(B, C, H, W)`` tensors in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch


def _like(array: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(device=x.device, dtype=x.dtype)


def gaussian_noise(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """Additive Gaussian noise, standard deviation 0.08 .. 0.38."""
    sigma = (0.08, 0.12, 0.18, 0.26, 0.38)[severity - 1]
    return x + _like(rng.normal(0.0, sigma, size=x.shape).astype(np.float32), x)


def shot_noise(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """Poisson (photon) noise: ``Poisson(x * c) / c`` with ``c`` = 60 .. 3 photons at full intensity."""
    photons = (60, 25, 12, 5, 3)[severity - 1]
    lam = x.detach().double().cpu().numpy().clip(0, 1) * photons
    return _like((rng.poisson(lam) / photons).astype(np.float32), x)


def impulse_noise(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """Salt-and-pepper noise: a fraction 0.03 .. 0.27 of the values set to 0 or 1 (half each)."""
    amount = (0.03, 0.06, 0.09, 0.17, 0.27)[severity - 1]
    hit = _like(rng.random(size=x.shape) < amount, x).bool()
    salt = _like((rng.random(size=x.shape) < 0.5).astype(np.float32), x)
    return torch.where(hit, salt, x)
