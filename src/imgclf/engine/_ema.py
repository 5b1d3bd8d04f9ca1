from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from imgclf.engine._callbacks import Callback
from imgclf.engine._checkpoint import prefixed, unprefixed
from imgclf.engine._state import TrainState


class EMA(Callback):
    """Exponential moving average of the weights; validation and the final bundle use the average.

    The decay warms up as ``min(decay, (1 + n) / (10 + n))`` over ``n`` updates, and when ``total_steps`` is
    given it is capped so the average spans at most a tenth of the run: short runs are not dominated by
    early weights.

    >>> ema = EMA(nn.Linear(2, 2), decay=0.999, total_steps=1000)
    >>> ema.decay
    0.99
    """

    name = "ema"

    def __init__(self, model: nn.Module, decay: float = 0.999, total_steps: int | None = None) -> None:
        self.decay = min(decay, 1 - 10 / total_steps) if total_steps else decay
        self.updates = 0
        self.module = copy.deepcopy(model).eval()
        for p in self.module.parameters():
            p.requires_grad_(False)

    def on_fit_start(self, state: TrainState) -> None:
        state.eval_model = self.module

    @torch.no_grad()
    def on_step_end(self, state: TrainState, stats: dict[str, float]) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        live = state.raw_model.state_dict()
        for name, avg in self.module.state_dict().items():
            if avg.dtype.is_floating_point:
                avg.lerp_(live[name].detach(), 1 - d)
            else:
                avg.copy_(live[name])

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        return prefixed("weights", self.module.state_dict()), {"updates": self.updates}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
        self.module.load_state_dict(unprefixed("weights", tensors))
        self.updates = int(meta.get("updates", 0))
