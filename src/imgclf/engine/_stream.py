"""Streaming inference over image files: decode workers feed the model, one batch in memory per worker slot."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from imgclf import data as D
from imgclf.engine._inference import predict_logits


class _Files(Dataset):
    """``files[i] -> (i, tensor (3, H, W), None)``, or ``(i, None, reason)`` when the file cannot be decoded."""

    def __init__(self, paths: Sequence[str], transform: Callable[[object], torch.Tensor]) -> None:
        self.paths, self.transform = paths, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        try:
            image = D.open_image(self.paths[i])
        except D.BadImageError as exc:
            return i, None, exc.reason
        return i, self.transform(image), None


def _collate(items: list[tuple[int, torch.Tensor | None, str | None]]) -> tuple[D.Batch, dict[int, str]]:
    good = [(i, t) for i, t, _ in items if t is not None]
    errors = {i: reason for i, t, reason in items if t is None}
    if not good:
        empty = torch.zeros(0, dtype=torch.long)
        return D.Batch(torch.zeros(0, 3, 0, 0), empty, empty.clone(), len(errors)), errors
    images = torch.stack([t for _, t in good])  # (B, 3, H, W)
    indices = torch.tensor([i for i, _ in good], dtype=torch.long)  # (B,)
    return D.Batch(images, torch.zeros_like(indices), indices, len(errors)), errors


class _Batches:
    """The batch sampler: lists of positions made one at a time (millions of inputs need no list of lists)."""

    def __init__(self, batches: Sequence[Sequence[int]]) -> None:
        self.batches = batches

    def __iter__(self) -> Iterator[list[int]]:
        return (list(b) for b in self.batches)

    def __len__(self) -> int:
        return len(self.batches)


@dataclass(frozen=True)
class StreamChunk:
    """One batch of a stream: logits ``(N, C)`` of the readable files at input positions ``indices`` ``(N,)``
    (in input order), and ``{position: reason}`` for the files of the batch that could not be decoded."""

    indices: np.ndarray
    logits: np.ndarray
    errors: dict[int, str]

    @property
    def size(self) -> int:
        return len(self.indices) + len(self.errors)


def stream_logits(
    model: nn.Module,
    paths: Sequence[str],
    transform: Callable[[object], torch.Tensor],
    *,
    batches: Sequence[Sequence[int]] | None = None,
    batch_size: int = 64,
    workers: int = 0,
    prefetch: int = 2,
    device: torch.device | str = "cpu",
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Iterator[StreamChunk]:
    """Decode ``paths`` in ``workers`` processes and run ``model`` (or ``forward``) on them, one batch at a time.

    ``batches`` lists input positions per batch (default: consecutive runs of ``batch_size``); at most
    ``workers * prefetch`` decoded batches wait ahead of the model, so memory stays bounded however many files
    there are. Unreadable files (the reason as :func:`imgclf.data.open_image` gives it) never stop the stream.

    >>> # for chunk in stream_logits(model, files, build_eval_transform(pre), workers=2): chunk.logits.shape
    """
    if batches is None:
        batches = [range(i, min(i + batch_size, len(paths))) for i in range(0, len(paths), batch_size)]
    loader = DataLoader(_Files(paths, transform), batch_sampler=_Batches(batches), num_workers=workers,
                        collate_fn=_collate, prefetch_factor=prefetch if workers else None,
                        pin_memory=torch.device(device).type == "cuda")  # fmt: skip
    for batch, errors in loader:
        out = predict_logits(model, [batch], device, amp_dtype=amp_dtype, channels_last=channels_last,
                             forward=forward)  # fmt: skip
        logits = out.logits if len(out.indices) else np.zeros((0, 0), np.float32)
        yield StreamChunk(batch.indices.numpy(), logits, errors)
