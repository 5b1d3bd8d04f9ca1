"""SampleList (labelled images, from files or from memory) and Splits (the train/val/test result of a source)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from imgclf.data._decode import open_image

TASKS = ("single", "multilabel")


def stratum_labels(multi_hot: np.ndarray) -> list[int]:
    """One int per row of a multi-hot ``(N, C)`` array, for samplers and stratification: the index of the row's
    rarest positive class (fewest positives in this array; ties go to the lowest index), or ``C`` for a row with
    no labels (its own stratum, one past the last class).

    >>> stratum_labels(np.array([[1, 1, 0], [1, 0, 0], [0, 0, 0]], np.uint8))
    [1, 0, 3]
    """
    n, c = multi_hot.shape
    if n == 0:
        return []
    freq = multi_hot.sum(axis=0, dtype=np.int64)  # (C,)
    key = np.where(multi_hot > 0, freq[None, :], np.iinfo(np.int64).max)  # (N, C)
    out = key.argmin(axis=1)  # first minimum: the lowest index among equally rare classes
    out[~multi_hot.any(axis=1)] = c
    return out.tolist()


def _check_multi_hot(multi_hot: Any) -> np.ndarray:
    arr = np.asarray(multi_hot)
    if arr.ndim != 2 or (arr.size and not np.isin(arr, (0, 1)).all()):
        raise ValueError(f"multi_hot must be a 0/1 array (N, C), got shape {arr.shape} with values "
                         f"{np.unique(arr)[:5].tolist()}")  # fmt: skip
    out = np.array(arr, dtype=np.uint8)  # own copy: the list never changes under its user
    out.flags.writeable = False
    return out


class SampleList:
    """A sequence of ``(PIL RGB image, target)``, backed by file paths or by an in-memory uint8 array.

    Single-label lists (the default) have an int target per sample. Multi-label lists are built with
    ``multi_hot=`` (a 0/1 ``(N, C)`` array; a row may be all zero) and their target is a float32 ``(C,)`` array
    (``is_multilabel`` is True, ``multi_hot`` gives the array back). ``labels`` is a list of ints available
    without decoding anything: the class of each sample, or for multi-label lists its stratum for samplers and
    stratified splits (:func:`stratum_labels`: the sample's rarest positive class in this list, ``C`` for a
    sample without labels). ``describe(i)`` names sample ``i`` (its path, or ``"digits[12]"`` for in-memory
    data); ``subset(indices)`` returns a new list sharing the storage.

    >>> s = SampleList.from_arrays(np.zeros((3, 8, 8), np.uint8), [0, 1, 1], name="digits")
    >>> len(s), s.labels, s.describe(2), s[0][0].mode
    (3, [0, 1, 1], 'digits[2]', 'RGB')
    >>> m = SampleList.from_paths(["a.png", "b.png"], multi_hot=[[1, 1], [0, 1]])
    >>> m.is_multilabel, m.labels, m.targets(0).tolist()
    (True, [0, 1], [1.0, 1.0])
    """

    def __init__(self, labels: Sequence[int] | None, *, paths: Sequence[str] | None = None,
                 images: np.ndarray | None = None, keys: Sequence[int] | None = None,
                 name: str = "samples", multi_hot: Any = None) -> None:  # fmt: skip
        if (paths is None) == (images is None):
            raise ValueError("SampleList needs exactly one of paths= or images=")
        if (labels is None) == (multi_hot is None):
            raise ValueError("SampleList needs exactly one of labels (single-label) or multi_hot= (multi-label)")
        self._multi_hot = None if multi_hot is None else _check_multi_hot(multi_hot)
        if self._multi_hot is not None:
            labels = stratum_labels(self._multi_hot)
        self._labels = [int(x) for x in labels]
        self._paths = None if paths is None else [str(p) for p in paths]
        self._images = images
        self._keys = list(range(len(self._labels))) if keys is None else [int(k) for k in keys]
        self.name = name
        count = len(self._paths) if self._paths is not None else len(self._keys)
        if count != len(self._labels) or len(self._keys) != len(self._labels):
            raise ValueError(f"SampleList: {count} images but {len(self._labels)} labels")

    @classmethod
    def from_paths(cls, paths: Sequence[str], labels: Sequence[int] | None = None, *,
                   multi_hot: Any = None) -> SampleList:  # fmt: skip
        """Samples decoded from files with :func:`open_image`; ``labels`` or (multi-label) ``multi_hot``."""
        return cls(labels, paths=paths, multi_hot=multi_hot)

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels: Sequence[int] | None = None, *, name: str,
                    multi_hot: Any = None) -> SampleList:  # fmt: skip
        """Samples held in memory: ``images`` is uint8 ``(N, H, W)`` (grayscale) or ``(N, H, W, 3)`` (RGB)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
            raise ValueError(f"in-memory images must be uint8 (N, H, W) or (N, H, W, 3), got {images.dtype} "
                             f"{images.shape}")  # fmt: skip
        return cls(labels, images=images, name=name, multi_hot=multi_hot)

    def __len__(self) -> int:
        return len(self._labels)

    def _check(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        return i % len(self) if len(self) else i

    def __getitem__(self, i: int) -> tuple[Image.Image, int | np.ndarray]:
        i = self._check(i)
        if self._paths is not None:
            return open_image(self._paths[i]), self.targets(i)
        arr = self._images[self._keys[i]]  # (H, W) or (H, W, 3)
        image = Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB")
        return image.convert("RGB"), self.targets(i)

    def targets(self, i: int) -> int | np.ndarray:
        """The target of sample ``i`` without decoding it: an int class, or a float32 ``(C,)`` 0/1 array for a
        multi-label list."""
        i = self._check(i)
        if self._multi_hot is not None:
            return self._multi_hot[i].astype(np.float32)
        return self._labels[i]

    @property
    def labels(self) -> list[int]:
        return list(self._labels)

    @property
    def is_multilabel(self) -> bool:
        return self._multi_hot is not None

    @property
    def multi_hot(self) -> np.ndarray | None:
        """The read-only uint8 ``(N, C)`` targets of a multi-label list; None for a single-label list."""
        return self._multi_hot

    @property
    def paths(self) -> list[str] | None:
        return None if self._paths is None else list(self._paths)

    def describe(self, i: int) -> str:
        """The file path of sample ``i``, or ``name[index]`` for in-memory samples."""
        i = self._check(i)
        return self._paths[i] if self._paths is not None else f"{self.name}[{self._keys[i]}]"

    def _like(self, labels: list[int] | None, multi_hot: np.ndarray | None, idx: list[int] | None) -> SampleList:
        """A list over this one's storage (rows ``idx``, or all) with the given targets."""
        if self._paths is not None:
            paths = self._paths if idx is None else [self._paths[i] for i in idx]
            return SampleList(labels, paths=paths, name=self.name, multi_hot=multi_hot)
        keys = self._keys if idx is None else [self._keys[i] for i in idx]
        return SampleList(labels, images=self._images, keys=keys, name=self.name, multi_hot=multi_hot)

    def subset(self, indices: Sequence[int]) -> SampleList:
        """The samples at ``indices`` (in that order), sharing storage with this list."""
        idx = [self._check(int(i)) for i in indices]
        if self._multi_hot is not None:
            return self._like(None, self._multi_hot[np.asarray(idx, dtype=np.int64)], idx)
        return self._like([self._labels[i] for i in idx], None, idx)

    def relabel(self, mapping: Sequence[int], *, num_classes: int | None = None) -> SampleList:
        """The same samples with label ``l`` replaced by ``mapping[l]`` (e.g. onto a model's class order).

        For a multi-label list, column ``l`` of the targets moves to column ``mapping[l]`` of a new array with
        ``num_classes`` columns (default ``max(mapping) + 1``).
        """
        if self._multi_hot is not None:
            target = np.asarray(mapping, dtype=np.int64)
            if len(target) != self._multi_hot.shape[1]:
                raise ValueError(f"relabel: mapping has {len(target)} entries for {self._multi_hot.shape[1]} classes")
            width = int(target.max()) + 1 if num_classes is None else int(num_classes)
            out = np.zeros((len(self), width), dtype=np.uint8)
            for old, new in enumerate(target.tolist()):
                out[:, new] |= self._multi_hot[:, old]
            return self._like(None, out, None)
        return self._like([int(mapping[lab]) for lab in self._labels], None, None)

    def as_multilabel(self, num_classes: int) -> SampleList:
        """This list with one-hot ``(N, num_classes)`` multi-label targets (itself if already multi-label).

        >>> SampleList.from_paths(["a.png"], [1]).as_multilabel(3).multi_hot.tolist()
        [[0, 1, 0]]
        """
        if self._multi_hot is not None:
            return self
        if self._labels and max(self._labels) >= num_classes:
            raise ValueError(f"as_multilabel: label {max(self._labels)} needs more than {num_classes} classes")
        one_hot = np.zeros((len(self), num_classes), dtype=np.uint8)
        one_hot[np.arange(len(self)), self._labels] = 1
        return self._like(None, one_hot, None)

    @classmethod
    def concat(cls, lists: Sequence[SampleList]) -> SampleList:
        """One list of all samples in ``lists`` (all file-backed, or in-memory views of the same array; all
        single-label, or all multi-label with the same number of classes)."""
        multi = [part._multi_hot for part in lists]
        if any(m is None for m in multi) != all(m is None for m in multi):
            raise ValueError("SampleList.concat cannot mix single-label and multi-label lists")
        kw: dict[str, Any] = {"multi_hot": None}
        labels: list[int] | None = [lab for part in lists for lab in part._labels]
        if multi[0] is not None:
            if len({m.shape[1] for m in multi}) > 1:
                raise ValueError("SampleList.concat needs multi-label lists with the same number of classes")
            kw, labels = {"multi_hot": np.concatenate(multi, axis=0)}, None
        if all(part._paths is not None for part in lists):
            return cls(labels, paths=[p for part in lists for p in part._paths], name=lists[0].name, **kw)
        if all(part._images is lists[0]._images for part in lists):
            return cls(labels, images=lists[0]._images, keys=[k for part in lists for k in part._keys],
                       name=lists[0].name, **kw)  # fmt: skip
        raise ValueError("SampleList.concat needs all file-backed lists or views of the same in-memory array")

    def __repr__(self) -> str:
        kind = "files" if self._paths is not None else f"in-memory {self.name}"
        extra = f", multi-label with {self._multi_hot.shape[1]} classes" if self._multi_hot is not None else ""
        return f"SampleList({len(self)} {kind}{extra})"


@dataclass(frozen=True)
class Splits:
    """What a data source yields: class names, the train/val/test samples, the files skipped while scanning
    (``(path, reason)`` pairs), ``info``, a JSON-able record of how the splits were made (kind, root, each
    split's method and per-class counts, and a sha256 ``fingerprint`` of the sorted (relative path, label) list),
    and ``task``: ``"single"`` (one class per image) or ``"multilabel"`` (every split's samples carry multi-hot
    targets; ``info`` and ``to_dict()`` then also hold ``"task": "multilabel"``).

    >>> # splits = load_source("digits"); splits.classes[:3], len(splits.train), splits.info["fingerprint"][:8]
    """

    classes: tuple[str, ...]
    train: SampleList
    val: SampleList | None = None
    test: SampleList | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    info: dict[str, Any] = field(default_factory=dict)
    task: str = "single"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"Splits.task={self.task!r} must be one of {', '.join(TASKS)}")
        for name, samples in self.items():
            if samples.is_multilabel != (self.task == "multilabel"):
                raise ValueError(f"Splits: the {name} samples are {'' if samples.is_multilabel else 'not '}"
                                 f"multi-label but task={self.task!r}")  # fmt: skip
            if samples.is_multilabel and samples.multi_hot.shape[1] != len(self.classes):
                raise ValueError(f"Splits: the {name} targets have {samples.multi_hot.shape[1]} columns for "
                                 f"{len(self.classes)} classes")  # fmt: skip

    def items(self) -> list[tuple[str, SampleList]]:
        """The non-empty splits as ``(name, samples)``, in train, val, test order."""
        return [(k, v) for k, v in (("train", self.train), ("val", self.val), ("test", self.test)) if v is not None]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"classes": list(self.classes)}
        if self.task != "single":  # single-label records stay exactly as they were before multi-label existed
            out["task"] = self.task
        return {
            **out,
            "sizes": {name: len(s) for name, s in self.items()},
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "info": self.info,
        }
