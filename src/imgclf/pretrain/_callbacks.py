"""Pretraining's callbacks: the teacher's momentum step, and the per-epoch collapse check."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from rich.console import Console
from torch import nn

from imgclf import engine as E
from imgclf.config import DataConfig
from imgclf.utils import optional_import

# std of L2-normalised embeddings times sqrt(dim): 1 when they spread evenly over the sphere, 0 when collapsed
COLLAPSE_RATIO = 0.05


class MethodSteps(E.Callback):
    """Tells the method module the epoch (DINO's teacher temperature) and steps its momentum teacher after every
    optimizer step (BYOL, DINO), with training progress ``step / total steps``."""

    name = "pretrain_method"

    def on_epoch_start(self, state: E.TrainState) -> None:
        state.raw_model.epoch = state.epoch

    def on_step_end(self, state: E.TrainState, stats: dict[str, float]) -> None:
        state.raw_model.after_step(state.step / max(1, state.steps_per_epoch * state.epochs))

    def on_epoch_end(self, state: E.TrainState, metrics: dict[str, Any]) -> None:
        metrics.pop("train_acc", None)  # views have no labels: the loop's accuracy means nothing here


def embedding_std(features: torch.Tensor) -> float:
    """Mean per-dimension std of the L2-normalised ``features`` ``(N, D)`` (lightly's collapse measure): about
    ``1/sqrt(D)`` for well-spread embeddings, 0 when every image maps to the same point."""
    debug = optional_import("lightly.utils.debug", "fewlabels")
    return float(debug.std_of_l2_normalized(features.float()))


def knn_accuracy(bank: torch.Tensor, bank_labels: torch.Tensor, queries: torch.Tensor, query_labels: torch.Tensor,
                 num_classes: int, k: int = 20) -> float:  # fmt: skip
    """Top-1 accuracy of a cosine, temperature-weighted kNN vote (lightly ``knn_predict``) of ``queries`` among
    ``bank`` ``(N, D)``: how well the embedding separates the classes without training a head."""
    knn = optional_import("lightly.utils.benchmarking.knn", "fewlabels")
    bank = torch.nn.functional.normalize(bank.float(), dim=1)
    queries = torch.nn.functional.normalize(queries.float(), dim=1)
    pred = knn.knn_predict(queries, bank.T.contiguous(), bank_labels, num_classes, knn_k=min(k, len(bank)))
    return float((pred[:, 0] == query_labels).float().mean())


def _subset(samples: Any, limit: int, seed: int) -> Any:
    if len(samples) <= limit:
        return samples
    keep = sorted(np.random.default_rng(seed).permutation(len(samples))[:limit].tolist())
    return samples.subset(keep) if hasattr(samples, "subset") else samples


class CollapseCheck(E.Callback):
    """After each epoch: ``embed_std`` (and ``embed_std_ratio`` = std x sqrt(dim)) of the backbone's embeddings of
    a fixed image sample, and ``knn_acc`` on the labelled validation split when there is one; both go into the
    epoch's metrics (``metrics.jsonl``) and a line on the console, with a warning when the embeddings collapse."""

    name = "collapse_check"

    def __init__(self, backbone: nn.Module, pre: DataConfig, train: Any, val: Any | None, *, num_classes: int,
                 limit: int = 1000, k: int = 20, console: Console | None = None) -> None:  # fmt: skip
        self.backbone, self.pre, self.k, self.num_classes = backbone, pre, k, num_classes
        self.console = console or Console()
        self.bank = _subset(train, limit, 0)
        self.val = _subset(val, limit, 1) if val is not None and len(val) and num_classes >= 2 else None

    def _features(self, samples: Any) -> tuple[torch.Tensor, torch.Tensor]:
        out = E.run_inference(self.backbone, samples, self.pre, batch_size=256, workers=0, features=True)
        labels = torch.as_tensor(np.asarray(samples.labels)[out.indices])
        return torch.from_numpy(out.features), labels  # (N, D), (N,)

    def on_epoch_end(self, state: E.TrainState, metrics: dict[str, Any]) -> None:
        bank, bank_labels = self._features(self.bank)
        std = embedding_std(bank)
        metrics["embed_std"] = std
        metrics["embed_std_ratio"] = std * bank.shape[1] ** 0.5
        line = f"  collapse check: embed_std {std:.4f} (x sqrt(dim) = {metrics['embed_std_ratio']:.3f})"
        if self.val is not None:
            queries, query_labels = self._features(self.val)
            metrics["knn_acc"] = knn_accuracy(bank, bank_labels, queries, query_labels, self.num_classes, self.k)
            line += f"  knn_acc {metrics['knn_acc']:.4f}"
        if state.dist.is_main:
            self.console.print(line, highlight=False)
            if metrics["embed_std_ratio"] < COLLAPSE_RATIO:
                self.console.print(
                    f"[bold red]WARNING: the embeddings are collapsing (embed_std x sqrt(dim) = "
                    f"{metrics['embed_std_ratio']:.3f} < {COLLAPSE_RATIO}): every image maps to nearly the same "
                    "point. Lower the learning rate, raise the batch size or try another --method.[/bold red]",
                    highlight=False)  # fmt: skip
