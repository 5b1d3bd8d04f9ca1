"""SampleList (labelled images, from files or from memory) and Splits (the train/val/test result of a source)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from imgclf.data._decode import open_image


class SampleList:
    """A sequence of ``(PIL RGB image, int label)``, backed by file paths or by an in-memory uint8 array.

    ``labels`` is available without decoding anything; ``describe(i)`` names sample ``i`` (its path, or
    ``"digits[12]"`` for in-memory data); ``subset(indices)`` returns a new list sharing the storage.

    >>> s = SampleList.from_arrays(np.zeros((3, 8, 8), np.uint8), [0, 1, 1], name="digits")
    >>> len(s), s.labels, s.describe(2), s[0][0].mode
    (3, [0, 1, 1], 'digits[2]', 'RGB')
    """

    def __init__(self, labels: Sequence[int], *, paths: Sequence[str] | None = None,
                 images: np.ndarray | None = None, keys: Sequence[int] | None = None,
                 name: str = "samples") -> None:  # fmt: skip
        if (paths is None) == (images is None):
            raise ValueError("SampleList needs exactly one of paths= or images=")
        self._labels = [int(x) for x in labels]
        self._paths = None if paths is None else [str(p) for p in paths]
        self._images = images
        self._keys = list(range(len(self._labels))) if keys is None else [int(k) for k in keys]
        self.name = name
        count = len(self._paths) if self._paths is not None else len(self._keys)
        if count != len(self._labels) or len(self._keys) != len(self._labels):
            raise ValueError(f"SampleList: {count} images but {len(self._labels)} labels")

    @classmethod
    def from_paths(cls, paths: Sequence[str], labels: Sequence[int]) -> SampleList:
        """Samples decoded from files with :func:`open_image`."""
        return cls(labels, paths=paths)

    @classmethod
    def from_arrays(cls, images: np.ndarray, labels: Sequence[int], *, name: str) -> SampleList:
        """Samples held in memory: ``images`` is uint8 ``(N, H, W)`` (grayscale) or ``(N, H, W, 3)`` (RGB)."""
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] != 3):
            raise ValueError(f"in-memory images must be uint8 (N, H, W) or (N, H, W, 3), got {images.dtype} "
                             f"{images.shape}")  # fmt: skip
        return cls(labels, images=images, name=name)

    def __len__(self) -> int:
        return len(self._labels)

    def _check(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for {len(self)} samples")
        return i % len(self) if len(self) else i

    def __getitem__(self, i: int) -> tuple[Image.Image, int]:
        i = self._check(i)
        if self._paths is not None:
            return open_image(self._paths[i]), self._labels[i]
        arr = self._images[self._keys[i]]  # (H, W) or (H, W, 3)
        image = Image.fromarray(arr, mode="L" if arr.ndim == 2 else "RGB")
        return image.convert("RGB"), self._labels[i]

    @property
    def labels(self) -> list[int]:
        return list(self._labels)

    @property
    def paths(self) -> list[str] | None:
        return None if self._paths is None else list(self._paths)

    def describe(self, i: int) -> str:
        """The file path of sample ``i``, or ``name[index]`` for in-memory samples."""
        i = self._check(i)
        return self._paths[i] if self._paths is not None else f"{self.name}[{self._keys[i]}]"

    def subset(self, indices: Sequence[int]) -> SampleList:
        """The samples at ``indices`` (in that order), sharing storage with this list."""
        idx = [self._check(int(i)) for i in indices]
        labels = [self._labels[i] for i in idx]
        if self._paths is not None:
            return SampleList(labels, paths=[self._paths[i] for i in idx], name=self.name)
        return SampleList(labels, images=self._images, keys=[self._keys[i] for i in idx], name=self.name)

    def relabel(self, mapping: Sequence[int]) -> SampleList:
        """The same samples with label ``l`` replaced by ``mapping[l]`` (e.g. onto a model's class order)."""
        labels = [int(mapping[lab]) for lab in self._labels]
        if self._paths is not None:
            return SampleList(labels, paths=self._paths, name=self.name)
        return SampleList(labels, images=self._images, keys=self._keys, name=self.name)

    @classmethod
    def concat(cls, lists: Sequence[SampleList]) -> SampleList:
        """One list of all samples in ``lists`` (all file-backed, or in-memory views of the same array)."""
        labels = [lab for part in lists for lab in part._labels]
        if all(part._paths is not None for part in lists):
            return cls(labels, paths=[p for part in lists for p in part._paths], name=lists[0].name)
        if all(part._images is lists[0]._images for part in lists):
            return cls(labels, images=lists[0]._images, keys=[k for part in lists for k in part._keys],
                       name=lists[0].name)  # fmt: skip
        raise ValueError("SampleList.concat needs all file-backed lists or views of the same in-memory array")

    def __repr__(self) -> str:
        kind = "files" if self._paths is not None else f"in-memory {self.name}"
        return f"SampleList({len(self)} {kind})"


@dataclass(frozen=True)
class Splits:
    """What a data source yields: class names, the train/val/test samples, the files skipped while scanning
    (``(path, reason)`` pairs) and ``info``, a JSON-able record of how the splits were made (kind, root, each
    split's method and per-class counts, and a sha256 ``fingerprint`` of the sorted (relative path, label) list).

    >>> # splits = load_source("digits"); splits.classes[:3], len(splits.train), splits.info["fingerprint"][:8]
    """

    classes: tuple[str, ...]
    train: SampleList
    val: SampleList | None = None
    test: SampleList | None = None
    skipped: tuple[tuple[str, str], ...] = ()
    info: dict[str, Any] = field(default_factory=dict)

    def items(self) -> list[tuple[str, SampleList]]:
        """The non-empty splits as ``(name, samples)``, in train, val, test order."""
        return [(k, v) for k, v in (("train", self.train), ("val", self.val), ("test", self.test)) if v is not None]

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "sizes": {name: len(s) for name, s in self.items()},
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
            "info": self.info,
        }
