"""``load_source``: image-folder trees, CSV manifests and built-in datasets, all into one :class:`Splits`."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from imgclf.data._builtin import BUILTIN_DATASETS, builtin_name, load_builtin
from imgclf.data._samples import SampleList, Splits
from imgclf.data._scan import Scanner, check_classes, check_known, scan_class_folders
from imgclf.data._split import carve, finish, split_how
from imgclf.errors import ConfigError, DataError
from imgclf.utils import closest

VAL_DIRS = ("val", "valid", "validation")
COLUMN_ALIASES = {"path": ("filepath", "file_path", "filename", "file", "image"), "label": ("class",), "split": ()}
SPLIT_NAMES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}
ACCEPTED = (
    "an image-folder directory (ROOT/<class>/... or ROOT/train/<class>/... with optional val/ and test/), "
    "a CSV manifest with columns path,label[,split], or a built-in dataset: " + ", ".join(BUILTIN_DATASETS)
)


def _samples(found: dict[str, list[str]], classes: list[str]) -> SampleList:
    paths = [p for c in sorted(found) for p in found[c]]
    labels = [classes.index(c) for c in sorted(found) for _ in found[c]]
    return SampleList.from_paths(paths, labels)


def _parts_from(train: SampleList, val: SampleList | None, test: SampleList | None, *, val_fraction: float,
                seed: int, test_how: str | None = None) -> dict[str, tuple[SampleList | None, str]]:  # fmt: skip
    """Given train (+ val, test); val carved from train (stratified, seeded) when not given."""
    if val is not None or val_fraction == 0:
        return {"train": (train, "given"), "val": (val, "given"), "test": (test, test_how or "given")}
    rest, carved = carve(train, [val_fraction], seed)
    return {"train": (rest, "given, val carved out"), "val": (carved, split_how(seed, val_fraction)),
            "test": (test, test_how or "given")}  # fmt: skip


def _flat_parts(samples: SampleList, *, val_fraction: float, test_fraction: float,
                seed: int) -> dict[str, tuple[SampleList | None, str]]:  # fmt: skip
    rest, val, test = carve(samples, [val_fraction, test_fraction], seed)
    return {"train": (rest, f"stratified split, seed {seed}, remainder"), "val": (val, split_how(seed, val_fraction)),
            "test": (test, split_how(seed, test_fraction))}  # fmt: skip


def _load_folder(root: Path, *, val_fraction: float, test_fraction: float, seed: int, strict: bool,
                 max_per_class: int | None) -> Splits:  # fmt: skip
    scanner = Scanner(strict)
    train_dir = root / "train"
    if train_dir.is_dir():
        found = scan_class_folders(train_dir, scanner)
        classes = sorted(found)
        check_classes(str(train_dir), classes)
        given: dict[str, SampleList | None] = {"val": None, "test": None}
        for split, names in (("val", VAL_DIRS), ("test", ("test",))):
            folder = next((root / n for n in names if (root / n).is_dir()), None)
            if folder is not None:
                split_found = scan_class_folders(folder, scanner)
                check_known(str(folder), sorted(split_found), classes, split)
                given[split] = _samples(split_found, classes)
        parts = _parts_from(_samples(found, classes), given["val"], given["test"], val_fraction=val_fraction,
                            seed=seed)  # fmt: skip
        layout = "split"
    else:
        found = scan_class_folders(root, scanner)
        classes = sorted(found)
        check_classes(str(root), classes)
        parts = _flat_parts(_samples(found, classes), val_fraction=val_fraction, test_fraction=test_fraction,
                            seed=seed)  # fmt: skip
        layout = "flat"
    return finish("folder", str(root), classes, parts, scanner.skipped, max_per_class=max_per_class,
                  extra={"layout": layout})  # fmt: skip


def _read_manifest(path: Path, scanner: Scanner) -> tuple[list[tuple[str, str, str]], bool]:
    """``(file, label, split)`` rows of a manifest and whether it has a split column.

    Every problem raises DataError naming the manifest and line; unreadable images go through ``scanner``.
    """
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if not header:
            raise DataError(f"manifest {path} is empty: write a header line path,label and one line per image")
        key = dict(zip(header, reader.fieldnames or [], strict=True))
        for column, aliases in COLUMN_ALIASES.items():
            found = next((a for a in (column, *aliases) if a in key), None)
            if found is None and column != "split":
                raise DataError(f"manifest {path} has no {column!r} column (header: {','.join(reader.fieldnames or [])}"
                                "); the header must be path,label[,split]")  # fmt: skip
            if found is not None:
                key[column] = key[found]
        rows, total = [], 0
        for row in reader:
            total += 1
            line = reader.line_num
            file, label = (row.get(key["path"]) or "").strip(), (row.get(key["label"]) or "").strip()
            if not file or not label:
                raise DataError(f"manifest {path} line {line}: empty path or label; every row needs both")
            if ";" in label:
                raise DataError(f"manifest {path} line {line}: label {label!r} lists several labels; multi-label "
                                "manifests are not supported yet (use one label per row)")  # fmt: skip
            split_raw = (row.get(key["split"]) or "train").strip().lower() if "split" in key else "train"
            if split_raw not in SPLIT_NAMES:
                raise DataError(f"manifest {path} line {line}: split {split_raw!r} is not train, val or test")
            full = Path(file) if os.path.isabs(file) else path.parent / file
            if not full.is_file():
                raise DataError(f"manifest {path} line {line}: file {file} does not exist (looked for {full}); "
                                "fix the path (relative paths start at the manifest's folder) or remove the "
                                "row")  # fmt: skip
            if scanner.ok(full):
                rows.append((str(full), label, SPLIT_NAMES[split_raw]))
    if total == 0:
        raise DataError(f"manifest {path} is empty: it has a header but no rows; add one line per image: path,label")
    if not rows:
        raise DataError(f"no readable images in manifest {path}: all {total} files were skipped")
    return rows, "split" in key


def _load_csv(path: Path, *, val_fraction: float, test_fraction: float, seed: int, strict: bool,
              max_per_class: int | None) -> Splits:  # fmt: skip
    scanner = Scanner(strict)
    rows, has_split = _read_manifest(path, scanner)
    by_split = {s: [(p, lab) for p, lab, sp in rows if sp == s] for s in ("train", "val", "test")}
    if not by_split["train"]:
        raise DataError(f"manifest {path} has no readable train rows: mark some rows split=train")
    classes = sorted({lab for _, lab in by_split["train"]})
    check_classes(f"manifest {path}", classes)

    def samples(split: str) -> SampleList | None:
        items = by_split[split]
        if not items:
            return None
        check_known(f"manifest {path}", sorted({lab for _, lab in items}), classes, split)
        return SampleList.from_paths([p for p, _ in items], [classes.index(lab) for _, lab in items])

    if has_split:
        parts = _parts_from(samples("train"), samples("val"), samples("test"), val_fraction=val_fraction, seed=seed)
    else:
        parts = _flat_parts(samples("train"), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed)
    return finish("csv", str(path.parent), classes, parts, scanner.skipped, max_per_class=max_per_class,
                  extra={"manifest": str(path)})  # fmt: skip


def _check_options(val_fraction: float, test_fraction: float, max_per_class: int | None) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ConfigError(f"data.{name}={value} must be in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ConfigError("data.val_fraction + data.test_fraction must be below 1")
    if max_per_class is not None and max_per_class < 1:
        raise ConfigError(f"data.max_per_class={max_per_class} must be >= 1")


def load_source(source: str | os.PathLike, *, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                strict: bool = False, max_per_class: int | None = None,
                cache_dir: str | os.PathLike | None = None) -> Splits:  # fmt: skip
    """Scan ``source`` into train/val/test :class:`Splits`, failing early with one clear DataError.

    ``source`` is a directory (``ROOT/train/<class>/...`` with optional ``val``/``valid``/``validation`` and
    ``test``, used as given with val carved from train when missing; or flat ``ROOT/<class>/...``, split by the
    fractions), a ``.csv`` manifest (``path,label[,split]``, paths relative to the CSV; ``filepath``/``filename``
    also name the path column and ``class`` the label column), or a built-in name
    (``digits`` offline; ``mnist``, ``fashion-mnist``, ``cifar10``, ``cifar100`` downloaded into ``cache_dir``;
    an existing local path of the same name wins).
    Splits are stratified and seeded by ``seed``. Unreadable files are skipped with a :class:`DataWarning` and
    listed in ``.skipped``; with ``strict=True`` the first raises :class:`BadImageError`. ``max_per_class``
    keeps the first N images per class in each split.

    >>> splits = load_source("digits", seed=0)
    >>> len(splits.classes), splits.info["kind"]
    (10, 'builtin')
    """
    _check_options(val_fraction, test_fraction, max_per_class)
    text = os.fspath(source).strip()
    if not text:
        raise DataError("no data source given: pass a folder, a CSV manifest or a built-in name such as 'digits'")
    kw = {"val_fraction": val_fraction, "seed": seed, "max_per_class": max_per_class}
    path = Path(text).expanduser()
    name = builtin_name(text)
    if name is not None and not path.exists():
        return load_builtin(name, test_fraction=test_fraction, cache_dir=cache_dir, **kw)
    if path.is_dir():
        return _load_folder(path, test_fraction=test_fraction, strict=strict, **kw)
    if path.suffix.lower() == ".csv":
        if not path.is_file():
            raise DataError(f"manifest {path} does not exist; check the path")
        return _load_csv(path, test_fraction=test_fraction, strict=strict, **kw)
    if path.exists():
        raise DataError(f"{path} is a file but not a .csv manifest; accepted: {ACCEPTED}")
    if os.sep in text or "/" in text or text.startswith((".", "~")) or path.suffix:
        raise DataError(f"directory {path} does not exist; check the path (accepted: {ACCEPTED})")
    hint = closest(text.lower(), BUILTIN_DATASETS)
    raise DataError(f"data source {text!r} is not an existing directory, a .csv manifest or a built-in "
                    f"dataset.{hint} Accepted: {ACCEPTED}")  # fmt: skip
