"""Scanning image folders: deterministic file lists, and the cheap per-file check that skips bad files."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from imgclf.data._decode import (
    IMAGE_EXTENSIONS,
    BadImageError,
    DataWarning,
    bomb_warnings_are_errors,
    is_image_file,
    probe_header,
)
from imgclf.errors import DataError


def list_images(folder: str | os.PathLike) -> list[Path]:
    """Image files under ``folder`` (recursively), hidden files and folders ignored, in sorted order.

    Extensions: .jpg .jpeg .jfif .jpe .png .bmp .gif .tif .tiff .webp, any case.

    >>> # list_images("data/cats")[:2]
    >>> # [PosixPath('data/cats/001.jpg'), PosixPath('data/cats/002.jpg')]
    """
    return [Path(p) for p in image_paths(folder)]


def image_paths(folder: str | os.PathLike) -> list[str]:
    """:func:`list_images` as strings (cheaper for large folders)."""
    found: list[str] = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(here, f) for f in files if is_image_file(f)]
    # Sorted by path components, as Path objects sort ("a/b.png" before "a.b/c.png"), not by raw characters.
    return sorted(found, key=lambda p: p.split(os.sep))


class Scanner:
    """Checks files cheaply (header only); bad ones are warned about and recorded, or raised when ``strict``."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self.skipped: list[tuple[str, str]] = []

    def ok(self, path: str | os.PathLike) -> bool:
        """Whether ``path`` passes :func:`check_image`; a failure warns and is recorded (raised when strict)."""
        return bool(self.readable([os.fspath(path)]))

    def readable(self, paths: list[str]) -> list[str]:
        """The paths that pass :func:`check_image`, in order."""
        good = []
        with bomb_warnings_are_errors():
            for path in paths:
                try:
                    probe_header(path)
                except BadImageError as exc:
                    if self.strict:
                        raise
                    warnings.warn(f"skipping {exc.path}: {exc.reason}", DataWarning, stacklevel=3)
                    self.skipped.append((exc.path, exc.reason))
                    continue
                good.append(path)
        return good


def _subdirs(folder: Path) -> list[Path]:
    return sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))


def scan_class_folders(folder: Path, scanner: Scanner) -> dict[str, list[str]]:
    """``{class name: readable image paths}`` for ``folder/<class>/...``.

    Raises DataError for a folder without class folders, an empty class folder, or a class whose files are all
    unreadable. Images lying directly in ``folder`` are ignored with a DataWarning.
    """
    classes = _subdirs(folder)
    stray = [f for f in sorted(folder.iterdir()) if f.is_file() and is_image_file(f)]
    if not classes:
        hint = f" ({len(stray)} images lie directly in it)" if stray else ""
        raise DataError(f"{folder} has no class folders{hint}: put each class's images in {folder}/<class>/")
    if stray:
        warnings.warn(f"ignoring {len(stray)} image(s) directly in {folder} (e.g. {stray[0].name}): images must be "
                      "inside a class folder", DataWarning, stacklevel=2)  # fmt: skip
    found: dict[str, list[str]] = {}
    for d in classes:
        files = image_paths(d)
        if not files:
            raise DataError(f"class folder {d} is empty (no {'/'.join(IMAGE_EXTENSIONS)} files): put images in it "
                            "or remove it")  # fmt: skip
        found[d.name] = files
    out = {name: scanner.readable(files) for name, files in found.items()}
    if not any(out.values()):
        raise DataError(f"no readable images in {folder}: all {sum(map(len, found.values()))} files were skipped "
                        f"(e.g. {scanner.skipped[-1][0]}: {scanner.skipped[-1][1]})")  # fmt: skip
    for name, paths in out.items():
        if not paths:
            raise DataError(f"class folder {folder / name} has no readable images ({len(found[name])} skipped): "
                            "replace them or remove the folder")  # fmt: skip
    return out


def check_classes(where: str, classes: list[str]) -> None:
    """At least two classes, or a DataError saying so."""
    if len(classes) < 2:
        only = f" (only {classes[0]!r})" if classes else ""
        raise DataError(f"{where} has one class{only}: a classifier needs at least two classes, e.g. "
                        "ROOT/cats/... and ROOT/dogs/...")  # fmt: skip


def check_known(where: str, split_classes: list[str], train_classes: list[str], split: str) -> None:
    """Every class of a val/test split exists in train, or a DataError naming the unknown one."""
    unknown = [c for c in split_classes if c not in train_classes]
    if unknown:
        raise DataError(f"{split} class {unknown[0]!r} in {where} is not a training class (train has "
                        f"{', '.join(train_classes)}): add training images for it or remove it from "
                        f"{split}")  # fmt: skip
