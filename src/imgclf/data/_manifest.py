"""CSV manifests: ``path,label[,split]`` (one class per image) or ``path,labels[,split]`` (``;``-joined classes)."""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imgclf.data._multilabel import SEPARATOR, parse_label_cell
from imgclf.data._samples import SampleList, Splits
from imgclf.data._scan import Scanner, check_classes, check_known
from imgclf.data._split import finish, flat_parts, given_parts
from imgclf.errors import DataError

COLUMN_ALIASES = {"path": ("filepath", "file_path", "filename", "file", "image"), "label": ("class",), "split": ()}
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Row:
    """One readable manifest row: the image's full path, its class names (one for single-label), its split
    and the manifest line it came from."""

    file: str
    names: tuple[str, ...]
    split: str
    line: int


def _columns(path: Path, fieldnames: list[str]) -> tuple[dict[str, str], bool]:
    """Map ``path``/``label``/``split`` to the header's own spelling; whether the labels column is ``labels``."""
    header = [h.strip().lower() for h in fieldnames]
    if not header:
        raise DataError(f"manifest {path} is empty: write a header line path,label and one line per image")
    key = dict(zip(header, fieldnames, strict=True))
    plural = "labels" in key
    if plural and any(a in key for a in ("label", *COLUMN_ALIASES["label"])):
        raise DataError(f"manifest {path} has both a 'labels' and a 'label' column; keep one (labels holds "
                        f"'{SEPARATOR}'-joined class names for multi-label data, label one class per "
                        "image)")  # fmt: skip
    for column, aliases in COLUMN_ALIASES.items():
        names = ("labels",) if column == "label" and plural else (column, *aliases)
        found = next((a for a in names if a in key), None)
        if found is None and column != "split":
            raise DataError(f"manifest {path} has no {column!r} column (header: {','.join(fieldnames)}); the header "
                            "must be path,label[,split] (or path,labels[,split] for multi-label data, class names "
                            f"joined by '{SEPARATOR}')")  # fmt: skip
        if found is not None:
            key[column] = key[found]
    return key, plural


def read_manifest(path: Path, scanner: Scanner, task: str | None) -> tuple[list[Row], bool, bool]:
    """The readable rows of a manifest, whether it has a split column and whether it is multi-label.

    Multi-label when ``task == "multilabel"``, when the label column is ``labels``, or (``task=None``) when any
    ``label`` cell holds a ``;``. Every problem raises DataError naming the manifest and line; unreadable images
    go through ``scanner``.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        key, plural = _columns(path, list(reader.fieldnames or []))
        raw = [(reader.line_num, row) for row in reader]
    cells = [(row.get(key["label"]) or "").strip() for _, row in raw]
    if plural and task == "single":
        raise DataError(f"manifest {path} has a 'labels' column (multi-label) but task='single' was asked: pass "
                        "task='multilabel' (--task multilabel), or rename the column to label with one class "
                        "per row")  # fmt: skip
    multilabel = task == "multilabel" or plural or (task is None and any(SEPARATOR in c for c in cells))
    rows, total = [], 0
    for (line, row), label in zip(raw, cells, strict=True):
        total += 1
        file = (row.get(key["path"]) or "").strip()
        if multilabel:
            if not file:
                raise DataError(f"manifest {path} line {line}: empty path; every row needs the image's path")
            names = tuple(parse_label_cell(label, f"manifest {path} line {line}"))
        else:
            if not file or not label:
                raise DataError(f"manifest {path} line {line}: empty path or label; every row needs both")
            if SEPARATOR in label:
                raise DataError(f"manifest {path} line {line}: label {label!r} lists several labels but "
                                "task='single' was asked; pass task='multilabel' (--task multilabel) or give one "
                                "label per row")  # fmt: skip
            names = (label,)
        split_raw = (row.get(key["split"]) or "train").strip().lower() if "split" in key else "train"
        if split_raw not in SPLIT_NAMES:
            raise DataError(f"manifest {path} line {line}: split {split_raw!r} is not train, val or test")
        full = Path(file) if os.path.isabs(file) else path.parent / file
        if not full.is_file():
            raise DataError(f"manifest {path} line {line}: file {file} does not exist (looked for {full}); "
                            "fix the path (relative paths start at the manifest's folder) or remove the "
                            "row")  # fmt: skip
        if scanner.ok(full):
            rows.append(Row(str(full), names, SPLIT_NAMES[split_raw], line))
    if total == 0:
        raise DataError(f"manifest {path} is empty: it has a header but no rows; add one line per image: path,label")
    if not rows:
        raise DataError(f"no readable images in manifest {path}: all {total} files were skipped")
    return rows, "split" in key, multilabel


def load_csv(path: Path, *, task: str | None, val_fraction: float, test_fraction: float, seed: int, strict: bool,
             max_per_class: int | None) -> Splits:  # fmt: skip
    """Splits of a manifest: as its split column says (val carved from train when missing), else split by the
    fractions (stratified; iterative stratification for multi-label data)."""
    scanner = Scanner(strict)
    rows, has_split, multilabel = read_manifest(path, scanner, task)
    by_split = {s: [r for r in rows if r.split == s] for s in SPLITS}
    if not by_split["train"]:
        raise DataError(f"manifest {path} has no readable train rows: mark some rows split=train")
    if multilabel:
        classes = _multilabel_classes(path, rows, has_split)
    else:
        classes = sorted({r.names[0] for r in by_split["train"]})
        check_classes(f"manifest {path}", classes)

    def samples(split: str) -> SampleList | None:
        items = by_split[split]
        if not items:
            return None
        if multilabel:
            multi_hot = np.zeros((len(items), len(classes)), dtype=np.uint8)
            index = {c: k for k, c in enumerate(classes)}
            for i, r in enumerate(items):
                multi_hot[i, [index[n] for n in r.names]] = 1
            return SampleList.from_paths([r.file for r in items], multi_hot=multi_hot)
        check_known(f"manifest {path}", sorted({r.names[0] for r in items}), classes, split)
        return SampleList.from_paths([r.file for r in items], [classes.index(r.names[0]) for r in items])

    if has_split:
        parts = given_parts(samples("train"), samples("val"), samples("test"), val_fraction=val_fraction, seed=seed)
    else:
        parts = flat_parts(samples("train"), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return finish("csv", str(path.parent), classes, parts, scanner.skipped, max_per_class=max_per_class,
                  extra={"manifest": str(path)})  # fmt: skip


def _multilabel_classes(path: Path, rows: list[Row], has_split: bool) -> list[str]:
    """The sorted class names of a multi-label manifest: those of the train rows when it has a split column (a
    class found only in val or test raises a DataError naming its first line), else of all rows."""
    train = {n for r in rows if r.split == "train" for n in r.names}
    for r in rows:
        unknown = [n for n in r.names if n not in train] if has_split else []
        if unknown:
            raise DataError(f"manifest {path} line {r.line}: class {unknown[0]!r} appears in {r.split} but in no "
                            f"train row; a model cannot learn it: add train images labelled {unknown[0]!r} or "
                            f"remove it from the {r.split} rows")  # fmt: skip
    classes = sorted(train if has_split else {n for r in rows for n in r.names})
    if len(classes) < 2:
        only = f" (only {classes[0]!r})" if classes else ""
        raise DataError(f"manifest {path} names {len(classes)} class{'' if len(classes) == 1 else 'es'}{only} in "
                        f"its labels: a classifier needs at least two classes, e.g. cat;dog")  # fmt: skip
    return classes


def as_multilabel(splits: Splits) -> Splits:
    """Single-label ``splits`` with one-hot multi-label targets (``task="multilabel"``); counts and fingerprint
    stay as they were, since a one-hot row names the same single class."""
    if splits.task == "multilabel":
        return splits
    c = len(splits.classes)
    parts = {name: s.as_multilabel(c) for name, s in splits.items()}
    info = {**splits.info, "task": "multilabel"}
    if isinstance(info.get("splits"), dict):
        info["splits"] = {k: {**v, "no_labels": 0} for k, v in info["splits"].items()}
    return Splits(splits.classes, parts["train"], parts.get("val"), parts.get("test"), splits.skipped, info,
                  "multilabel")  # fmt: skip
