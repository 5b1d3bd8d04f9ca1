"""The ImageNet-C corruption registry and ``corrupt``: 15 corruptions x 5 severities on pixel tensors."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import torch

from imgclf.errors import ConfigError, DataError
from imgclf.robustness._corrupt_blur import defocus_blur, glass_blur, motion_blur, zoom_blur
from imgclf.robustness._corrupt_digital import brightness, contrast, elastic_transform, jpeg_compression, pixelate
from imgclf.robustness._corrupt_noise import gaussian_noise, impulse_noise, shot_noise
from imgclf.robustness._corrupt_weather import fog, frost, snow
from imgclf.robustness._registry import build_registry, lookup

#: ``fn(images (B, C, H, W) in [0, 1], severity 1..5, numpy Generator) -> images`` (clipped by ``corrupt``).
Corruption = Callable[[torch.Tensor, int, np.random.Generator], torch.Tensor]

#: The 15 ImageNet-C corruptions, in the benchmark's order (noise, blur, weather, digital).
CORRUPTIONS: Mapping[str, Corruption] = build_registry(
    "corruption",
    [
        ("gaussian_noise", gaussian_noise),
        ("shot_noise", shot_noise),
        ("impulse_noise", impulse_noise),
        ("defocus_blur", defocus_blur),
        ("glass_blur", glass_blur),
        ("motion_blur", motion_blur),
        ("zoom_blur", zoom_blur),
        ("snow", snow),
        ("frost", frost),
        ("fog", fog),
        ("brightness", brightness),
        ("contrast", contrast),
        ("elastic_transform", elastic_transform),
        ("pixelate", pixelate),
        ("jpeg_compression", jpeg_compression),
    ],
)

SEVERITIES = (1, 2, 3, 4, 5)
MIN_SIZE = 8


def corrupt(
    images: torch.Tensor,
    name: str,
    severity: int,
    seed: int | None = 0,
    *,
    generator: np.random.Generator | None = None,
) -> torch.Tensor:
    """Apply corruption ``name`` of :data:`CORRUPTIONS` at ``severity`` (1..5) to pixel images in [0, 1].

    ``images`` is ``(B, C, H, W)`` or one ``(C, H, W)`` image, any size from 8 px (spatial parameters are
    ImageNet-C's at 224 px, scaled to the image). The result has the same shape, dtype and device, lies in
    [0, 1], and repeats exactly for the same ``seed`` (or the same state of ``generator``, a
    ``numpy.random.Generator`` that then takes precedence; ``seed=None`` draws fresh randomness).

    >>> foggy = corrupt(torch.rand(4, 3, 32, 32), "fog", severity=3, seed=0)
    >>> foggy.shape, bool(foggy.min() >= 0) and bool(foggy.max() <= 1)
    (torch.Size([4, 3, 32, 32]), True)
    """
    fn = lookup("corruption", CORRUPTIONS, name)
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise ConfigError(f"severity must be an integer from 1 to 5, got {severity!r}.")
    single = images.dim() == 3
    batch = images.unsqueeze(0) if single else images
    if batch.dim() != 4:
        raise DataError(f"corrupt needs images (B, C, H, W) or (C, H, W), got shape {tuple(images.shape)}.")
    if min(batch.shape[-2:]) < MIN_SIZE:
        raise DataError(f"corrupt needs images of at least {MIN_SIZE} x {MIN_SIZE} px, got {tuple(images.shape)}.")
    if batch.numel() and (float(batch.min()) < -1e-6 or float(batch.max()) > 1 + 1e-6):
        raise DataError(
            "corrupt works on pixel images in [0, 1], got values outside; corrupt before normalising "
            "(or undo the normalisation first)."
        )
    rng = generator if generator is not None else np.random.default_rng(seed)
    work = batch.detach().float().clamp(0, 1)  # (B, C, H, W)
    out = fn(work, int(severity), rng).clamp(0, 1).to(images.dtype)  # (B, C, H, W)
    return out[0] if single else out
