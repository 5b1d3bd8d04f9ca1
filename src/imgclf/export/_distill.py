"""Knowledge distillation loss (Hinton et al. 2015): soft teacher targets at temperature T plus hard labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from imgclf.errors import ConfigError


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor, *,
                      temperature: float = 4.0, alpha: float = 0.7) -> torch.Tensor:  # fmt: skip
    """``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels)``, averaged over the batch.

    ``student_logits`` and ``teacher_logits`` are ``(B, C)``, ``labels`` ``(B,)`` class indices. The KL term is
    multiplied by T^2 so its gradients keep their scale as T changes; the teacher gets no gradient.

    >>> s, t = torch.randn(4, 3, requires_grad=True), torch.randn(4, 3)
    >>> distillation_loss(s, t, torch.tensor([0, 1, 2, 0])).backward()
    """
    if temperature <= 0:
        raise ConfigError(f"distillation temperature must be > 0, got {temperature}.")
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"distillation alpha (weight of the soft-target term) must be in [0, 1], got {alpha}.")
    if student_logits.shape != teacher_logits.shape:
        raise ConfigError(
            f"student and teacher logits differ in shape: {tuple(student_logits.shape)} vs "
            f"{tuple(teacher_logits.shape)}; both models must predict the same classes."
        )
    t = float(temperature)
    log_p_student = F.log_softmax(student_logits.float() / t, dim=1)  # (B, C)
    log_p_teacher = F.log_softmax(teacher_logits.detach().float() / t, dim=1)  # (B, C)
    soft = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * (t * t)
    hard = F.cross_entropy(student_logits.float(), labels)
    return alpha * soft + (1.0 - alpha) * hard
