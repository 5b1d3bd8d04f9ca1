"""Reading the server's audit log (JSONL, rotated by size) and cutting it into windows."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.monitor._drift import MIN_WINDOW, Window


def _rotated(path: Path) -> list[Path]:
    """``path.N ... path.2 path.1 path``: oldest first (the server rotates ``log`` to ``log.1``, ``log.1`` to ...)."""
    pattern = re.compile(re.escape(path.name) + r"\.(\d+)$")
    olds = []
    if path.parent.is_dir():
        for p in path.parent.iterdir():
            match = pattern.match(p.name)
            if match:
                olds.append((int(match.group(1)), p))
    return [p for _, p in sorted(olds, reverse=True)] + ([path] if path.exists() else [])


def read_audit_log(path: str | os.PathLike, *, model: str | None = None) -> list[dict[str, Any]]:
    """Prediction records of an audit log, oldest first, including its rotated parts (``log.1``, ``log.2``...).

    Each record is one JSON object per line as ``imgclf serve --log`` writes it; monitoring reads ``time``,
    ``class_index``, ``confidence``, ``model`` and, when present, ``features``. A torn last line (the server
    was killed mid-write) is skipped; other malformed lines raise DataError naming file and line. ``model``
    keeps only the records of that weights sha256.

    >>> # records = read_audit_log("audit.jsonl", model=meta.weights_sha256)
    """
    path = Path(path)
    files = _rotated(path)
    if not files:
        raise DataError(f"{path}: no such audit log; start the server with `imgclf serve MODEL --log {path}`")
    out = []
    for file in files:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
                if not isinstance(rec, dict) or "confidence" not in rec or "class_index" not in rec:
                    raise ValueError("not a prediction record")
            except ValueError as exc:
                if i == len(lines) and file == files[-1]:
                    continue  # torn final write
                raise DataError(f"{file}:{i}: not an imgclf audit record ({exc}); is this the server's --log?") from exc
            if model is None or rec.get("model") == model:
                out.append(rec)
    return out


def windows(records: list[dict[str, Any]], size: int) -> list[Window]:
    """Consecutive, non-overlapping windows of ``size`` records; a remainder of at least ``size // 2`` (and
    at least the minimum window) becomes a last, shorter window. Features are kept only when every record in
    the window has them.

    >>> len(windows([{"confidence": 0.9, "class_index": 0}] * 35, 20))  # 20 + a remainder of 15
    2
    """
    if size < MIN_WINDOW:
        raise DataError(f"window size must be at least {MIN_WINDOW}, got {size}.")
    cuts = list(range(0, len(records) - size + 1, size))
    rest = len(records) - (cuts[-1] + size if cuts else 0)
    if rest >= max(MIN_WINDOW, size // 2) or (not cuts and rest >= MIN_WINDOW):
        cuts.append(len(records) - rest)
    out = []
    for k, start in enumerate(cuts):
        chunk = records[start : start + size]
        feats = None
        if all(r.get("features") for r in chunk):
            feats = np.asarray([r["features"] for r in chunk], np.float64)  # (N, k)
        out.append(Window(np.asarray([float(r["confidence"]) for r in chunk]),
                          np.asarray([int(r["class_index"]) for r in chunk], np.int64), feats, k,
                          chunk[0].get("time"), chunk[-1].get("time")))  # fmt: skip
    return out
