"""Multi-label pieces: parsing ``a;b`` label cells, and seeded iterative stratification (Sechidis et al. 2011)
through the ``iterative-stratification`` package."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from imgclf.data._samples import SampleList
from imgclf.errors import DataError

SEPARATOR = ";"


def parse_label_cell(cell: str, where: str) -> list[str]:
    """The class names of one multi-label cell: ``"cat; dog"`` -> ``["cat", "dog"]`` (names stripped, repeats
    dropped, order kept); an empty cell is an image with no labels. An empty name between separators raises a
    DataError naming ``where`` (the manifest and line).

    >>> parse_label_cell(" cat;dog ;cat", "m.csv line 2"), parse_label_cell("", "m.csv line 3")
    (['cat', 'dog'], [])
    """
    text = cell.strip()
    if not text:
        return []
    names = [part.strip() for part in text.split(SEPARATOR)]
    if any(not name for name in names):
        raise DataError(f"{where}: label cell {cell!r} has an empty class name between '{SEPARATOR}' separators; "
                        f"write the names joined by a single '{SEPARATOR}' (e.g. cat;dog), or leave the cell "
                        "empty for an image with no labels")  # fmt: skip
    return list(dict.fromkeys(names))


def _iterative_stratification(multi_hot: np.ndarray, ratios: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
    # The package's function, imported here: the package is tiny, but only multi-label splits need it.
    from iterstrat.ml_stratifiers import IterativeStratification

    return np.asarray(IterativeStratification(labels=multi_hot.astype(bool), r=ratios, random_state=rng))


def iterative_split(multi_hot: np.ndarray, fractions: Sequence[float], seed: int) -> list[list[int]]:
    """Split rows ``0..N-1`` of a multi-hot ``(N, C)`` array into ``[rest, part_1, ..., part_k]`` by
    ``fractions``, keeping every class's share of positives close to the fractions.

    Rows are shuffled with ``seed``, then assigned by iterative stratification (rarest label first, to the part
    that still wants most of it), as the ``iterative-stratification`` package implements it; rows without labels
    fill the parts evenly. The rest (train) then gets one row of every class it lacks, taken from a part that
    has several of that class where possible, so no class is found only in val or test. Same seed, same split;
    every part keeps the input order.

    >>> y = np.eye(2, dtype=np.uint8)[[0, 1] * 10]  # 20 rows, two classes
    >>> [len(p) for p in iterative_split(y, [0.2, 0.1], seed=0)]
    [14, 4, 2]
    """
    n = multi_hot.shape[0]
    fractions = [float(f) for f in fractions]
    parts: list[list[int]] = [[] for _ in range(len(fractions) + 1)]
    if n == 0:
        return parts
    rng = np.random.RandomState(seed % (2**32))
    order = rng.permutation(n)
    ratios = np.array([1.0 - sum(fractions), *fractions])
    assign = np.zeros(n, dtype=np.int64)
    assign[order] = _iterative_stratification(multi_hot[order], ratios, rng)
    for k in np.flatnonzero(multi_hot.any(axis=0)):
        rows = np.flatnonzero(multi_hot[:, k])
        if (assign[rows] == 0).any():
            continue
        # Move the row whose part has the most positives of this class (the first such row in shuffled order).
        per_part = np.bincount(assign[rows], minlength=len(parts))
        donor = int(per_part.argmax())
        candidates = [r for r in order.tolist() if multi_hot[r, k] and assign[r] == donor]
        assign[candidates[0]] = 0
    for i, p in enumerate(assign.tolist()):
        parts[p].append(i)
    return parts


def carve_multilabel(samples: SampleList, fractions: Sequence[float], seed: int) -> list[SampleList]:
    """``samples`` (multi-label) split by :func:`iterative_split` into ``[rest, part_1, ...]`` SampleLists."""
    return [samples.subset(idx) for idx in iterative_split(samples.multi_hot, fractions, seed)]


def kfold_assignment(multi_hot: np.ndarray, k: int, seed: int) -> np.ndarray:
    """Fold number ``(N,)`` of each row in a seeded multi-label stratified ``k``-fold split."""
    rng = np.random.RandomState(seed % (2**32))
    order = rng.permutation(multi_hot.shape[0])
    assign = np.zeros(multi_hot.shape[0], dtype=np.int64)
    assign[order] = _iterative_stratification(multi_hot[order], np.full(k, 1.0 / k), rng)
    return assign
