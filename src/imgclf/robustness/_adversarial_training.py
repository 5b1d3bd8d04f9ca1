"""PGD adversarial training as a training-loop callback (Madry et al. 2018), with robust accuracy per epoch."""

from __future__ import annotations

from typing import Any

import torch

from imgclf import data as D
from imgclf import engine as E
from imgclf.config import DataConfig
from imgclf.robustness._attacks import pgd
from imgclf.robustness._normalize import NormalizedModel


class AdversarialTraining(E.Callback):
    """Replaces each training batch by its PGD (L-inf, random start) adversarial version within ``eps``.

    At each epoch end, adds ``val_robust_acc`` (PGD accuracy of the eval model on ``val_images``) to the metrics.

    >>> # AdversarialTraining(preprocessing, eps=8/255, steps=5, val=(x_val, y_val))
    """

    name = "adversarial"

    def __init__(self, pre: DataConfig, *, eps: float, steps: int,
                 val: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:  # fmt: skip
        self.mean, self.std = pre.mean, pre.std
        self.eps, self.steps, self.val = eps, steps, val

    def _pixel(self, images: torch.Tensor) -> torch.Tensor:
        return D.denormalize(images, self.mean, self.std)  # (B, 3, H, W) in [0, 1]

    def on_batch_start(
        self, state: E.TrainState, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = self._pixel(images)
        labels = targets if targets.ndim == 1 else targets.argmax(1)
        model = NormalizedModel(state.raw_model, self.mean, self.std)
        adv = pgd(model, pixels, labels, self.eps, steps=self.steps, random_start=True)
        state.raw_model.train()  # the attack runs in eval mode
        return D.normalize(adv, self.mean, self.std), targets

    def on_epoch_end(self, state: E.TrainState, metrics: dict[str, Any]) -> None:
        if self.val is None:
            return
        x, y = (t.to(state.device) for t in self.val)
        pixels = self._pixel(x)
        model = NormalizedModel(state.model_for_eval(), self.mean, self.std)
        adv = pgd(model, pixels, y, self.eps, steps=max(self.steps, 10), random_start=True)
        with torch.no_grad():
            metrics["val_robust_acc"] = float((model(adv).argmax(1) == y).float().mean())
