"""Generated image-folder datasets: easy, fast, deterministic classes for tests and demos."""

from __future__ import annotations

import colorsys
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

_NAMED = {"red": (220, 30, 30), "green": (30, 190, 40), "blue": (30, 60, 220), "yellow": (230, 210, 30),
          "magenta": (210, 40, 200), "cyan": (30, 200, 210), "orange": (240, 140, 20), "purple": (120, 40, 180),
          "white": (245, 245, 245), "black": (15, 15, 15)}  # fmt: skip
_SHAPES = ("disc", "square", "hbars", "diamond", "vbars", "ring")
_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "bmp": "BMP", "webp": "WEBP", "gif": "GIF", "tif": "TIFF",
            "tiff": "TIFF"}  # fmt: skip


def _colour(name: str, k: int) -> tuple[int, int, int]:
    if name.lower() in _NAMED:
        return _NAMED[name.lower()]
    r, g, b = colorsys.hsv_to_rgb((k * 0.618034) % 1.0, 0.85, 0.9)  # golden-ratio hues stay far apart
    return int(r * 255), int(g * 255), int(b * 255)


def _mask(shape: str, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """A boolean (H, W) mask of ``shape``, jittered in position and size."""
    yy, xx = np.mgrid[0:h, 0:w]
    cy, cx = h / 2 + rng.uniform(-0.1, 0.1) * h, w / 2 + rng.uniform(-0.1, 0.1) * w
    r = min(h, w) * rng.uniform(0.28, 0.38)
    dy, dx = np.abs(yy - cy), np.abs(xx - cx)
    if shape == "disc":
        return dy**2 + dx**2 <= r**2
    if shape == "square":
        return (dy <= r) & (dx <= r)
    if shape == "diamond":
        return dy + dx <= r * 1.3
    if shape == "ring":
        d = np.sqrt(dy**2 + dx**2)
        return (d <= r) & (d >= r * 0.55)
    period = max(4, min(h, w) // 4)
    return ((yy if shape == "hbars" else xx) % period) < period // 2


def synthetic_image(k: int, colour: tuple[int, int, int], size: tuple[int, int],
                    rng: np.random.Generator) -> Image.Image:  # fmt: skip
    """Class ``k``'s pattern: its shape in its colour on a dim noisy background. ``size`` is ``(W, H)``."""
    w, h = size
    background = rng.integers(0, 70, size=(h, w, 1)) + rng.integers(0, 25, size=(h, w, 3))  # (H, W, 3)
    mask = _mask(_SHAPES[k % len(_SHAPES)], h, w, rng)[..., None]  # (H, W, 1)
    fg = np.asarray(colour)[None, None, :] * rng.uniform(0.8, 1.0) + rng.normal(0, 12, size=(h, w, 3))
    return Image.fromarray(np.clip(np.where(mask, fg, background), 0, 255).astype(np.uint8), mode="RGB")


def make_synthetic_dataset(root: str | os.PathLike, *, classes: Sequence[str] = ("red", "green", "blue"),
                           per_class: int = 20, size: int = 32, layout: str = "flat", fmt: str = "png",
                           seed: int = 0, vary_size: bool = False) -> Path:  # fmt: skip
    """Write an image-folder tree of easily learnable classes and return ``root``.

    Each class is a distinct colour and shape (disc, square, bars, ...) with noise and jitter. ``layout="flat"``
    writes ``root/<class>/<class>_000.<fmt>``; ``layout="split"`` writes ``root/{train,val,test}/<class>/``
    with ``per_class`` training images and ``max(2, per_class // 4)`` each for val and test. ``vary_size``
    draws each image's width and height from ``[size * 3/4, size * 5/4]``. Deterministic for a given ``seed``.

    >>> # root = make_synthetic_dataset(tmp_path / "imgs", per_class=10, size=32)  # -> tmp_path/imgs/red/...
    """
    if layout not in ("flat", "split"):
        raise ValueError(f"layout={layout!r}: choose 'flat' or 'split'")
    ext = fmt.lower().lstrip(".")
    if ext not in _FORMATS:
        raise ValueError(f"fmt={fmt!r}: choose one of {', '.join(_FORMATS)}")
    if len(classes) < 1 or per_class < 1 or size < 8:
        raise ValueError("need at least one class, per_class >= 1 and size >= 8")
    root = Path(root)
    rng = np.random.default_rng(seed)
    counts = [("", per_class)] if layout == "flat" else [("train", per_class), ("val", max(2, per_class // 4)),
                                                         ("test", max(2, per_class // 4))]  # fmt: skip
    for split, n in counts:
        for k, name in enumerate(classes):
            folder = root / split / name if split else root / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                w, h = (rng.integers(size * 3 // 4, size * 5 // 4 + 1, size=2) if vary_size else (size, size))
                image = synthetic_image(k, _colour(name, k), (int(w), int(h)), rng)
                image.save(folder / f"{name}_{i:03d}.{ext}", format=_FORMATS[ext])
    return root
