"""Blur corruptions of ImageNet-C on ``(B, C, H, W)`` tensors in [0, 1]; sizes scale with the image."""

from __future__ import annotations

import numpy as np
import torch

from imgclf.robustness._filters import (
    conv_per_image,
    disk_kernel,
    gaussian_blur,
    motion_kernel,
    scaled_px,
    size_scale,
    warp,
    zoom_center,
)


def defocus_blur(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """Convolution with the out-of-focus aperture: a disk of radius 3 .. 10 px at 224 px, scaled to the image.

    The disk is anti-aliased by supersampling (in place of ImageNet-C's small Gaussian on an aliased disk), and
    its radius is lifted to at least half a pixel so that severity 1 still blurs a 28-px image.
    """
    radius = (3, 4, 6, 8, 10)[severity - 1]
    return conv_per_image(x, disk_kernel(scaled_px(radius, x)))


def glass_blur(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """Frosted glass: Gaussian blur, pixels jittered locally (``iterations`` times, up to ``delta`` px each way),
    blurred again. ImageNet-C swaps pixels with integer neighbours in a Python loop; a vectorised, continuous
    bilinear jitter gives the same look and still acts when the scaled delta is below a pixel (tiny images)."""
    sigma, delta, iterations = ((0.7, 1, 2), (0.9, 2, 1), (1.0, 2, 3), (1.1, 3, 2), (1.5, 4, 2))[severity - 1]
    out = gaussian_blur(x, scaled_px(sigma, x, floor=0.3))
    reach = delta * size_scale(x)  # proportional: a floor would let the iteration count decide the order
    b, _, h, w = x.shape
    for _ in range(iterations):
        flow = torch.from_numpy(rng.uniform(-reach, reach, size=(b, h, w, 2)).astype(np.float32))  # (B, H, W, 2)
        out = warp(out, flow.to(x.device), padding_mode="border")
    return gaussian_blur(out, scaled_px(sigma, x, floor=0.3))


def motion_blur(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """One-sided motion blur along a random direction in [-45, 45] degrees per image; ImageMagick's (radius,
    sigma) = (10, 3) .. (20, 15) px at 224 px."""
    radius, sigma = ((10, 3), (15, 5), (15, 8), (15, 12), (20, 15))[severity - 1]
    angles = rng.uniform(-45, 45, size=x.shape[0])
    length, spread = scaled_px(radius, x), scaled_px(sigma, x)
    kernels = [motion_kernel(length, spread, float(a)) for a in angles]
    return conv_per_image(x, torch.stack(kernels))  # kernels (B, k, k)


def zoom_blur(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """Mean of the image and its centre zooms by 1 .. 1.1 (severity 1) up to 1 .. 1.3 (severity 5)."""
    stop, step = ((1.11, 0.01), (1.16, 0.01), (1.21, 0.02), (1.26, 0.02), (1.31, 0.03))[severity - 1]
    factors = np.arange(1, stop, step)
    out = x.clone()
    for factor in factors:
        out = out + zoom_center(x, float(factor))
    return out / (len(factors) + 1)
