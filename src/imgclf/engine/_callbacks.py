"""The fixed set of hooks through which behaviour enters the training loop."""

from __future__ import annotations

from typing import Any

import torch

from imgclf.engine._state import TrainState


class Callback:
    """Base class: override the hooks you need. All receive the shared :class:`TrainState`.

    Hooks, in the order the loop calls them: ``on_fit_start``; per epoch ``on_epoch_start``; per batch
    ``on_batch_start`` (may replace the inputs/targets, e.g. MixUp) and ``on_step_end`` (after an
    optimizer step, with the batch's loss, accuracy and size); ``on_epoch_end`` (with the epoch's metrics);
    ``on_interrupt`` (SIGTERM / Ctrl-C, mid-epoch); ``on_fit_end``. ``state_dict`` / ``load_state_dict``
    carry a callback's state through checkpoints.
    """

    name: str = "callback"

    def on_fit_start(self, state: TrainState) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def on_batch_start(
        self, state: TrainState, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return images, targets

    def on_step_end(self, state: TrainState, stats: dict[str, float]) -> None: ...

    def on_epoch_end(self, state: TrainState, metrics: dict[str, Any]) -> None: ...

    def on_interrupt(self, state: TrainState) -> None: ...

    def on_fit_end(self, state: TrainState) -> None: ...

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Tensors and JSON-able data to checkpoint (empty by default)."""
        return {}, {}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None: ...
