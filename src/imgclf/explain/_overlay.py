"""Heatmap overlays and PNG figures: one image beside its overlay, or a gallery grid for folder mode."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from imgclf import data as D
from imgclf.errors import DataError
from imgclf.utils import save_figure


@dataclass(frozen=True)
class GalleryItem:
    """One gallery tile: an RGB uint8 image ``(H, W, 3)``, its heatmap ``(h, w)`` in [0, 1] and a caption."""

    image: Any
    heatmap: Any
    title: str = ""


def to_display_image(image: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> np.ndarray:
    """Undo the normalisation of one model input ``(3, H, W)``: an RGB uint8 array ``(H, W, 3)``.

    >>> to_display_image(torch.zeros(3, 2, 2), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))[0, 0].tolist()
    [128, 128, 128]
    """
    if image.dim() != 3 or image.shape[0] != len(mean) or len(mean) != len(std):
        raise DataError(f"to_display_image needs one (C, H, W) image matching mean/std, got {tuple(image.shape)}.")
    rgb = D.denormalize(image.detach().float().cpu(), mean, std)  # (C, H, W) in [0, 1]
    if rgb.shape[0] == 1:
        rgb = rgb.expand(3, -1, -1)
    return (rgb.permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()  # (H, W, 3)


def overlay(image: Any, heatmap: Any, *, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a heatmap ``(h, w)`` in [0, 1], coloured with ``cmap`` and upsampled to the image, over an RGB
    uint8 image ``(H, W, 3)`` (array or PIL image); returns a uint8 array ``(H, W, 3)``.

    >>> overlay(np.zeros((32, 32, 3), np.uint8), torch.rand(4, 4)).shape
    (32, 32, 3)
    """
    if not 0 <= alpha <= 1:
        raise DataError(f"alpha must be in [0, 1], got {alpha}.")
    import matplotlib

    rgb = _as_rgb(image)
    heat = _resized_heatmap(heatmap, rgb.shape[:2])  # (H, W)
    colour = matplotlib.colormaps[cmap](heat)[..., :3]  # (H, W, 3) float in [0, 1]
    blended = (1 - alpha) * rgb.astype(np.float64) / 255 + alpha * colour
    return (np.clip(blended, 0, 1) * 255).round().astype(np.uint8)


def save_side_by_side(
    image: Any,
    heatmap: Any,
    path: str | os.PathLike,
    title: str | None = None,
    *,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> Path:
    """Write a PNG with the input on the left and its heatmap overlay on the right; returns the path.

    >>> save_side_by_side(rgb, att.maps[0], "out/cat.png", "gradcam: cat (0.93)")  # doctest: +SKIP
    PosixPath('out/cat.png')
    """
    from matplotlib.figure import Figure

    rgb = _as_rgb(image)
    fig = Figure(figsize=(6, 3.3), dpi=100)
    for ax, shown, label in zip(
        fig.subplots(1, 2), (rgb, overlay(rgb, heatmap, alpha=alpha, cmap=cmap)), ("input", "attribution"), strict=True
    ):
        ax.imshow(shown)
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)


def save_gallery(
    items: Sequence[GalleryItem | tuple[Any, Any, str]],
    path: str | os.PathLike,
    *,
    columns: int = 4,
    alpha: float = 0.5,
    cmap: str = "jet",
) -> Path:
    """Write a PNG grid of overlays, ``columns`` per row, each titled; ``items`` are GalleryItem or
    ``(image, heatmap, title)`` tuples. Returns the path.

    >>> save_gallery([GalleryItem(rgb, att.maps[0], "cat.jpg: cat")], "out/gallery.png")  # doctest: +SKIP
    PosixPath('out/gallery.png')
    """
    from matplotlib.figure import Figure

    tiles = [item if isinstance(item, GalleryItem) else GalleryItem(*item) for item in items]
    if not tiles:
        raise DataError(f"save_gallery got no images for {path}; pass at least one (image, heatmap, title).")
    if columns < 1:
        raise DataError(f"columns must be at least 1, got {columns}.")
    cols = min(columns, len(tiles))
    rows = math.ceil(len(tiles) / cols)
    fig = Figure(figsize=(2.6 * cols, 2.8 * rows), dpi=100)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, tile in zip(axes, tiles, strict=False):
        ax.imshow(overlay(tile.image, tile.heatmap, alpha=alpha, cmap=cmap))
        ax.set_title(tile.title, fontsize=8)
    return _save(fig, path)


def _save(fig: Any, path: str | os.PathLike) -> Path:
    fig.tight_layout()
    return save_figure(fig, path)


def _as_rgb(image: Any) -> np.ndarray:
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        image = np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.ndim != 3 or array.shape[2] != 3 or array.dtype != np.uint8:
        raise DataError(
            f"expected an RGB uint8 image (H, W, 3), got dtype {array.dtype} and shape {array.shape}; "
            "use to_display_image() to turn a normalised model input into one."
        )
    return array


def _resized_heatmap(heatmap: Any, size: tuple[int, int]) -> np.ndarray:
    heat = torch.as_tensor(np.asarray(heatmap.detach().cpu() if isinstance(heatmap, torch.Tensor) else heatmap))
    if heat.dim() != 2:
        raise DataError(f"expected a heatmap (h, w), got shape {tuple(heat.shape)}.")
    heat = torch.nan_to_num(heat.float(), nan=0.0).clamp(0, 1)  # (h, w)
    if tuple(heat.shape) != tuple(size):
        heat = F.interpolate(heat[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]  # (H, W)
    return heat.clamp(0, 1).numpy()
