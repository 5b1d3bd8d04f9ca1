"""Data audit on file lists: class balance, image sizes and modes, unreadable files, exact and near duplicates
within and across splits, and a loud list of train/test (and train/val) leakage."""

from __future__ import annotations

import io
import os
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.evaluation._audit_types import (
    AuditReport,
    DuplicateGroup,
    FileRef,
    ImageStats,
    Leak,
    NearDuplicate,
    SplitSummary,
    UnreadableFile,
)
from imgclf.evaluation._near_duplicates import (
    LOOK_ALIKE_SCORE,
    LOW_ENTROPY_BITS,
    THRESHOLDS,
    Fingerprint,
    find_matches,
    fingerprint,
)
from imgclf.utils import sha256_bytes

IMBALANCE_WARN = 10.0  # warn when the largest class has this many times the images of the smallest


@dataclass
class _Scan:
    """Everything read from the files, index-aligned across all splits."""

    refs: list[FileRef] = field(default_factory=list)
    sha: list[str] = field(default_factory=list)
    readable: list[int] = field(default_factory=list)  # positions in refs
    sizes: list[tuple[int, int]] = field(default_factory=list)
    modes: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)
    prints: list[Fingerprint] = field(default_factory=list)
    unreadable: list[UnreadableFile] = field(default_factory=list)


def audit_files(
    paths_by_split: Mapping[str, Sequence[str | os.PathLike]],
    labels_by_split: Mapping[str, Sequence[int]] | None = None,
    class_names: Sequence[str] | None = None,
    *,
    near_duplicates: bool = True,
    max_bits: int = 8,
    max_listed: int = 1000,
    skipped: Sequence[tuple[str, str]] = (),
) -> AuditReport:
    """Audit image files grouped by split (``{"train": [...], "test": [...]}``) with optional integer labels.

    Reports images per class and the imbalance ratio per split, image sizes, modes and formats, unreadable
    files with the reason, exact duplicates (sha256 of the bytes), near duplicates and ``leakage``: every exact
    or confirmed near duplicate that crosses splits, train/test first. Near duplicates are pHash candidates
    (within ``max_bits`` bits, mirrored and cropped copies included) confirmed at pixel level on aligned,
    size-normalised images; candidates that correlate but are not confirmed are ``look_alikes`` (information,
    never leakage). ``settings`` records the thresholds used. ``warnings`` says all of it in plain sentences,
    leakage first. Lists of near duplicates, look-alikes and leaks stop at ``max_listed`` entries (the counts are
    complete). ``skipped``: ``(path, reason)`` of files left out of every split while listing them (a source's
    ``Splits.skipped``), reported as unreadable under the split name ``"skipped"``.

    >>> report = audit_files({"train": train_paths, "test": test_paths}, labels, ["cat", "dog"])  # doctest: +SKIP
    >>> report.leakage[0].a.path, report.warnings[0]  # doctest: +SKIP
    ('train/cat/1.png', 'LEAKAGE: 1 test image is an exact copy of a train image ...')
    """
    if not paths_by_split:
        raise DataError("audit_files needs at least one split of image paths, got none.")
    names = None if class_names is None else [str(n) for n in class_names]
    scan = _Scan()
    for split, paths in paths_by_split.items():
        labels = _labels_for(split, paths, labels_by_split, names)
        for k, path in enumerate(paths):
            label = None if labels is None else (names[labels[k]] if names else str(labels[k]))
            _read(scan, FileRef(str(split), str(path), label), perceptual=near_duplicates)
    exact = _exact_groups(scan)
    near, n_near, near_leaks, n_near_leaks, looks = _near(scan, near_duplicates, max_bits, max_listed)
    exact_leaks = [leak for g in exact for leak in _group_leaks(g)]
    leaks = sorted(exact_leaks, key=_leak_priority) + near_leaks  # every exact leak; near ones capped
    splits = tuple(_summary(split, paths_by_split[split], labels_by_split, names, scan) for split in paths_by_split)
    conflicts = tuple(g for g in exact if len({f.label for f in g.files}) > 1)
    report = AuditReport(
        splits=splits,
        images=_image_stats(scan),
        unreadable=(*(UnreadableFile(FileRef("skipped", str(p), None), r) for p, r in skipped), *scan.unreadable),
        exact_duplicates=tuple(exact),
        near_duplicates=tuple(near),
        n_near_duplicates=n_near,
        leakage=tuple(leaks),
        n_leaks=len(exact_leaks) + n_near_leaks,
        label_conflicts=conflicts,
        warnings=(),
        settings=_settings(near_duplicates, max_bits),
        look_alikes=tuple(looks[0]),
        n_look_alikes=looks[1],
        n_cross_look_alikes=looks[2],
    )
    return report.with_warnings(IMBALANCE_WARN)


def _labels_for(
    split: str,
    paths: Sequence[Any],
    labels_by_split: Mapping[str, Sequence[int]] | None,
    names: list[str] | None,
) -> list[int] | None:
    if labels_by_split is None or split not in labels_by_split:
        return None
    labels = [int(v) for v in labels_by_split[split]]
    if len(labels) != len(paths):
        raise DataError(f"split '{split}' has {len(paths)} paths but {len(labels)} labels; give one label per file.")
    if names is not None and labels and (min(labels) < 0 or max(labels) >= len(names)):
        raise DataError(f"split '{split}' has labels outside [0, {len(names)}) for {len(names)} class names.")
    return labels


def _read(scan: _Scan, ref: FileRef, *, perceptual: bool = True) -> None:
    """Hash the bytes, decode a small grey version (a file that cannot be decoded is recorded) and take its
    perceptual hash when the near-duplicate search needs it."""
    from PIL import Image, UnidentifiedImageError

    pos = len(scan.refs)
    scan.refs.append(ref)
    try:
        with open(ref.path, "rb") as f:
            data = f.read()
    except OSError as exc:
        scan.sha.append("")
        scan.unreadable.append(UnreadableFile(ref, f"cannot read the file: {exc.strerror or exc}"))
        return
    scan.sha.append(sha256_bytes(data))
    try:
        with Image.open(io.BytesIO(data)) as im:
            size, mode, fmt = im.size, im.mode, im.format or "unknown"
            im.draft("L", (64, 64))  # JPEG: decode at reduced scale, far faster for large photos
            grey = im.convert("L")
    except UnidentifiedImageError:
        scan.unreadable.append(UnreadableFile(ref, "UnidentifiedImageError: not an image format Pillow can decode"))
        return
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        scan.unreadable.append(UnreadableFile(ref, f"{type(exc).__name__}: {exc}"))
        return
    scan.readable.append(pos)
    scan.sizes.append(size)
    scan.modes[mode] += 1
    scan.formats[fmt] += 1
    if perceptual:
        scan.prints.append(fingerprint(grey))


def _exact_groups(scan: _Scan) -> list[DuplicateGroup]:
    by_sha: dict[str, list[FileRef]] = defaultdict(list)
    for ref, sha in zip(scan.refs, scan.sha, strict=True):
        if sha:
            by_sha[sha].append(ref)
    return [DuplicateGroup(sha, tuple(refs)) for sha, refs in by_sha.items() if len(refs) > 1]


def _settings(enabled: bool, max_bits: int) -> dict[str, Any]:
    """The thresholds used, for the report and the JSON output."""
    return {
        "near_duplicates": enabled,
        "max_bits": max_bits,
        "min_score": THRESHOLDS["default"][0],
        "max_peak": THRESHOLDS["default"][1],
        "low_entropy_bits": LOW_ENTROPY_BITS,
        "low_entropy_min_score": THRESHOLDS["low_entropy"][0],
        "low_entropy_max_peak": THRESHOLDS["low_entropy"][1],
        "look_alike_score": LOOK_ALIKE_SCORE,
    }


def _near(
    scan: _Scan, enabled: bool, max_bits: int, max_listed: int
) -> tuple[list[NearDuplicate], int, list[Leak], int, tuple[list[NearDuplicate], int, int]]:
    """Confirmed near-duplicate pairs (not byte-identical) and those crossing splits as leaks, plus the
    look-alikes (listed, counted, and counted across splits); lists capped."""
    if not enabled or len(scan.readable) < 2:
        return [], 0, [], 0, ([], 0, 0)
    pairs, leaks, looks, n_pairs, n_leaks, n_looks, n_cross_looks = [], [], [], 0, 0, 0, 0
    for m in find_matches(scan.prints, max_bits=max_bits):
        a, b = scan.readable[m.i], scan.readable[m.j]
        if scan.sha[a] == scan.sha[b]:
            continue  # already an exact duplicate
        ra, rb = scan.refs[a], scan.refs[b]
        if ra.split != rb.split:
            ra, rb = _ordered(ra, rb)
        pair = NearDuplicate(ra, rb, m.bits, m.kind, m.tier, round(m.score, 4), round(m.peak, 4), round(m.crop, 2))
        if m.tier != "confirmed":
            n_looks += 1
            n_cross_looks += ra.split != rb.split
            looks.append(pair)
            continue
        n_pairs += 1
        if len(pairs) < max_listed:
            pairs.append(pair)
        if ra.split != rb.split:
            n_leaks += 1
            if len(leaks) < 10 * max_listed:  # enough to keep the train/test ones after sorting
                leaks.append(Leak(m.kind, ra, rb, m.bits, round(m.score, 4)))
    leaks.sort(key=_leak_priority)
    looks.sort(key=lambda p: (p.a.split == p.b.split, -p.score))  # cross-split first, most similar first
    return pairs, n_pairs, leaks[:max_listed], n_leaks, (looks[:max_listed], n_looks, n_cross_looks)


def _group_leaks(group: DuplicateGroup) -> list[Leak]:
    files = group.files
    return [_leak("exact", a, b, 0) for k, a in enumerate(files) for b in files[k + 1 :] if a.split != b.split]


def _rank(split: str) -> int:
    s = split.lower()
    return 0 if s.startswith("train") else 1 if s.startswith("val") else 2 if s.startswith("test") else 3


def _ordered(a: FileRef, b: FileRef) -> tuple[FileRef, FileRef]:
    """The two files in split order train, val, test, other (so the first is the training copy)."""
    return (b, a) if (_rank(b.split), b.split) < (_rank(a.split), a.split) else (a, b)


def _leak(kind: str, a: FileRef, b: FileRef, bits: int) -> Leak:
    """A leak with its files ordered train, val, test, other (so ``a`` is the training copy)."""
    a, b = _ordered(a, b)
    return Leak(kind, a, b, bits)


def _leak_priority(leak: Leak) -> tuple[int, str, str]:
    pair = {_rank(leak.a.split), _rank(leak.b.split)}
    order = 0 if pair == {0, 2} else 1 if pair == {0, 1} else 2
    return order, leak.a.path, leak.b.path


def _summary(
    split: str,
    paths: Sequence[Any],
    labels_by_split: Mapping[str, Sequence[int]] | None,
    names: list[str] | None,
    scan: _Scan,
) -> SplitSummary:
    n_bad = sum(1 for u in scan.unreadable if u.file.split == split)
    if labels_by_split is None or split not in labels_by_split:
        return SplitSummary(split, len(paths), n_bad, {}, None, ())
    counts = Counter(int(v) for v in labels_by_split[split])
    keys = range(len(names)) if names is not None else sorted(counts)
    label = (lambda k: names[k]) if names is not None else str
    per_class = {label(k): counts.get(k, 0) for k in keys}
    present = [v for v in per_class.values() if v > 0]
    missing = tuple(name for name, v in per_class.items() if v == 0)
    ratio = max(present) / min(present) if present else None
    return SplitSummary(split, len(paths), n_bad, per_class, ratio, missing)


def _image_stats(scan: _Scan) -> ImageStats:
    if not scan.sizes:
        return ImageStats(0, (0, 0, 0), (0, 0, 0), {}, {})
    wh = np.array(scan.sizes)  # (M, 2)
    w, h = wh[:, 0], wh[:, 1]
    return ImageStats(
        n_readable=len(scan.sizes),
        width=(int(w.min()), float(np.median(w)), int(w.max())),
        height=(int(h.min()), float(np.median(h)), int(h.max())),
        modes=dict(scan.modes.most_common()),
        formats=dict(scan.formats.most_common()),
    )
