"""Result types of the data audit, and the plain-sentence warnings derived from them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from imgclf.metrics import to_numpy


def _jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and obj != obj:  # NaN
        return None
    if hasattr(obj, "dtype"):
        return to_numpy(obj).item()
    return obj


@dataclass(frozen=True)
class FileRef:
    """One file: its split, path and (when labels were given) class name."""

    split: str
    path: str
    label: str | None = None

    def __str__(self) -> str:
        return f"{self.split}:{self.path}"


@dataclass(frozen=True)
class UnreadableFile:
    """A file that could not be read or decoded, and why."""

    file: FileRef
    reason: str


@dataclass(frozen=True)
class DuplicateGroup:
    """Files with byte-identical content (same sha256)."""

    sha256: str
    files: tuple[FileRef, ...]

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(sorted({f.split for f in self.files}))


@dataclass(frozen=True)
class NearDuplicate:
    """Two different files showing (nearly) the same picture; ``bits`` is their pHash distance.

    ``kind`` is ``near`` or ``mirror`` (one is the mirror image of the other); ``tier`` is ``confirmed`` (a copy,
    checked at pixel level) or ``look-alike`` (similar, not confirmed: information, never leakage); ``score`` is
    the aligned grey-level correlation, ``peak`` the largest pixel difference left after alignment as a fraction
    of the grey range and ``crop`` the crop window found (1.0 when none).
    """

    a: FileRef
    b: FileRef
    bits: int
    kind: str = "near"
    tier: str = "confirmed"
    score: float = float("nan")
    peak: float = float("nan")
    crop: float = 1.0


@dataclass(frozen=True)
class Leak:
    """The same picture in two splits: ``kind`` is ``exact``, ``near`` (a confirmed resized, re-encoded,
    cropped or brightened copy) or ``mirror`` (a confirmed mirrored copy); ``a`` is the copy in the earlier split
    (train before val before test). ``score`` is the aligned correlation (1.0 for exact copies)."""

    kind: str
    a: FileRef
    b: FileRef
    bits: int = 0
    score: float = 1.0

    def __str__(self) -> str:
        return f"{self.kind} duplicate: {self.a} = {self.b}"


@dataclass(frozen=True)
class SplitSummary:
    """Files and images per class of one split; ``imbalance_ratio`` is largest over smallest non-empty class
    (None without labels) and ``missing_classes`` names classes without images."""

    name: str
    n_files: int
    n_unreadable: int
    class_counts: dict[str, int]
    imbalance_ratio: float | None
    missing_classes: tuple[str, ...]


@dataclass(frozen=True)
class ImageStats:
    """Sizes as ``(min, median, max)`` pixels, and counts of Pillow modes and formats, over readable images."""

    n_readable: int
    width: tuple[int, float, int]
    height: tuple[int, float, int]
    modes: dict[str, int]
    formats: dict[str, int]


@dataclass(frozen=True)
class AuditReport:
    """Everything the audit found; ``warnings`` are plain sentences, leakage first, and ``has_leakage`` is the
    one flag a pipeline should check.

    >>> report = audit_files({"train": tr, "test": te}, labels, names)  # doctest: +SKIP
    >>> report.has_leakage, report.warnings[:1]  # doctest: +SKIP
    (True, ['LEAKAGE: 3 test images are exact copies of train images (e.g. ...). ...'])
    """

    splits: tuple[SplitSummary, ...]
    images: ImageStats
    unreadable: tuple[UnreadableFile, ...]
    exact_duplicates: tuple[DuplicateGroup, ...]
    near_duplicates: tuple[NearDuplicate, ...]
    n_near_duplicates: int
    leakage: tuple[Leak, ...]
    n_leaks: int
    label_conflicts: tuple[DuplicateGroup, ...]
    warnings: tuple[str, ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)
    look_alikes: tuple[NearDuplicate, ...] = ()
    n_look_alikes: int = 0
    n_cross_look_alikes: int = 0

    @property
    def tiers(self) -> dict[str, int]:
        """How sure the audit is, as pair counts: exact copies, confirmed near copies (mirrored ones included)
        and look-alikes (unconfirmed, never leakage)."""
        exact = sum(len(g.files) * (len(g.files) - 1) // 2 for g in self.exact_duplicates)
        return {"exact": exact, "confirmed near": self.n_near_duplicates, "look-alike": self.n_look_alikes}

    @property
    def has_leakage(self) -> bool:
        return self.n_leaks > 0

    def to_dict(self) -> dict[str, Any]:
        """Every finding, JSON-ready."""
        out = _jsonable(self)
        out["has_leakage"] = self.has_leakage
        out["tiers"] = self.tiers
        return out

    def with_warnings(self, imbalance_warn: float) -> AuditReport:
        """A copy whose ``warnings`` describe the findings (used by ``audit_files``)."""
        return dataclasses.replace(self, warnings=tuple(_warnings(self, imbalance_warn)))


def _plural(n: int, word: str, plural: str | None = None) -> str:
    return f"{n} {word if n == 1 else plural or word + 's'}"


def _warnings(r: AuditReport, imbalance_warn: float) -> list[str]:
    out = []
    by_pair: dict[tuple[str, str, str], list[Leak]] = {}
    for leak in r.leakage:
        by_pair.setdefault((leak.kind, leak.a.split, leak.b.split), []).append(leak)
    for (kind, sa, sb), leaks in by_pair.items():
        first = leaks[0]
        count = len({leak.b.path for leak in leaks})
        one = count == 1
        n = f"1 {sb} image is" if one else f"{count} {sb} images are"
        if kind == "near" and r.n_leaks > len(r.leakage):
            n = "at least " + n  # the listed near duplicates were capped
        if kind == "exact":
            what = f"an exact copy of a {sa} image" if one else f"exact copies of {sa} images"
            out.append(
                f"LEAKAGE: {n} {what} (e.g. {first.b.path} = {first.a.path}); scores on '{sb}' will be "
                f"optimistic. Remove these files from '{sb}' (or from '{sa}') and re-run the audit."
            )
        else:
            if kind == "mirror":
                what = f"a mirrored copy of a {sa} image" if one else f"mirrored copies of {sa} images"
            else:
                what = (
                    f"a resized, re-encoded, cropped or brightened copy of a {sa} image"
                    if one
                    else f"resized, re-encoded, cropped or brightened copies of {sa} images"
                )
            out.append(
                f"LEAKAGE ({'mirrored' if kind == 'mirror' else 'near'} copies, confirmed pixel by pixel): {n} "
                f"{what} (e.g. {first.b.path} ~ {first.a.path}, similarity {first.score:.3f}); remove them from "
                f"'{sb}' (or from '{sa}') and re-run the audit."
            )
    if r.n_leaks > len(r.leakage):
        out.append(
            f"LEAKAGE: {r.n_leaks} cross-split duplicate pairs in all; only the first {len(r.leakage)} are listed."
        )
    if r.n_cross_look_alikes:
        out.append(
            f"{_plural(r.n_cross_look_alikes, 'pair')} across splits look alike but are not confirmed as copies "
            "(information only, not leakage): see the look-alike list."
        )
    if r.unreadable:
        u = r.unreadable[0]
        out.append(
            f"{_plural(len(r.unreadable), 'file')} cannot be read as an image (e.g. {u.file.path}: {u.reason}); "
            "fix or delete them."
        )
    if r.label_conflicts:
        g = r.label_conflicts[0]
        labels = sorted({str(f.label) for f in g.files})
        out.append(
            f"{_plural(len(r.label_conflicts), 'set')} of identical files carry different labels "
            f"(e.g. {labels}: {', '.join(str(f) for f in g.files[:3])}); fix the labels or drop the copies."
        )
    within = [g for g in r.exact_duplicates if len(g.splits) == 1]
    if within:
        n = sum(len(g.files) - 1 for g in within)
        copies = _plural(n, "redundant exact copy", "redundant exact copies")
        out.append(f"{copies} inside splits (e.g. {within[0].files[0].path}).")
    for s in r.splits:
        if s.missing_classes:
            out.append(f"split '{s.name}' has no images of {', '.join(s.missing_classes[:10])}.")
        if s.imbalance_ratio is not None and s.imbalance_ratio >= imbalance_warn:
            out.append(
                f"split '{s.name}' is imbalanced: the largest class has {s.imbalance_ratio:.1f}x the images of the "
                "smallest; consider class weights or balanced sampling, and read balanced accuracy."
            )
    return out
