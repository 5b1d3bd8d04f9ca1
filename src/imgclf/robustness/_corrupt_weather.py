"""Weather-like corruptions of ImageNet-C, generated procedurally (no image files): fog from a plasma fractal,
frost from a drawn ice-crystal texture, snow from thresholded noise smeared into streaks."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from imgclf.robustness._filters import (
    REFERENCE_SIZE,
    conv_per_image,
    motion_kernel,
    plasma_fractal,
    resize,
    scaled_px,
)


def luminance(x: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma ``(B, 1, H, W)`` of RGB images (the channel mean for other channel counts)."""
    if x.shape[1] != 3:
        return x.mean(dim=1, keepdim=True)
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1, keepdim=True)


def _tensor(array: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(device=x.device, dtype=x.dtype)


def _fractal_like(x: torch.Tensor, decay: float, rng: np.random.Generator) -> torch.Tensor:
    """One plasma fractal per image ``(B, 1, H, W)``: like ImageNet-C's 224 crop of a 256 map, resized to the image.

    Small images get a smaller map (at least one map pixel per image pixel): diamond-square builds the coarse
    octaves first, so the cloud keeps its shape and only detail finer than a pixel is left out.
    """
    b, _, h, w = x.shape
    maps = []
    for _ in range(b):
        fractal = plasma_fractal(max(32, math.ceil(max(h, w) * 256 / REFERENCE_SIZE)), decay, rng)
        crop = round(fractal.shape[0] * REFERENCE_SIZE / 256)
        maps.append(fractal[:crop, :crop])
    stacked = _tensor(np.stack(maps)[:, None], x)  # (B, 1, crop, crop)
    return resize(stacked, (h, w), mode="area" if stacked.shape[-1] >= max(h, w) else "bilinear")


def fog(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """Add ``c`` times a plasma-fractal cloud (roughness ``decay``), then rescale by ``max / (max + c)``.

    ImageNet-C's roughness schedule with heavier clouds at severities 4 and 5 (c = 3 and 3.5 instead of 2.5
    and 3): a rougher cloud of the same weight is not a stronger corruption, and the fog must thicken.
    """
    strength, decay = ((1.5, 2.0), (2.0, 2.0), (2.5, 1.7), (3.0, 1.5), (3.5, 1.4))[severity - 1]
    peak = x.amax(dim=(1, 2, 3), keepdim=True)  # (B, 1, 1, 1)
    return (x + strength * _fractal_like(x, decay, rng)) * peak / (peak + strength)


def frost_texture(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A frost-on-glass texture ``(height, width)`` in [0, 1]: a hazy fractal base with branching ice needles.

    Drawn at a working size of at least 128 px and resized, so the crystals keep their look on tiny images.
    """
    size = max(128, height, width)
    canvas = Image.new("L", (size, size), 0)
    draw = ImageDraw.Draw(canvas)
    for _ in range(int(60 * (size / 128) ** 2 / 4) + 30):  # needle clusters
        cx, cy = rng.uniform(0, size, 2)
        base = rng.uniform(0, 2 * math.pi)
        for arm in range(int(rng.integers(3, 7))):
            angle = base + arm * 2 * math.pi / 6 + rng.normal(0, 0.2)
            length = rng.uniform(0.03, 0.12) * size
            ex, ey = cx + length * math.cos(angle), cy + length * math.sin(angle)
            shade = int(rng.uniform(120, 255))
            draw.line((cx, cy, ex, ey), fill=shade, width=max(1, round(size / 160)))
            for _ in range(int(rng.integers(0, 3))):  # side branches
                t = rng.uniform(0.3, 0.9)
                bx, by = cx + t * (ex - cx), cy + t * (ey - cy)
                side = angle + rng.choice((-1, 1)) * math.pi / 3
                blen = length * rng.uniform(0.2, 0.5)
                draw.line((bx, by, bx + blen * math.cos(side), by + blen * math.sin(side)), fill=shade // 2 + 60)
    needles = np.asarray(canvas, dtype=np.float32) / 255
    haze = plasma_fractal(size, 1.8, rng)[:size, :size].astype(np.float32)
    texture = np.clip(0.35 * haze + 0.45 + 0.6 * needles, 0, 1)  # ice adds light: brighter than most scenes
    small = Image.fromarray((texture * 255).astype(np.uint8)).resize((width, height), Image.Resampling.BOX)
    return np.asarray(small, dtype=np.float32) / 255


FROST_POOL = 4


def _frost_crops(n: int, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, h, w)`` frost layers: random crops and flips of a few textures a third larger than the image, as
    ImageNet-C crops its six frost photographs (and far cheaper than one texture per image)."""
    th, tw = math.ceil(h * 4 / 3), math.ceil(w * 4 / 3)
    pool = [frost_texture(th, tw, rng) for _ in range(min(n, FROST_POOL))]
    crops = np.empty((n, h, w), dtype=np.float32)
    for i in range(n):
        top, left = int(rng.integers(0, th - h + 1)), int(rng.integers(0, tw - w + 1))
        crop = pool[int(rng.integers(len(pool)))][top : top + h, left : left + w]
        crops[i] = crop[::-1] if rng.random() < 0.5 else crop
        if rng.random() < 0.5:
            crops[i] = crops[i][:, ::-1]
    return crops


def frost(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """``a * image + b * frost`` with (a, b) = (1, 0.4) .. (0.6, 0.8); the frost is faintly blue-white.

    ImageNet-C uses (0.65, 0.7) and (0.6, 0.75) for severities 4 and 5; with the same frost amount as severity
    3, severity 4 only darkens the image and can land closer to it, so the frost weight keeps growing here.
    """
    keep, add = ((1.0, 0.4), (0.8, 0.6), (0.7, 0.7), (0.65, 0.75), (0.6, 0.8))[severity - 1]
    b, c, h, w = x.shape
    layer = _tensor(_frost_crops(b, h, w, rng)[:, None], x)  # (B, 1, H, W)
    tint = _tensor(np.array([0.86, 0.93, 1.0] if c == 3 else [0.93] * c), x).view(1, c, 1, 1)
    return keep * x + add * layer * tint


def snow(x: torch.Tensor, severity: int, rng: np.random.Generator) -> torch.Tensor:
    """Snow as in ImageNet-C: Gaussian noise zoomed into flakes, thresholded, motion-blurred into streaks
    falling at -135 .. -45 degrees, added twice (once rotated 180 degrees) over a whitened image."""
    loc, scale, zoom, threshold, radius, sigma, keep = (
        (0.1, 0.3, 3.0, 0.5, 10, 4, 0.8),
        (0.2, 0.3, 2.0, 0.5, 12, 4, 0.7),
        (0.55, 0.3, 4.0, 0.9, 12, 8, 0.7),
        (0.55, 0.3, 4.5, 0.85, 12, 8, 0.65),
        (0.55, 0.3, 2.5, 0.85, 12, 12, 0.55),
    )[severity - 1]
    b, c, h, w = x.shape
    # Flakes are drawn at ImageNet-C's scale (shorter side >= 224 px) and area-resized to the image: the
    # threshold is non-linear, so drawing them at 28 px would change how much snow falls, not just its size.
    up = max(1.0, REFERENCE_SIZE / min(h, w))
    work = (round(h * up), round(w * up))
    cell = zoom * min(work) / REFERENCE_SIZE  # flake size in working pixels
    noise = rng.normal(loc, scale, size=(b, 1, math.ceil(work[0] / cell), math.ceil(work[1] / cell)))
    layer = resize(_tensor(noise, x), work, mode="bilinear")  # (B, 1, h', w')
    layer = torch.where(layer < threshold, torch.zeros_like(layer), layer).clamp(0, 1)
    layer = resize(layer, (h, w), mode="area") if up > 1 else layer  # (B, 1, H, W)
    angles = rng.uniform(-135, -45, size=b)
    length, spread = scaled_px(radius, x), scaled_px(sigma, x)
    layer = conv_per_image(layer, torch.stack([motion_kernel(length, spread, float(a)) for a in angles]))
    gray = luminance(x)  # (B, 1, H, W)
    whitened = keep * x + (1 - keep) * torch.maximum(x, gray * 1.5 + 0.5)
    return whitened + layer + torch.flip(layer, dims=(-2, -1))
