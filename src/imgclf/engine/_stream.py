"""Streaming inference over image files: decode workers feed the model, one batch in memory per worker slot."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from imgclf import data as D
from imgclf.engine._inference import predict_logits


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
    (in input order), and ``{position: reason}`` for the files of the batch that could not be decoded;
    ``features`` ``(N, D)`` from the same pass when asked for."""

    indices: np.ndarray
    logits: np.ndarray
    errors: dict[int, str]
    features: np.ndarray | None = None

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
    runner: Callable[[torch.Tensor], object] | None = None,
    features: bool = False,
) -> Iterator[StreamChunk]:
    """Decode ``paths`` in ``workers`` processes and run ``model`` (or ``runner``, an export engine) on them, one
    batch at a time (the same dataset and collate as training: unreadable files are skipped with their reason).

    ``batches`` lists input positions per batch (default: consecutive runs of ``batch_size``); at most
    ``workers * prefetch`` decoded batches wait ahead of the model, so memory stays bounded however many files
    there are. Unreadable files (the reason as :func:`imgclf.data.open_image` gives it) never stop the stream.
    ``features=True`` also yields the pooled features of the same pass (for a feature-space rejection rule).

    >>> # for chunk in stream_logits(model, files, build_eval_transform(pre), workers=2): chunk.logits.shape
    """
    if batches is None:
        batches = [range(i, min(i + batch_size, len(paths))) for i in range(0, len(paths), batch_size)]
    files = D.SampleList.from_paths(list(paths), [0] * len(paths))
    loader = DataLoader(D.IndexedDataset(files, transform), batch_sampler=_Batches(batches), num_workers=workers,
                        collate_fn=D.collate_skip_bad, prefetch_factor=prefetch if workers else None,
                        pin_memory=torch.device(device).type == "cuda")  # fmt: skip
    for batch in loader:
        out = predict_logits(model, [batch], device, amp_dtype=amp_dtype, channels_last=channels_last,
                             runner=runner, features=features)  # fmt: skip
        logits = out.logits if len(out.indices) else np.zeros((0, 0), np.float32)
        yield StreamChunk(batch.indices.numpy(), logits, dict(batch.errors), out.features if len(out.indices) else None)
