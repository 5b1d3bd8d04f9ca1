"""The data record of a run (``split.json``) and the check that a resumed run still sees the same data.

``split.json`` lists every sample as ``[name, class]`` per split (the names the fingerprint hashes) and, for
files, each one's size in bytes. On ``--resume`` the current scan is compared with that record: files added,
removed, or changed (another class, another size) stop the run with a DataError that counts them and names an
example, instead of silently continuing on different data and rewriting the record.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgclf.data._samples import Splits
from imgclf.data._split import sample_names
from imgclf.errors import DataError
from imgclf.utils import atomic_write_text

SPLIT_FILE = "split.json"


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _rows(splits: Splits) -> list[tuple[str, str, str, int | None]]:
    """``(split, name, class, bytes)`` for every sample, in split order (bytes is None for in-memory samples)."""
    root = str(splits.info.get("root", "."))
    rows = []
    for split, samples in splits.items():
        paths = samples.paths
        sizes = [_size(p) for p in paths] if paths is not None else [None] * len(samples)
        names = sample_names(samples, root)
        rows += [(split, n, splits.classes[y], b) for n, y, b in zip(names, samples.labels, sizes, strict=True)]
    return rows


def data_listing(splits: Splits) -> dict[str, dict[str, Any]]:
    """``{name: {"split", "class", "bytes"}}`` for every sample (``bytes`` is None for in-memory samples)."""
    return {name: {"split": split, "class": cls, "bytes": size} for split, name, cls, size in _rows(splits)}


def _recorded_listing(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """:func:`data_listing` as stored in a ``split.json`` (sizes are absent from records older than this check)."""
    out: dict[str, dict[str, Any]] = {}
    sizes = record.get("bytes", {})
    for split, rows in record.get("samples", {}).items():
        split_sizes = sizes.get(split) or [None] * len(rows)
        for (name, cls), size in zip(rows, split_sizes, strict=False):
            out[name] = {"split": split, "class": cls, "bytes": size}
    return out


@dataclass(frozen=True)
class DataChange:
    """How the data differs from a recorded run: names added, removed, changed (class or size) and moved to
    another split, each with the reason for changed ones."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[tuple[str, str], ...] = ()
    moved: tuple[str, ...] = ()
    fingerprint_differs: bool = False

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed or self.moved or self.fingerprint_differs)

    def summary(self) -> str:
        """One line, e.g. ``3 files added (e.g. red/x.png), 1 changed (e.g. blue/y.png: 812 -> 640 bytes)``."""
        parts = []
        if self.added:
            parts.append(f"{len(self.added)} file(s) added (e.g. {self.added[0]})")
        if self.removed:
            parts.append(f"{len(self.removed)} removed (e.g. {self.removed[0]})")
        if self.changed:
            name, why = self.changed[0]
            parts.append(f"{len(self.changed)} changed (e.g. {name}: {why})")
        if self.moved:
            parts.append(f"{len(self.moved)} in another split (e.g. {self.moved[0]})")
        return ", ".join(parts) or "the data fingerprint differs"


def compare_data(record: dict[str, Any], splits: Splits) -> DataChange:
    """What differs between a run's recorded ``split.json`` content and ``splits`` (empty when nothing does).

    >>> # compare_data(json.loads(Path("runs/x/split.json").read_text()), load_source("data/"))
    """
    old, new = _recorded_listing(record), data_listing(splits)
    added = tuple(sorted(set(new) - set(old)))
    removed = tuple(sorted(set(old) - set(new)))
    changed, moved = [], []
    for name in sorted(set(old) & set(new)):
        a, b = old[name], new[name]
        if a["class"] != b["class"]:
            changed.append((name, f"class {a['class']} -> {b['class']}"))
        elif a["bytes"] is not None and b["bytes"] is not None and a["bytes"] != b["bytes"]:
            changed.append((name, f"{a['bytes']} -> {b['bytes']} bytes"))
        elif a["split"] != b["split"]:
            moved.append(name)
    recorded = record.get("info", {}).get("fingerprint")
    differs = recorded is not None and recorded != splits.info.get("fingerprint")
    return DataChange(added, removed, tuple(changed), tuple(moved), differs)


def record_data(run_dir: str | os.PathLike, splits: Splits, *, resume: bool = False) -> Path:
    """Write ``RUN_DIR/split.json`` (classes, sizes, info with the fingerprint, every sample's ``[name, class]``
    per split and each file's size); with ``resume``, first refuse data that differs from the recorded one.

    Raises DataError naming what changed (counts and an example path); the record is then left as it was.

    >>> # record_data("runs/x", load_source("data/"), resume=True)   # DataError: ... 3 file(s) added (e.g. ...)
    """
    run_dir = Path(run_dir)
    path = run_dir / SPLIT_FILE
    if resume and path.is_file():
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{path} cannot be read ({exc}): the run's data record is damaged, so resuming cannot "
                            "check the data; start a new run") from exc  # fmt: skip
        change = compare_data(record, splits)
        if change:
            root = splits.info.get("root", "the data")
            raise DataError(f"the data in {root} changed since {run_dir} started: {change.summary()}; resuming "
                            "would continue on different data. Restore the data as it was, or start a new run "
                            "(without --resume)")  # fmt: skip
    samples: dict[str, list[list[str]]] = {}
    sizes: dict[str, list[int | None]] = {}
    for split, name, cls, size in _rows(splits):
        samples.setdefault(split, []).append([name, cls])
        sizes.setdefault(split, []).append(size)
    body = {**splits.to_dict(), "samples": samples, "bytes": sizes}
    return atomic_write_text(path, json.dumps(body, indent=1) + "\n")
