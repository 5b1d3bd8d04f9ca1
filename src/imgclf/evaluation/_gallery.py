"""A gallery of the highest-loss images, each captioned with its true label, prediction and confidence."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.evaluation._figure import new_figure, save_png, short
from imgclf.metrics import to_numpy

THUMB = 160  # longest side of a gallery tile, in pixels


@dataclass(frozen=True)
class ErrorExample:
    """One gallery tile: ``image`` is a path, a PIL image or an array (``(H, W)``, ``(H, W, 3|4)`` uint8 or
    float in [0, 1]); ``true`` / ``predicted`` are class names and ``confidence`` the probability of the
    prediction; ``loss`` and ``caption`` (e.g. the file name) are optional."""

    image: Any
    true: str
    predicted: str
    confidence: float
    loss: float | None = None
    caption: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields; the image is kept only if it is a path."""
        image = str(self.image) if isinstance(self.image, (str, os.PathLike)) else None
        return {
            "image": image,
            "true": self.true,
            "predicted": self.predicted,
            "confidence": float(self.confidence),
            "loss": self.loss,
            "caption": self.caption,
        }


def plot_error_gallery(
    examples: Sequence[ErrorExample], path: str | os.PathLike, *, columns: int = 5, title: str = "Highest-loss images"
) -> Path:
    """Draw the examples in a grid, captioned ``true → predicted (confidence)`` (red when wrong); returns the
    PNG path. Unreadable image files become a grey tile naming the problem rather than failing the report.

    >>> plot_error_gallery([ErrorExample("a.jpg", "cat", "dog", 0.93)], "plots/errors.png")  # doctest: +SKIP
    PosixPath('plots/errors.png')
    """
    if not examples:
        raise DataError("the error gallery needs at least one example; pass the top-loss images.")
    cols = max(1, min(int(columns), len(examples)))
    rows = math.ceil(len(examples) / cols)
    fig = new_figure(2.3 * cols, 2.6 * rows + 0.4)
    fig.suptitle(title, fontsize=12)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for ax in axes:
        ax.axis("off")
    for ax, ex in zip(axes, examples, strict=False):
        tile, problem = _thumbnail(ex.image)
        ax.imshow(tile, cmap="gray" if tile.ndim == 2 else None, vmin=0, vmax=255)
        wrong = ex.true != ex.predicted
        lines = [f"true: {short(ex.true, 16)}", f"pred: {short(ex.predicted, 16)} ({ex.confidence:.2f})"]
        if ex.loss is not None:
            lines[-1] += f" · loss {ex.loss:.2f}"
        if problem or ex.caption:
            lines.append(short(problem or ex.caption, 24))
        ax.set_title("\n".join(lines), fontsize=7.5, color="#c0392b" if wrong else "#1e6f5c")
    return save_png(fig, path)


def _thumbnail(image: Any) -> tuple[np.ndarray, str]:
    """A uint8 array no larger than THUMB pixels, or a grey tile and the reason the image could not be read."""
    from PIL import Image, UnidentifiedImageError

    try:
        if isinstance(image, (str, os.PathLike)):
            with Image.open(image) as im:
                im.draft("RGB", (THUMB, THUMB))
                pil = im.convert("RGB")
        elif isinstance(image, Image.Image):
            pil = image.convert("RGB")
        else:
            arr = to_numpy(image)
            if arr.ndim == 3 and arr.shape[0] in (1, 3) and arr.shape[2] not in (1, 3, 4):
                arr = arr.transpose(1, 2, 0)  # (C, H, W) -> (H, W, C)
            if arr.dtype != np.uint8:
                arr = (np.clip(arr.astype(np.float64), 0, 1) * 255).round().astype(np.uint8)
            arr = arr[..., 0] if arr.ndim == 3 and arr.shape[2] == 1 else arr
            pil = Image.fromarray(arr).convert("RGB" if arr.ndim == 3 else "L")
    except (OSError, UnidentifiedImageError, ValueError, TypeError) as exc:
        return np.full((THUMB, THUMB), 200, dtype=np.uint8), f"unreadable: {type(exc).__name__}"
    pil.thumbnail((THUMB, THUMB))
    return np.asarray(pil), ""
