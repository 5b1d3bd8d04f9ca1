"""Reading the server's audit log (JSONL, rotated by size) and cutting it into windows."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True)
class AuditRead:
    """The records of an audit log (oldest first) and the torn lines skipped while reading it.

    ``torn`` counts lines that are not whole JSON (a write cut short by a crash, a full disk or a failed
    rotation, anywhere in the log); ``torn_at`` names the first one as ``file:line``.
    """

    records: list[dict[str, Any]]
    torn: int = 0
    torn_at: str | None = None


def read_audit_records(path: str | os.PathLike, *, model: str | None = None) -> AuditRead:
    """Prediction records of an audit log, oldest first, including its rotated parts (``log.1``, ``log.2``...).

    Each record is one JSON object per line as ``imgclf serve --log`` writes it; monitoring reads ``time``,
    ``class_index``, ``confidence``, ``model`` and, when present, ``features``. Torn lines (not whole JSON) are
    skipped wherever they are and counted. A whole JSON line that is not a prediction record raises DataError
    naming file and line (the wrong file was given), as does a log with torn lines and no record at all.
    ``model`` keeps only the records of that weights sha256.

    >>> # read = read_audit_records("audit.jsonl"); len(read.records), read.torn
    """
    path = Path(path)
    files = _rotated(path)
    if not files:
        raise DataError(f"{path}: no such audit log; start the server with `imgclf serve MODEL --log {path}`")
    out: list[dict[str, Any]] = []
    torn, torn_at, total = 0, None, 0
    for file in files:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
        for i, line in enumerate(lines, 1):
            if not line.strip():
                continue
            total += 1
            try:
                rec = json.loads(line)
            except ValueError:
                torn += 1
                torn_at = torn_at or f"{file}:{i}"
                continue
            if not isinstance(rec, dict) or "confidence" not in rec or "class_index" not in rec:
                raise DataError(f"{file}:{i}: not an imgclf audit record (a JSON line without class_index and "
                                "confidence); is this the server's --log?")  # fmt: skip
            if model is None or rec.get("model") == model:
                out.append(rec)
    if torn and torn == total:
        raise DataError(f"{path}: none of its {total} line(s) is a whole JSON record (first at {torn_at}); is this "
                        "the server's --log?")  # fmt: skip
    return AuditRead(out, torn, torn_at)


def read_audit_log(path: str | os.PathLike, *, model: str | None = None) -> list[dict[str, Any]]:
    """:func:`read_audit_records`' records only (torn lines skipped).

    >>> # records = read_audit_log("audit.jsonl", model=meta.weights_sha256)
    """
    return read_audit_records(path, model=model).records


def windows(records: list[dict[str, Any]], size: int, classes: Sequence[str] | None = None) -> list[Window]:
    """Consecutive, non-overlapping windows of ``size`` records; a remainder of at least ``size // 2`` (and
    at least the minimum window) becomes a last, shorter window. Features are kept only when every record in
    the window has them; with the model's ``classes``, the label sets a multi-label model logged (``labels``)
    become the window's ``(N, C)`` 0/1 ``labels`` when every record has one.

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
                          chunk[0].get("time"), chunk[-1].get("time"), _label_sets(chunk, classes)))  # fmt: skip
    return out


def _label_sets(chunk: list[dict[str, Any]], classes: Sequence[str] | None) -> np.ndarray | None:
    """``(N, C)`` 0/1 logged label sets of a window, or None when the model is not multi-label (or unknown)."""
    if classes is None or not all(isinstance(r.get("labels"), list) for r in chunk):
        return None
    return label_matrix([r["labels"] for r in chunk], classes)


def label_matrix(label_sets: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
    """``(N, C)`` 0/1 matrix of a multi-label model's answers (label names) over its ``classes``.

    >>> label_matrix([["cat"], ["cat", "dog"], []], ["cat", "dog"]).tolist()
    [[1, 0], [1, 1], [0, 0]]
    """
    index = {name: k for k, name in enumerate(classes)}
    out = np.zeros((len(label_sets), len(classes)), np.int64)
    for i, names in enumerate(label_sets):
        for name in names:
            if name not in index:
                raise DataError(f"the audit log names label {name!r}, which the model does not have; pass the "
                                "bundle that served these predictions")  # fmt: skip
            out[i, index[name]] = 1
    return out
