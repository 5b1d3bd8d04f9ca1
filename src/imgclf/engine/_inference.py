"""The batched inference loop used by predict, evaluate and every capability."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op when ``dtype`` is None."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass(frozen=True)
class InferenceOutput:
    """Logits ``(N, C)`` with the dataset indices and labels they belong to, and how many inputs were skipped."""

    logits: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    skipped: int

    def to_dict(self) -> dict:
        return {"n": int(self.logits.shape[0]), "skipped": self.skipped}


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    batches: Iterable,
    device: torch.device | str = "cpu",
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> InferenceOutput:
    """Run ``model`` in eval mode over batches (objects with ``images``, ``labels``, ``indices``, ``skipped``).

    ``forward`` replaces ``model(x)`` (e.g. to return pooled features); its output lands in ``logits``.

    >>> # out = predict_logits(model, loader); out.logits.shape == (len(dataset), num_classes)
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    logits, labels, indices, skipped = [], [], [], 0
    try:
        for batch in batches:
            skipped += batch.skipped
            if batch.images.shape[0] == 0:
                continue
            x = batch.images.to(device)  # (B, C, H, W)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp_dtype):
                out = model(x) if forward is None else forward(x)
            logits.append(out.float().cpu())
            labels.append(batch.labels)
            indices.append(batch.indices)
    finally:
        model.train(was_training)
    if not logits:
        return InferenceOutput(np.zeros((0, 0), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64), skipped)
    return InferenceOutput(
        torch.cat(logits).numpy(), torch.cat(labels).numpy(), torch.cat(indices).numpy(), skipped
    )
