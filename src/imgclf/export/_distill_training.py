"""Knowledge distillation inside the ordinary training loop: a teacher's soft targets for every batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from imgclf import data as D
from imgclf import engine as E
from imgclf.config import DataConfig
from imgclf.export._distill import distillation_loss


class DistillationObjective(nn.Module):
    """Soft-target KL at ``temperature`` (x T^2) weighted ``alpha``, plus ``1 - alpha`` hard-label CE.

    The teacher's logits for the current batch are set by :class:`TeacherSignal`; without them (e.g. in
    validation) the wrapped ``base`` loss is used.
    """

    def __init__(self, base: nn.Module, temperature: float, alpha: float) -> None:
        super().__init__()
        self.base, self.temperature, self.alpha = base, temperature, alpha
        self.teacher_logits: torch.Tensor | None = None

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        if self.teacher_logits is None:
            return self.base(logits, targets)
        labels = targets if targets.ndim == 1 else targets.argmax(1)
        return distillation_loss(logits.float(), self.teacher_logits, labels, temperature=self.temperature,
                                   alpha=self.alpha)  # fmt: skip


class TeacherSignal(E.Callback):
    """Runs the teacher on each (already augmented / mixed) batch, in the teacher's own preprocessing."""

    name = "teacher"

    def __init__(self, teacher: nn.Module, objective: DistillationObjective, student: DataConfig,
                 teacher_pre: DataConfig) -> None:  # fmt: skip
        self.teacher, self.objective = teacher.eval(), objective
        self.student, self.teacher_pre = student, teacher_pre

    @torch.no_grad()
    def on_batch_start(
        self, state: E.TrainState, images: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = images
        s, t = self.student, self.teacher_pre
        if (s.mean, s.std, s.input_size) != (t.mean, t.std, t.input_size):
            x = D.denormalize(x, s.mean, s.std, clamp=False)  # back to pixels, (B, 3, H, W)
            if s.input_size != t.input_size:
                x = F.interpolate(x, size=t.input_size, mode="bilinear", align_corners=False, antialias=True)
            x = D.normalize(x, t.mean, t.std)
        self.objective.teacher_logits = self.teacher(x.float()).float()
        return images, targets
