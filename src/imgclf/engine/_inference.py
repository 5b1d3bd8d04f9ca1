"""THE inference pass: logits (and, on request, pooled features) of a sample list in one go.

predict, evaluate, calibrate, robustness, export checks, the monitor reference and serve all run through
:func:`predict_logits` / :func:`run_inference`; nothing else loops over images for a model's outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from imgclf import data as D
from imgclf.config import DataConfig
from imgclf.errors import ModelError

# (B, 3, H, W) -> logits (B, C), e.g. an export engine's predict_logits; or -> (logits, features (B, D) or None),
# e.g. its predict_outputs (an ONNX file with a features output gives both from one pass)
Runner = Callable[[torch.Tensor], Any]


def autocast(device: torch.device, dtype: torch.dtype | None) -> AbstractContextManager:
    """``torch.autocast`` for ``dtype`` on ``device``, or a no-op when ``dtype`` is None."""
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


@dataclass(frozen=True)
class InferenceOutput:
    """Logits ``(N, C)`` (and pooled ``features`` ``(N, D)`` when asked for) with the dataset indices and labels
    they belong to (``(N,)`` class indices, or ``(N, C)`` multi-hot targets), and how many inputs were skipped."""

    logits: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    skipped: int
    features: np.ndarray | None = None

    def to_dict(self) -> dict:
        return {"n": int(self.logits.shape[0]), "skipped": self.skipped}


def logits_and_features(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass giving logits ``(B, C)`` and the pooled pre-logit features ``(B, D)`` it computed."""
    feats = model.forward_features(x)
    return model.forward_head(feats), model.forward_head(feats, pre_logits=True)


class HedgedRunner:
    """A :data:`Runner` for a model with ``hedged_outputs`` (an ensemble, or TTA / MC dropout around a model): each
    batch's logits and pooled features come from that one call, and its disagreement ``(B,)`` is kept in
    :attr:`disagreement`, so an image's probabilities and uncertainty share the same views and dropout draws.
    predict, :func:`imgclf.api.uncertainty` and the server all read both through it.

    >>> # r = HedgedRunner(model); out = predict_logits(model, loader, runner=r); r.values()  # (N,) nats
    """

    def __init__(self, model: nn.Module) -> None:
        if not callable(getattr(model, "hedged_outputs", None)):
            raise ModelError(f"{type(model).__name__} has no hedged_outputs: only an ensemble or a model wrapped for "
                             "--tta / --mc-dropout reports its uncertainty")  # fmt: skip
        self.model = model
        self.disagreement: list[torch.Tensor] = []  # one (B,) tensor per batch, in batch order

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.inference_mode():
            logits, mi, feats = self.model.hedged_outputs(x)  # (B, C), (B,), (B, D)
        self.disagreement.append(mi.float().cpu())
        return logits, feats

    def values(self) -> np.ndarray:
        """Disagreement ``(N,)`` (mutual information, nats) of every image run so far, in run order."""
        return torch.cat(self.disagreement).numpy() if self.disagreement else np.zeros(0, np.float32)


@torch.inference_mode()
def predict_logits(
    model: nn.Module,
    batches: Iterable,
    device: torch.device | str = "cpu",
    *,
    amp_dtype: torch.dtype | None = None,
    channels_last: bool = False,
    runner: Runner | None = None,
    features: bool = False,
) -> InferenceOutput:
    """Run ``model`` in eval mode over batches (objects with ``images``, ``labels``, ``indices``, ``skipped``).

    ``runner`` replaces the model for the logits (an export engine); ``features=True`` also returns the pooled
    features from the same forward pass: the runner's own when it returns ``(logits, features)``, else the
    eager model's.

    >>> # out = predict_logits(model, loader, features=True); out.logits.shape, out.features.shape
    """
    device = torch.device(device)
    was_training = model.training
    model.eval()
    logits, feats, labels, indices, skipped = [], [], [], [], 0
    try:
        for batch in batches:
            skipped += batch.skipped
            if batch.images.shape[0] == 0:
                continue
            x = batch.images.to(device)  # (B, C, H, W)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp_dtype):
                if runner is not None:
                    got = runner(x)
                    out, f = (got if isinstance(got, tuple) else (got, None))
                    out = torch.as_tensor(np.asarray(out))
                    if f is not None:
                        f = torch.as_tensor(np.asarray(f)) if features else None
                    elif features:
                        f = logits_and_features(model, x)[1]
                elif features:
                    out, f = logits_and_features(model, x)
                else:
                    out, f = model(x), None
            logits.append(out.float().cpu())
            if f is not None:
                feats.append(f.float().cpu())
            labels.append(batch.labels)
            indices.append(batch.indices)
    finally:
        model.train(was_training)
    if not logits:
        empty = np.zeros(0, np.int64)
        return InferenceOutput(np.zeros((0, 0), np.float32), empty, empty.copy(), skipped,
                               np.zeros((0, 0), np.float32) if features else None)  # fmt: skip
    return InferenceOutput(torch.cat(logits).numpy(), torch.cat(labels).numpy(), torch.cat(indices).numpy(), skipped,
                           torch.cat(feats).numpy() if feats else None)  # fmt: skip


def run_inference(model: nn.Module, samples: Any, pre: DataConfig, *, batch_size: int = 64,
                  workers: int | None = None, channels_last: bool = False, runner: Runner | None = None,
                  features: bool = False) -> InferenceOutput:  # fmt: skip
    """Logits (+ features) of every sample with the eval preprocessing, in sample order; unreadable ones skipped.

    ``samples`` is a :class:`~imgclf.data.SampleList` or :class:`~imgclf.data.InputImages`.

    >>> # out = run_inference(bundle.model, splits.test, bundle.meta.preprocessing, features=True)
    """
    device = next(model.parameters()).device
    if workers is None and len(samples) <= batch_size:
        workers = 0  # one batch: worker start-up would cost more than it saves
    loader = D.make_loader(D.IndexedDataset(samples, D.build_eval_transform(pre)),
                           D.ResumableSampler(samples.labels, seed=0, shuffle=False), batch_size,
                           workers=workers, device_type=device.type)  # fmt: skip
    return predict_logits(model, loader, device, channels_last=channels_last, runner=runner, features=features)
