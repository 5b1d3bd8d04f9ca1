"""Shared plumbing for the sweeps: batches from a loader or tensors, the model's device, eval mode."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

from imgclf.errors import DataError

#: A loader yielding ``(pixel images (B, C, H, W), labels (B,))`` batches, or one ``(images, labels)`` pair.
Batches = Iterable[Any] | tuple[torch.Tensor, torch.Tensor]


def iter_batches(
    data: Batches, *, batch_size: int = 128, max_samples: int | None = None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield ``(images, labels)`` batches from a loader or an ``(images, labels)`` tensor pair, stopping after
    ``max_samples`` examples when given."""
    if max_samples is not None and max_samples < 1:
        raise DataError(f"max_samples must be at least 1, got {max_samples}.")
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, torch.Tensor) for t in data):
        all_images, all_labels = data
        if all_images.dim() != 4 or all_labels.dim() != 1 or all_images.shape[0] != all_labels.shape[0]:
            raise DataError(
                f"expected images (N, C, H, W) and labels (N,), got {tuple(all_images.shape)} and "
                f"{tuple(all_labels.shape)}."
            )
        if batch_size < 1:
            raise DataError(f"batch_size must be at least 1, got {batch_size}.")
        batches: Iterable[Any] = [
            (all_images[i : i + batch_size], all_labels[i : i + batch_size])
            for i in range(0, all_images.shape[0], batch_size)
        ]
    else:
        batches = data
    seen = 0
    for batch in batches:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise DataError("each batch must be an (images, labels) pair of tensors; check the loader's collate_fn.")
        images, labels = batch[0], torch.as_tensor(batch[1])
        if max_samples is not None:
            images, labels = images[: max_samples - seen], labels[: max_samples - seen]
        if images.shape[0] == 0:
            break
        seen += images.shape[0]
        yield images, labels
        if max_samples is not None and seen >= max_samples:
            break
