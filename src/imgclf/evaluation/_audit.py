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
from imgclf.evaluation._imagehash import close_pairs, phash, thumbnail
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
    hashes: list[np.uint64] = field(default_factory=list)
    thumbs: list[np.ndarray] = field(default_factory=list)
    unreadable: list[UnreadableFile] = field(default_factory=list)


def audit_files(
    paths_by_split: Mapping[str, Sequence[str | os.PathLike]],
    labels_by_split: Mapping[str, Sequence[int]] | None = None,
    class_names: Sequence[str] | None = None,
    *,
    near_duplicates: bool = True,
    max_bits: int = 8,
    min_correlation: float = 0.95,
    max_listed: int = 1000,
) -> AuditReport:
    """Audit image files grouped by split (``{"train": [...], "test": [...]}``) with optional integer labels.

    Reports images per class and the imbalance ratio per split, image sizes, modes and formats, unreadable
    files with the reason, exact duplicates (sha256 of the bytes), near duplicates (pHash within ``max_bits``
    bits, confirmed by a 16x16 grey thumbnail correlation of at least ``min_correlation``; on tiny low-detail
    images such as 28x28 digits this also pairs look-alikes) and ``leakage``: every exact or
    near duplicate that crosses splits, train/test first. ``warnings`` says all of it in plain sentences,
    leakage first. Lists of near duplicates and leaks stop at ``max_listed`` entries (the counts are complete).

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
            _read(scan, FileRef(str(split), str(path), label))
    exact = _exact_groups(scan)
    thresholds = {"max_bits": max_bits, "min_correlation": min_correlation}
    near, n_near, near_leaks, n_near_leaks = _near(scan, near_duplicates, thresholds, max_listed)
    exact_leaks = [leak for g in exact for leak in _group_leaks(g)]
    leaks = sorted(exact_leaks, key=_leak_priority) + near_leaks  # every exact leak; near ones capped
    splits = tuple(_summary(split, paths_by_split[split], labels_by_split, names, scan) for split in paths_by_split)
    conflicts = tuple(g for g in exact if len({f.label for f in g.files}) > 1)
    report = AuditReport(
        splits=splits,
        images=_image_stats(scan),
        unreadable=tuple(scan.unreadable),
        exact_duplicates=tuple(exact),
        near_duplicates=tuple(near),
        n_near_duplicates=n_near,
        leakage=tuple(leaks),
        n_leaks=len(exact_leaks) + n_near_leaks,
        label_conflicts=conflicts,
        warnings=(),
        settings={"near_duplicates": near_duplicates, **thresholds},
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


def _read(scan: _Scan, ref: FileRef) -> None:
    """Hash the bytes, then decode a small grey version for the perceptual hash; record failures."""
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
    scan.hashes.append(phash(grey))
    scan.thumbs.append(thumbnail(grey))


def _exact_groups(scan: _Scan) -> list[DuplicateGroup]:
    by_sha: dict[str, list[FileRef]] = defaultdict(list)
    for ref, sha in zip(scan.refs, scan.sha, strict=True):
        if sha:
            by_sha[sha].append(ref)
    return [DuplicateGroup(sha, tuple(refs)) for sha, refs in by_sha.items() if len(refs) > 1]


def _near(
    scan: _Scan, enabled: bool, thresholds: dict[str, Any], max_listed: int
) -> tuple[list[NearDuplicate], int, list[Leak], int]:
    """Near-duplicate pairs (not byte-identical), and those crossing splits as leaks; lists capped."""
    if not enabled or len(scan.readable) < 2:
        return [], 0, [], 0
    hashes = np.array(scan.hashes, dtype=np.uint64)
    thumbs = np.stack(scan.thumbs)  # (M, 16, 16) uint8
    pairs, leaks, n_pairs, n_leaks = [], [], 0, 0
    for i, j, bits in close_pairs(hashes, thumbs, **thresholds):
        a, b = scan.readable[i], scan.readable[j]
        if scan.sha[a] == scan.sha[b]:
            continue  # already an exact duplicate
        ra, rb = scan.refs[a], scan.refs[b]
        n_pairs += 1
        if len(pairs) < max_listed:
            pairs.append(NearDuplicate(ra, rb, bits))
        if ra.split != rb.split:
            n_leaks += 1
            if len(leaks) < 10 * max_listed:  # enough to keep the train/test ones after sorting
                leaks.append(_leak("near", ra, rb, bits))
    leaks.sort(key=_leak_priority)
    return pairs, n_pairs, leaks[:max_listed], n_leaks


def _group_leaks(group: DuplicateGroup) -> list[Leak]:
    files = group.files
    return [_leak("exact", a, b, 0) for k, a in enumerate(files) for b in files[k + 1 :] if a.split != b.split]


def _rank(split: str) -> int:
    s = split.lower()
    return 0 if s.startswith("train") else 1 if s.startswith("val") else 2 if s.startswith("test") else 3


def _leak(kind: str, a: FileRef, b: FileRef, bits: int) -> Leak:
    """A leak with its files ordered train, val, test, other (so ``a`` is the training copy)."""
    if (_rank(b.split), b.split) < (_rank(a.split), a.split):
        a, b = b, a
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
