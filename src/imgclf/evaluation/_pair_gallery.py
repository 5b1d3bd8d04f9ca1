"""A gallery of flagged duplicate pairs side by side (both images, their splits and similarity), so a person can
judge in seconds whether each is a copy."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.evaluation._figure import new_figure, save_png, short
from imgclf.evaluation._gallery import _thumbnail

TIER_COLOURS = {"exact": "#b3261e", "confirmed": "#b3261e", "look-alike": "#8a6d00"}


def plot_pair_gallery(
    pairs: Sequence[Any], path: str | os.PathLike, *, title: str = "Flagged pairs", columns: int = 2
) -> Path:
    """Draw each pair (a :class:`Leak` or :class:`NearDuplicate`: ``a`` and ``b`` file references, ``kind``,
    ``score``, optionally ``tier``) as two images side by side, captioned with split, file name, kind and
    similarity; leakage in red, look-alikes in amber. Returns the PNG path.

    >>> plot_pair_gallery(report.leakage[:12], "plots/leakage_pairs.png")  # doctest: +SKIP
    PosixPath('plots/leakage_pairs.png')
    """
    if not pairs:
        raise DataError("the pair gallery needs at least one pair; pass report.leakage or report.look_alikes.")
    cols = max(1, min(int(columns), len(pairs)))
    rows = math.ceil(len(pairs) / cols)
    fig = new_figure(4.2 * cols, 2.5 * rows + 0.4)
    fig.suptitle(title, fontsize=12)
    axes = np.atleast_2d(fig.subplots(rows, 2 * cols)).reshape(rows, 2 * cols)
    for ax in axes.ravel():
        ax.axis("off")
    for k, pair in enumerate(pairs):
        r, c = divmod(k, cols)
        tier = getattr(pair, "tier", "exact" if pair.kind == "exact" else "confirmed")
        colour = TIER_COLOURS.get(tier, "#1d2a33")
        score = getattr(pair, "score", float("nan"))
        label = "exact copy" if pair.kind == "exact" else f"{pair.kind} copy ({tier}), similarity {score:.3f}"
        for side, ref in enumerate((pair.a, pair.b)):
            ax = axes[r, 2 * c + side]
            tile, problem = _thumbnail(ref.path)
            small = max(tile.shape[:2]) < 64
            ax.imshow(tile, cmap="gray" if tile.ndim == 2 else None, vmin=0, vmax=255,
                      interpolation="nearest" if small else "antialiased")  # fmt: skip
            name = problem or Path(ref.path).name
            ax.set_title(f"{ref.split}: {short(name, 22)}", fontsize=7.5, color=colour)
            if side == 0:
                ax.text(1.04, -0.06, label, transform=ax.transAxes, ha="center", va="top", fontsize=7.5, color=colour)
    return save_png(fig, path)
