from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from imgclf.engine._device import DistInfo
from imgclf.tasks import SingleLabelTask, Task


@dataclass
class TrainState:
    """Everything the loop and its callbacks share. Callbacks read and write it; the loop owns the order.

    ``model`` is what the loop trains (maybe DDP-wrapped); ``raw_model`` the bare module; ``eval_model`` what
    validation and the final bundle use (the EMA copy when EMA is on). ``task`` scores batches and validation
    (single-label unless given).
    """

    model: nn.Module
    raw_model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    loss_fn: nn.Module
    train_loader: Any
    sampler: Any
    val_loader: Any | None
    epochs: int
    batch_size: int
    device: torch.device
    amp_dtype: torch.dtype | None = None
    scaler: torch.amp.GradScaler | None = None
    channels_last: bool = False
    grad_clip: float | None = None
    accumulate: int = 1
    dist: DistInfo = field(default_factory=DistInfo)
    task: Task = field(default_factory=lambda: SingleLabelTask(()))
    eval_model: nn.Module | None = None
    epoch: int = 0
    batch_in_epoch: int = 0
    # running sums of the epoch under way (loss, score, seen, seconds): saved in checkpoints, so an epoch resumed
    # mid-way reports metrics over all of its batches, not only those after the restart
    epoch_totals: dict[str, float] = field(default_factory=dict)
    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    skipped_images: int = 0
    stop: bool = False
    stop_reason: str = ""
    discard: bool = False  # with stop: the run's result is not wanted (a pruned tuning trial): no validation, no bundle
    interrupted: bool = False

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.train_loader) // self.accumulate)

    def model_for_eval(self) -> nn.Module:
        return self.eval_model if self.eval_model is not None else self.raw_model
