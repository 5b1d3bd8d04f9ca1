"""Item-seeded datasets, a collate that drops unreadable images, the DataLoader factory, class statistics."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from imgclf.data._decode import BadImageError, DataWarning
from imgclf.data._samples import SampleList
from imgclf.errors import DataError


class IndexedDataset(Dataset):
    """``dataset[(index, item_seed)] -> (tensor, target, index)``, or ``None`` when the image cannot be decoded.

    ``target`` is the int label, or for multi-label samples a float32 ``(C,)`` 0/1 array.

    The transform runs with torch's CPU generator seeded by ``item_seed`` inside ``fork_rng``, so the
    augmentation of a sample depends only on its item seed: not on the worker count, worker order or the
    global RNG (which is left untouched). A bad image warns once (:class:`DataWarning` with file and reason).
    A plain int index means item seed 0.

    >>> # ds = IndexedDataset(splits.train, build_eval_transform(cfg)); image, label, index = ds[(3, 1234)]
    """

    def __init__(self, samples: SampleList, transform: Callable[[Any], torch.Tensor]) -> None:
        self.samples = samples
        self.transform = transform
        self._warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int | np.ndarray, int] | BadItem:
        index, item_seed = (key, 0) if isinstance(key, (int, np.integer)) else key
        index = int(index)
        try:
            image, label = self.samples[index]
        except BadImageError as exc:
            if exc.path not in self._warned:
                self._warned.add(exc.path)
                warnings.warn(f"skipping {exc.path}: {exc.reason}", DataWarning, stacklevel=2)
            return BadItem(index, exc.reason)
        with torch.random.fork_rng(devices=[]):
            # The CPU generator only: torch.manual_seed would also reseed CUDA, outside fork_rng's protection.
            torch.random.default_generator.manual_seed(int(item_seed))
            tensor = self.transform(image)  # (3, H, W)
        return tensor, label, index


class BadItem(NamedTuple):
    """What :class:`IndexedDataset` gives for a sample it cannot decode: its index and the reason."""

    index: int
    reason: str


@dataclass(frozen=True)
class Batch:
    """One collated batch: ``images (B, 3, H, W)``, ``labels``, dataset ``indices (B,)`` and how many
    unreadable samples were dropped from it (``skipped``; ``errors`` maps their indices to the reason). ``B`` is 0
    when every sample was bad.

    ``labels`` is a LongTensor ``(B,)`` of class indices for single-label data and a float32 ``(B, C)`` 0/1
    tensor for multi-label data."""

    images: torch.Tensor
    labels: torch.Tensor
    indices: torch.Tensor
    skipped: int = 0
    errors: dict[int, str] = field(default_factory=dict)

    def pin_memory(self) -> Batch:  # called by DataLoader(pin_memory=True)
        return replace(self, images=self.images.pin_memory(), labels=self.labels.pin_memory(),
                       indices=self.indices.pin_memory())  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return {"size": int(self.images.shape[0]), "shape": list(self.images.shape), "skipped": self.skipped}


def collate_skip_bad(batch: Sequence[tuple[torch.Tensor, int | np.ndarray, int] | BadItem | None], *,
                     num_labels: int | None = None) -> Batch:  # fmt: skip
    """Stack the readable items of ``batch``; :class:`BadItem` (or ``None``) items, the unreadable images, are
    dropped, counted and their reasons kept in ``Batch.errors``.

    Int targets become ``labels`` LongTensor ``(B,)``; array targets (multi-label) become float32 ``(B, C)``.
    ``num_labels`` (``C``) only shapes the labels of a batch whose every image was unreadable: ``(0, C)``
    float32 instead of ``(0,)`` long (:func:`make_loader` passes it for multi-label data).

    >>> collate_skip_bad([(torch.zeros(3, 4, 4), 1, 7), None]).skipped
    1
    >>> collate_skip_bad([(torch.zeros(3, 4, 4), np.array([1, 0, 1], np.float32), 7)]).labels
    tensor([[1., 0., 1.]])
    """
    good = [item for item in batch if item is not None and not isinstance(item, BadItem)]
    errors = {item.index: item.reason for item in batch if isinstance(item, BadItem)}
    skipped = len(batch) - len(good)
    if not good:
        empty = torch.zeros(0, dtype=torch.long)
        labels = empty.clone() if num_labels is None else torch.zeros(0, num_labels, dtype=torch.float32)
        return Batch(torch.zeros(0, 3, 0, 0), labels, empty, skipped, errors)
    images = torch.stack([t for t, _, _ in good])  # (B, 3, H, W)
    if isinstance(good[0][1], np.ndarray):
        labels = torch.from_numpy(np.stack([y for _, y, _ in good]).astype(np.float32))  # (B, C)
    else:
        labels = torch.tensor([y for _, y, _ in good], dtype=torch.long)  # (B,)
    indices = torch.tensor([i for _, _, i in good], dtype=torch.long)  # (B,)
    return Batch(images, labels, indices, skipped, errors)


def default_workers() -> int:
    """Loader worker processes when none are configured: one core stays with the main process, at most 8.

    Even on 2 cores one worker pays off: decoding and augmenting overlap the training step (measured twice as
    fast as decoding in the main process for a small CNN on 32 px images).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return max(1, min(8, cpus - 1))


def make_loader(dataset: IndexedDataset, sampler: Sampler, batch_size: int, *, workers: int | None = None,
                device_type: str = "cpu", drop_last: bool = False) -> DataLoader:  # fmt: skip
    """A DataLoader over ``dataset`` in ``sampler``'s order, collated with :func:`collate_skip_bad` (labels
    ``(B,)`` long, or ``(B, C)`` float32 for multi-label samples).

    ``workers`` defaults to :func:`default_workers`; workers persist across epochs; memory is pinned only for
    ``device_type == "cuda"``. The loader draws its worker base seed from its own generator, so iterating it
    never changes torch's global RNG.

    >>> # loader = make_loader(IndexedDataset(splits.train, tf), ResumableSampler(splits.train.labels, seed=0), 32)
    """
    workers = default_workers() if workers is None else workers
    if workers < 0 or batch_size < 1:
        raise ValueError(f"make_loader: workers={workers} must be >= 0 and batch_size={batch_size} >= 1")
    multi_hot = getattr(getattr(dataset, "samples", None), "multi_hot", None)
    collate = collate_skip_bad if multi_hot is None else partial(collate_skip_bad, num_labels=multi_hot.shape[1])
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate, pin_memory=device_type == "cuda", drop_last=drop_last,
                      persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))  # fmt: skip


def class_counts(labels: Sequence[int], num_classes: int) -> list[int]:
    """Images per class, ``num_classes`` long.

    >>> class_counts([0, 2, 2], 4)
    [1, 0, 2, 0]
    """
    arr = np.asarray(labels, dtype=np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise DataError(f"labels must be in [0, {num_classes}), found {int(arr.min())}..{int(arr.max())}")
    return np.bincount(arr, minlength=num_classes).tolist()


def imbalance_ratio(labels: Sequence[int]) -> float:
    """Largest over smallest class count among the classes present (1.0 for no labels).

    >>> imbalance_ratio([0, 0, 0, 1])
    3.0
    """
    counts = np.bincount(np.asarray(labels, dtype=np.int64)) if len(labels) else np.zeros(0, np.int64)
    present = counts[counts > 0]
    return float(present.max() / present.min()) if present.size else 1.0
