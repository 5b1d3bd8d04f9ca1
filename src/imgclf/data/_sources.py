"""``load_source``: image-folder trees, CSV manifests and built-in datasets, all into one :class:`Splits`."""

from __future__ import annotations

import os
from pathlib import Path

from imgclf.data._builtin import BUILTIN_DATASETS, builtin_name, load_builtin
from imgclf.data._manifest import as_multilabel, load_csv
from imgclf.data._samples import SampleList, Splits
from imgclf.data._scan import Scanner, check_classes, check_known, scan_class_folders
from imgclf.data._split import finish, flat_parts, given_parts
from imgclf.errors import ConfigError, DataError
from imgclf.utils import closest

VAL_DIRS = ("val", "valid", "validation")
ACCEPTED = (
    "an image-folder directory (ROOT/<class>/... or ROOT/train/<class>/... with optional val/ and test/), "
    "a CSV manifest with columns path,label[,split], or a built-in dataset: " + ", ".join(BUILTIN_DATASETS)
)


def _samples(found: dict[str, list[str]], classes: list[str]) -> SampleList:
    paths = [p for c in sorted(found) for p in found[c]]
    labels = [classes.index(c) for c in sorted(found) for _ in found[c]]
    return SampleList.from_paths(paths, labels)


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
        parts = given_parts(_samples(found, classes), given["val"], given["test"], val_fraction=val_fraction,
                            seed=seed)  # fmt: skip
        layout = "split"
    else:
        found = scan_class_folders(root, scanner)
        classes = sorted(found)
        check_classes(str(root), classes)
        parts = flat_parts(_samples(found, classes), val_fraction=val_fraction, test_fraction=test_fraction,
                            seed=seed)  # fmt: skip
        layout = "flat"
    return finish("folder", str(root), classes, parts, scanner.skipped, max_per_class=max_per_class,
                  extra={"layout": layout})  # fmt: skip


def _check_options(val_fraction: float, test_fraction: float, max_per_class: int | None) -> None:
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0 <= value < 1:
            raise ConfigError(f"data.{name}={value} must be in [0, 1)")
    if val_fraction + test_fraction >= 1:
        raise ConfigError("data.val_fraction + data.test_fraction must be below 1")
    if max_per_class is not None and max_per_class < 1:
        raise ConfigError(f"data.max_per_class={max_per_class} must be >= 1")


def load_source(source: str | os.PathLike, *, val_fraction: float = 0.1, test_fraction: float = 0.1, seed: int = 0,
                strict: bool = False, max_per_class: int | None = None, cache_dir: str | os.PathLike | None = None,
                task: str | None = None) -> Splits:  # fmt: skip
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

    Multi-label data: a manifest ``path,labels[,split]`` whose ``labels`` cells join class names with ``;``
    (an empty cell is an image with no labels), or a ``label`` column with ``;`` in some cell. ``task=None``
    infers the kind of label from the data; ``task="multilabel"`` forces multi-label targets (a single-label
    source then gets one-hot targets); ``task="single"`` refuses multi-label manifests. Without a split column,
    multi-label rows are split by seeded iterative stratification (Sechidis et al. 2011, the
    ``iterative-stratification`` package), and train keeps at least one image of every class.

    >>> splits = load_source("digits", seed=0)
    >>> len(splits.classes), splits.info["kind"]
    (10, 'builtin')
    >>> # load_source("tags.csv").task  ->  'multilabel' (path,labels: "cat;dog", "dog", "")
    """
    if task not in (None, "single", "multilabel"):
        raise ConfigError(f"task={task!r} is not valid; choose single or multilabel (or leave it unset to infer it "
                          "from the data)")  # fmt: skip
    _check_options(val_fraction, test_fraction, max_per_class)
    splits = _load(source, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, strict=strict,
                   max_per_class=max_per_class, cache_dir=cache_dir, task=task)  # fmt: skip
    return as_multilabel(splits) if task == "multilabel" else splits


def _load(source: str | os.PathLike, *, val_fraction: float, test_fraction: float, seed: int, strict: bool,
          max_per_class: int | None, cache_dir: str | os.PathLike | None, task: str | None) -> Splits:  # fmt: skip
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
        return load_csv(path, task=task, test_fraction=test_fraction, strict=strict, **kw)
    if path.exists():
        raise DataError(f"{path} is a file but not a .csv manifest; accepted: {ACCEPTED}")
    if os.sep in text or "/" in text or text.startswith((".", "~")) or path.suffix:
        raise DataError(f"directory {path} does not exist; check the path (accepted: {ACCEPTED})")
    hint = closest(text.lower(), BUILTIN_DATASETS)
    raise DataError(f"data source {text!r} is not an existing directory, a .csv manifest or a built-in "
                    f"dataset.{hint} Accepted: {ACCEPTED}")  # fmt: skip
