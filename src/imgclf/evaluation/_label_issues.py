"""Likely label errors from held-out probabilities, through cleanlab's confident learning."""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf.errors import DataError
from imgclf.metrics import check_probs_labels
from imgclf.utils import optional_import


@dataclass(frozen=True, eq=False)
class LabelIssues:
    """Rows whose given label is likely wrong, most suspicious first: ``indices`` into the evaluated data,
    their ``given`` labels, the model's ``suggested`` labels and ``self_confidence`` (the probability the
    model gives the given label). ``paths`` optionally names the image of each issue. Iterating yields the
    indices.

    >>> issues = find_label_issues(oof_probs, labels)  # doctest: +SKIP
    >>> [paths[i] for i in issues][:3]  # doctest: +SKIP
    ['train/cat/17.png', 'train/dog/3.png', 'train/cat/88.png']
    """

    indices: np.ndarray  # (K,) int64
    given: np.ndarray  # (K,)
    suggested: np.ndarray  # (K,)
    self_confidence: np.ndarray  # (K,)
    class_names: tuple[str, ...] = ()
    paths: tuple[str, ...] = ()

    def with_paths(self, paths: Sequence[str]) -> LabelIssues:
        """A copy naming the image of each issue (``paths[k]`` for ``indices[k]``).

        >>> issues.with_paths([files[i] for i in issues.indices]).to_dict()["issues"][0]["path"]  # doctest: +SKIP
        'train/cat/17.png'
        """
        if len(paths) != len(self.indices):
            raise DataError(f"with_paths needs one path per issue ({len(self.indices)}), got {len(paths)}.")
        return dataclasses.replace(self, paths=tuple(str(p) for p in paths))

    def __len__(self) -> int:
        return len(self.indices)

    def _name(self, value: Any) -> str:
        return str(self.class_names[int(value)] if self.class_names else int(value))

    def rows(self) -> list[tuple[str, str, str, float]]:
        """One ``(image, given, suggested, self_confidence)`` row of display text per issue (the image is the path
        when known, else the index); multi-label sets are joined with ``;``."""
        paths = self.paths or tuple(str(int(i)) for i in self.indices)
        rows = zip(paths, self.given, self.suggested, self.self_confidence, strict=True)
        return [(p, self._name(g), self._name(s), float(c)) for p, g, s, c in rows]

    def __iter__(self) -> Any:
        return iter(self.indices.tolist())

    def to_dict(self) -> dict[str, Any]:
        """One record per issue, JSON-ready (class names when known)."""

        def name(k: int) -> Any:
            return self.class_names[k] if self.class_names else k

        records = [
            {"index": int(i), "given": name(int(g)), "suggested": name(int(s)), "self_confidence": float(c)}
            for i, g, s, c in zip(self.indices, self.given, self.suggested, self.self_confidence, strict=True)
        ]
        for record, path in zip(records, self.paths, strict=False):
            record["path"] = path
        return {"issues": records}


#: cleanlab's worker count. Its default forks a multiprocessing pool (fork start method on Linux before Python
#: 3.14) from a process that holds threads (torch's pools, a TensorBoard writer, a server): a child forked while
#: one of them holds a lock waits for it forever, and the caller with it (a training run hung in its report).
NO_FORK = 1


def find_label_issues(probs: Any, labels: Any, class_names: Sequence[str] | None = None) -> LabelIssues:
    """Find likely label errors with cleanlab (``imgclf[eval]``) from out-of-fold or held-out probabilities
    ``(N, C)``: never use probabilities of a model trained on these same rows, it has memorised their labels.

    >>> issues = find_label_issues(heldout_probs, labels, class_names)  # doctest: +SKIP
    >>> issues.indices[:3].tolist()  # doctest: +SKIP
    [17, 3, 88]
    """
    cleanlab_filter = optional_import("cleanlab.filter", "eval")
    p, y = check_probs_labels(probs, labels, None if class_names is None else len(class_names))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "too few examples in class k": fine, the result says what it found
        idx = np.asarray(
            cleanlab_filter.find_label_issues(y, p, return_indices_ranked_by="self_confidence", n_jobs=NO_FORK),
            dtype=np.int64,
        )
    return LabelIssues(
        indices=idx,
        given=y[idx],
        suggested=p[idx].argmax(axis=1),
        self_confidence=p[idx, y[idx]],
        class_names=tuple(class_names or ()),
    )
