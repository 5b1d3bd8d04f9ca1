"""Shared matplotlib plumbing: an off-screen figure and an atomic PNG write (no pyplot, no global state)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from imgclf.utils import save_figure

DPI = 110


def new_figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` on the Agg canvas, independent of pyplot and of the user's backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_png(fig: Any, path: str | os.PathLike) -> Path:
    """Render ``fig`` to PNG and write it atomically to ``path`` (parents created); returns the path."""
    return save_figure(fig, path, dpi=DPI)


def short(name: str, width: int = 18) -> str:
    """A class name cut to ``width`` characters with an ellipsis, for tick labels."""
    return name if len(name) <= width else name[: width - 1] + "…"
