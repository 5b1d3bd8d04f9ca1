"""Seeded stratified splitting, per-class caps, and the JSON record (counts, fingerprint) of how splits were made."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from imgclf.data._samples import SampleList, Splits
from imgclf.errors import DataError
from imgclf.utils import atomic_write_text


def _share(n: int, fraction: float, available: int) -> int:
    """How many of a class's ``n`` samples go to a part of size ``fraction`` (at least one when the fraction is
    positive and the class can spare it, always leaving one for train)."""
    k = math.floor(n * fraction + 0.5)
    if fraction > 0 and k == 0:
        k = 1
    return max(0, min(k, available - 1))


def stratified_indices(labels: Sequence[int], fractions: Sequence[float], seed: int) -> list[list[int]]:
    """Split positions ``0..len(labels)-1`` per class into ``[rest, part_1, ..., part_k]`` by ``fractions``.

    Seeded with ``seed``; every part keeps the input order. The rest (train) keeps at least one of each class.

    >>> [len(p) for p in stratified_indices([0] * 10 + [1] * 10, [0.2, 0.1], seed=0)]
    [14, 4, 2]
    """
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[int]] = {}
    for i, y in enumerate(labels):
        by_class.setdefault(int(y), []).append(i)
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    for y in sorted(by_class):
        members = np.asarray(by_class[y])
        order = members[rng.permutation(len(members))]
        start, available = 0, len(members)
        for p, fraction in enumerate(fractions, start=1):
            k = _share(len(members), fraction, available)
            parts[p] += order[start : start + k].tolist()
            start, available = start + k, available - k
        parts[0] += order[start:].tolist()
    return [sorted(p) for p in parts]


def split_how(seed: int, fraction: float) -> str:
    return f"stratified split, seed {seed}, fraction {fraction:g}"


def carve(samples: SampleList, fractions: Sequence[float], seed: int) -> list[SampleList]:
    """``samples`` split by :func:`stratified_indices` into ``[rest, part_1, ...]`` SampleLists."""
    return [samples.subset(idx) for idx in stratified_indices(samples.labels, fractions, seed)]


def cap_per_class(samples: SampleList, max_per_class: int | None) -> SampleList:
    """The first ``max_per_class`` samples of each class (all when ``None``)."""
    if max_per_class is None:
        return samples
    seen: dict[int, int] = {}
    keep = []
    for i, y in enumerate(samples.labels):
        if seen.get(y, 0) < max_per_class:
            seen[y] = seen.get(y, 0) + 1
            keep.append(i)
    return samples.subset(keep)


def relative_to(root: str) -> Callable[[str], str]:
    """A function giving a path relative to ``root`` with forward slashes (the fingerprint's stable name)."""
    prefix = os.path.join(os.path.abspath(root), "")

    def rel(path: str) -> str:
        full = os.path.abspath(path)
        # The common case, without relpath's cost (it matters for 100k-file datasets).
        out = full[len(prefix) :] if full.startswith(prefix) else os.path.relpath(full, root)
        return out.replace(os.sep, "/")

    return rel


def finish(kind: str, root: str, classes: Sequence[str], parts: dict[str, tuple[SampleList | None, str]],
           skipped: Sequence[tuple[str, str]], *, max_per_class: int | None,
           extra: dict[str, Any] | None = None) -> Splits:  # fmt: skip
    """Cap each split per class, count, fingerprint and pack the result into :class:`Splits`.

    ``parts`` maps split name to ``(samples or None, how it was made)``. The fingerprint hashes each sample's
    stable name (path relative to ``root``, or e.g. ``digits[12]`` in memory) with its class name.
    """
    final: dict[str, SampleList | None] = {}
    split_info: dict[str, Any] = {}
    rows: list[tuple[str, str]] = []
    for split, (samples, how) in parts.items():
        if samples is None or len(samples) == 0:
            final[split] = None
            continue
        samples = cap_per_class(samples, max_per_class)
        final[split] = samples
        counts = np.bincount(np.asarray(samples.labels, dtype=np.int64), minlength=len(classes))
        split_info[split] = {"how": how, "n": len(samples),
                             "counts": {c: int(n) for c, n in zip(classes, counts, strict=True)}}  # fmt: skip
        rows += [(n, classes[y]) for n, y in zip(sample_names(samples, root), samples.labels, strict=True)]
    digest = hashlib.sha256(json.dumps(sorted(rows), separators=(",", ":")).encode()).hexdigest()
    info: dict[str, Any] = {"kind": kind, "root": root, **(extra or {}), "classes": list(classes),
                            "splits": split_info, "max_per_class": max_per_class, "skipped": len(skipped),
                            "fingerprint": digest}  # fmt: skip
    train = final.get("train")
    if train is None:
        raise DataError(f"{root}: no training images left; check the data source and max_per_class")
    return Splits(tuple(classes), train, final.get("val"), final.get("test"), tuple(skipped), info)


def sample_names(samples: SampleList, root: str) -> list[str]:
    """Each sample's stable name: its path relative to ``root``, or ``name[index]`` for in-memory samples."""
    paths = samples.paths
    if paths is None:
        return [samples.describe(i) for i in range(len(samples))]
    rel = relative_to(root)
    return [rel(p) for p in paths]


def write_split(path: str | os.PathLike, splits: Splits) -> Path:
    """Write ``splits`` as JSON (atomically): classes, sizes, skipped files, info and every split's
    ``[name, class]`` list, so the exact split of a run can be audited later.

    >>> # write_split("runs/x/split.json", load_source("digits"))
    """
    root = str(splits.info.get("root", "."))
    listing = {split: [[n, splits.classes[y]] for n, y in zip(sample_names(s, root), s.labels, strict=True)]
               for split, s in splits.items()}  # fmt: skip
    return atomic_write_text(path, json.dumps({**splits.to_dict(), "samples": listing}, indent=1) + "\n")


def kfold(splits: Splits, k: int, fold: int, seed: int) -> Splits:
    """Fold ``fold`` of a stratified ``k``-fold split of train + val: that fold becomes val, the rest train.

    The test split (if any) is untouched. Same ``seed`` -> same folds; over ``fold = 0..k-1`` every train+val
    sample is in val exactly once.

    >>> # [kfold(splits, 5, f, seed=0).val for f in range(5)]  # five disjoint validation folds
    """
    if k < 2 or not 0 <= fold < k:
        raise DataError(f"k-fold needs k >= 2 and 0 <= fold < k (got k={k}, fold={fold})")
    pool = splits.train if splits.val is None else SampleList.concat([splits.train, splits.val])
    counts = np.bincount(pool.labels)
    if counts[counts > 0].min() < k:
        raise DataError(f"{k}-fold cross-validation needs at least {k} images in every class "
                        f"(the smallest class has {counts[counts > 0].min()}); use fewer folds")  # fmt: skip
    rng = np.random.default_rng(seed)
    assignment = np.empty(len(pool), dtype=np.int64)
    for y in np.unique(pool.labels):
        members = np.flatnonzero(np.asarray(pool.labels) == y)
        assignment[members[rng.permutation(len(members))]] = np.arange(len(members)) % k
    val_idx, train_idx = np.flatnonzero(assignment == fold), np.flatnonzero(assignment != fold)
    info = {**splits.info, "folds": {"k": k, "fold": fold, "seed": seed}}
    return Splits(splits.classes, pool.subset(train_idx.tolist()), pool.subset(val_idx.tolist()), splits.test,
                  splits.skipped, info)  # fmt: skip
