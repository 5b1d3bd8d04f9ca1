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

from imgclf.data._multilabel import carve_multilabel, kfold_assignment
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


def split_how(seed: int, fraction: float | None, multilabel: bool = False) -> str:
    """How a part was split off, for ``info``; ``fraction=None`` describes the remainder."""
    kind = "iterative stratified split" if multilabel else "stratified split"
    return f"{kind}, seed {seed}, " + ("remainder" if fraction is None else f"fraction {fraction:g}")


def carve(samples: SampleList, fractions: Sequence[float], seed: int) -> list[SampleList]:
    """``samples`` split by :func:`stratified_indices` into ``[rest, part_1, ...]`` SampleLists (multi-label
    samples by :func:`iterative_split`)."""
    if samples.is_multilabel:
        return carve_multilabel(samples, fractions, seed)
    return [samples.subset(idx) for idx in stratified_indices(samples.labels, fractions, seed)]


def given_parts(train: SampleList, val: SampleList | None, test: SampleList | None, *, val_fraction: float,
                seed: int, test_how: str | None = None) -> dict[str, tuple[SampleList | None, str]]:  # fmt: skip
    """Given train (+ val, test); val carved from train (stratified, seeded) when not given."""
    if val is not None or val_fraction == 0:
        return {"train": (train, "given"), "val": (val, "given"), "test": (test, test_how or "given")}
    rest, carved = carve(train, [val_fraction], seed)
    how = split_how(seed, val_fraction, train.is_multilabel)
    return {"train": (rest, "given, val carved out"), "val": (carved, how), "test": (test, test_how or "given")}


def flat_parts(samples: SampleList, *, val_fraction: float, test_fraction: float,
               seed: int) -> dict[str, tuple[SampleList | None, str]]:  # fmt: skip
    """Train/val/test carved from one pool by the fractions (stratified, seeded)."""
    multi = samples.is_multilabel
    rest, val, test = carve(samples, [val_fraction, test_fraction], seed)
    return {"train": (rest, split_how(seed, None, multi)), "val": (val, split_how(seed, val_fraction, multi)),
            "test": (test, split_how(seed, test_fraction, multi))}  # fmt: skip


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
    stable name (path relative to ``root``, or e.g. ``digits[12]`` in memory) with its class name. Multi-label
    samples (the task follows the train samples) count each class's positives, add ``no_labels`` (images
    without any label) to each split's record, and fingerprint the ``;``-joined class names; the cap then
    applies to each sample's stratum (its rarest class, see :attr:`SampleList.labels`).
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
        multi = samples.multi_hot
        if multi is None:
            counts = np.bincount(np.asarray(samples.labels, dtype=np.int64), minlength=len(classes))
        else:
            counts = multi.sum(axis=0, dtype=np.int64)  # (C,) positives per class
        split_info[split] = {"how": how, "n": len(samples),
                             "counts": {c: int(n) for c, n in zip(classes, counts, strict=True)}}  # fmt: skip
        if multi is not None:
            split_info[split]["no_labels"] = int((~multi.any(axis=1)).sum())
        rows += list(zip(sample_names(samples, root), label_names(samples, classes), strict=True))
    digest = hashlib.sha256(json.dumps(sorted(rows), separators=(",", ":")).encode()).hexdigest()
    train = final.get("train")
    if train is None:
        raise DataError(f"{root}: no training images left; check the data source and max_per_class")
    task = "multilabel" if train.is_multilabel else "single"
    info: dict[str, Any] = {"kind": kind, "root": root, **(extra or {}), "classes": list(classes),
                            "splits": split_info, "max_per_class": max_per_class, "skipped": len(skipped),
                            "fingerprint": digest}  # fmt: skip
    if task != "single":
        info["task"] = task
    return Splits(tuple(classes), train, final.get("val"), final.get("test"), tuple(skipped), info, task)


def label_names(samples: SampleList, classes: Sequence[str]) -> list[str]:
    """Each sample's class name, or for multi-label samples its class names joined by ``;`` (``""``: none)."""
    multi = samples.multi_hot
    if multi is None:
        return [classes[y] for y in samples.labels]
    return [";".join(classes[k] for k in np.flatnonzero(row)) for row in multi]


def sample_names(samples: SampleList, root: str) -> list[str]:
    """Each sample's stable name: its path relative to ``root``, or ``name[index]`` for in-memory samples."""
    paths = samples.paths
    if paths is None:
        return [samples.describe(i) for i in range(len(samples))]
    rel = relative_to(root)
    return [rel(p) for p in paths]


def write_split(path: str | os.PathLike, splits: Splits) -> Path:
    """Write ``splits`` as JSON (atomically): classes, sizes, skipped files, info and every split's
    ``[name, class]`` list (``[name, [class, ...]]`` for multi-label splits, which also record ``"task"``), so
    the exact split of a run can be audited later.

    >>> # write_split("runs/x/split.json", load_source("digits"))
    """
    root = str(splits.info.get("root", "."))
    listing = {split: [[n, _target_record(s, i, splits.classes)] for i, n in enumerate(sample_names(s, root))]
               for split, s in splits.items()}  # fmt: skip
    return atomic_write_text(path, json.dumps({**splits.to_dict(), "samples": listing}, indent=1) + "\n")


def _target_record(samples: SampleList, i: int, classes: Sequence[str]) -> str | list[str]:
    multi = samples.multi_hot
    if multi is None:
        return classes[samples.labels[i]]
    return [classes[k] for k in np.flatnonzero(multi[i])]


def kfold(splits: Splits, k: int, fold: int, seed: int) -> Splits:
    """Fold ``fold`` of a stratified ``k``-fold split of train + val: that fold becomes val, the rest train.

    The test split (if any) is untouched. Same ``seed`` -> same folds; over ``fold = 0..k-1`` every train+val
    sample is in val exactly once. Multi-label splits are folded by iterative stratification (a class with
    fewer than ``k`` positives is then missing from some folds).

    >>> # [kfold(splits, 5, f, seed=0).val for f in range(5)]  # five disjoint validation folds
    """
    if k < 2 or not 0 <= fold < k:
        raise DataError(f"k-fold needs k >= 2 and 0 <= fold < k (got k={k}, fold={fold})")
    pool = splits.train if splits.val is None else SampleList.concat([splits.train, splits.val])
    if pool.is_multilabel:
        if len(pool) < k:
            raise DataError(f"{k}-fold cross-validation needs at least {k} images (have {len(pool)}); use fewer "
                            "folds")  # fmt: skip
        assignment = kfold_assignment(pool.multi_hot, k, seed)
    else:
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
                  splits.skipped, info, splits.task)  # fmt: skip
