"""Synthetic outlier images: stand-ins for out-of-distribution data when no OOD folder is given."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from imgclf.errors import ConfigError, DataError
from imgclf.robustness._filters import gaussian_blur
from imgclf.robustness._registry import lookup

OUTLIER_KINDS = ("uniform", "gaussian", "blobs", "constant", "stripes", "checkerboard")


def synthetic_outliers(
    n: int,
    shape: Sequence[int] = (3, 32, 32),
    seed: int = 0,
    kinds: Sequence[str] = OUTLIER_KINDS,
) -> torch.Tensor:
    """``n`` pixel images ``(n, C, H, W)`` in [0, 1] that belong to no natural class, cycling through ``kinds``:

    ``uniform`` (i.i.d. uniform noise), ``gaussian`` (grey-centred Gaussian noise), ``blobs`` (blurred noise
    stretched to the full range), ``constant`` (one random colour), ``stripes`` (random-angle sine gratings)
    and ``checkerboard`` (two random colours in squares). Repeats exactly for the same ``seed``.

    >>> synthetic_outliers(6, (3, 28, 28), seed=0).shape
    torch.Size([6, 3, 28, 28])
    """
    if n < 0:
        raise DataError(f"n must be non-negative, got {n}.")
    if len(shape) != 3 or min(shape) < 1:
        raise DataError(f"shape must be (C, H, W) with positive sizes, got {tuple(shape)}.")
    if not kinds:
        raise ConfigError(f"kinds must name at least one of {OUTLIER_KINDS}.")
    makers = {
        "uniform": _uniform,
        "gaussian": _gaussian,
        "blobs": _blobs,
        "constant": _constant,
        "stripes": _stripes,
        "checkerboard": _checkerboard,
    }
    chosen = [lookup("outlier kind", makers, kind) for kind in kinds]
    c, h, w = (int(v) for v in shape)
    rng = np.random.default_rng(seed)
    images = [chosen[i % len(chosen)](rng, c, h, w) for i in range(n)]
    if not images:
        return torch.zeros(0, c, h, w)
    return torch.from_numpy(np.stack(images).astype(np.float32)).clamp(0, 1)  # (n, C, H, W)


def _uniform(rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
    return rng.random((c, h, w))


def _gaussian(rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
    return np.clip(rng.normal(0.5, rng.uniform(0.1, 0.3), (c, h, w)), 0, 1)


def _blobs(rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
    noise = torch.from_numpy(rng.random((1, c, h, w)).astype(np.float32))
    smooth = gaussian_blur(noise, rng.uniform(0.05, 0.15) * min(h, w))[0].numpy()  # (C, H, W)
    lo, hi = smooth.min(), smooth.max()
    return (smooth - lo) / max(hi - lo, 1e-6)


def _constant(rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
    return np.broadcast_to(rng.random((c, 1, 1)), (c, h, w)).copy()


def _stripes(rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    angle, period = rng.uniform(0, np.pi), rng.uniform(3, max(4.0, min(h, w) / 2))
    wave = 0.5 + 0.5 * np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)  # (H, W)
    colour = rng.random((c, 1, 1))
    return wave[None] * colour + (1 - wave[None]) * (1 - colour)


def _checkerboard(rng: np.random.Generator, c: int, h: int, w: int) -> np.ndarray:
    cell = int(rng.integers(2, max(3, min(h, w) // 4)))
    yy, xx = np.mgrid[0:h, 0:w]
    board = ((yy // cell + xx // cell) % 2).astype(np.float64)[None]  # (1, H, W)
    a, b = rng.random((c, 1, 1)), rng.random((c, 1, 1))
    return board * a + (1 - board) * b
