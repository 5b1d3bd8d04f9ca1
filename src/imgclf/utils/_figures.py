from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

from imgclf.utils._files import atomic_write_bytes


def save_figure(fig: Any, path: str | os.PathLike, *, dpi: float | None = None) -> Path:
    """Render a matplotlib figure to PNG and write it atomically to ``path``; returns the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", **({"dpi": dpi} if dpi else {}))
    return atomic_write_bytes(Path(path), buf.getvalue())
