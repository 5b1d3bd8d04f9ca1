"""Geometry shared by the attacks: norm balls, projections, random starts, gradients and the worst case kept."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from imgclf.errors import ConfigError, DataError

NORMS = ("linf", "l2")
_TINY = 1e-12


def check_attack_inputs(x: torch.Tensor, y: torch.Tensor, eps: float, norm: str) -> str:
    """Validate an attack call and return the canonical norm name."""
    canonical = norm.lower().replace("-", "")
    if canonical not in NORMS:
        raise ConfigError(f"unknown norm {norm!r}; use 'linf' or 'l2'.")
    if x.dim() != 4 or y.dim() != 1 or x.shape[0] != y.shape[0]:
        raise DataError(f"attacks need images (B, C, H, W) and labels (B,), got {tuple(x.shape)} and {tuple(y.shape)}.")
    if eps < 0:
        raise ConfigError(f"eps must be non-negative, got {eps}.")
    if x.numel() and (float(x.min()) < -1e-6 or float(x.max()) > 1 + 1e-6):
        raise DataError(
            "attacks work on pixel images in [0, 1], got values outside; pass un-normalised images and wrap the "
            "model in NormalizedModel(model, mean, std)."
        )
    return canonical


def flat_norm(v: torch.Tensor) -> torch.Tensor:
    """Per-example L2 norm of ``(B, ...)``, shaped ``(B, 1, 1, 1)`` for broadcasting."""
    return v.flatten(1).norm(dim=1).view(-1, *([1] * (v.dim() - 1)))


def normalize_l2(v: torch.Tensor) -> torch.Tensor:
    """``v`` scaled to unit L2 norm per example (zero stays zero).

    No additive epsilon: gradients of confidently classified examples can be far below 1e-12 and still point
    the right way.
    """
    norm = flat_norm(v)
    return torch.where(norm > 0, v / norm.clamp_min(torch.finfo(v.dtype).tiny), torch.zeros_like(v))


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project ``x_adv`` onto the ``norm`` ball of radius ``eps`` around ``x``, then into [0, 1].

    Clamping after the projection keeps the point in the ball: each coordinate of the perturbation only shrinks.
    """
    delta = x_adv - x  # (B, C, H, W)
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * torch.clamp(eps / (flat_norm(delta) + _TINY), max=1.0)
    return (x + delta).clamp(0.0, 1.0)


def random_point(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    """A uniform random point of the ``norm`` ball around ``x`` (clamped to [0, 1])."""
    if norm == "linf":
        delta = (torch.rand(x.shape, generator=generator) * 2 - 1) * eps  # (B, C, H, W)
    else:
        direction = normalize_l2(torch.randn(x.shape, generator=generator))
        dims = x[0].numel()
        radius = eps * torch.rand(x.shape[0], generator=generator) ** (1.0 / dims)  # uniform in the ball
        delta = direction * radius.view(-1, 1, 1, 1)
    return (x + delta.to(device=x.device, dtype=x.dtype)).clamp(0.0, 1.0)


def loss_and_grad(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Per-example cross-entropy ``(B,)``, its gradient w.r.t. ``x_adv`` and whether the model is still right.

    ``torch.autograd.grad`` differentiates w.r.t. the input only, so no ``.grad`` lands on the parameters.
    """
    with torch.enable_grad():
        x_req = x_adv.detach().requires_grad_(True)
        logits = model(x_req)  # (B, K)
        loss = F.cross_entropy(logits, y, reduction="none")  # (B,)
        (grad,) = torch.autograd.grad(loss.sum(), x_req)
    correct = logits.detach().argmax(dim=1) == y  # (B,)
    return loss.detach(), grad.detach(), correct


@torch.no_grad()
def loss_and_correct(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example cross-entropy ``(B,)`` and correctness ``(B,)`` without a gradient (for the final iterate)."""
    logits = model(x_adv)  # (B, K)
    return F.cross_entropy(logits, y, reduction="none"), logits.argmax(dim=1) == y


class WorstCase:
    """Keep, per example, the worst point seen: a misclassified one first, else the one with the highest loss."""

    def __init__(self, x: torch.Tensor) -> None:
        self.x = x.detach().clone()  # (B, C, H, W)
        self.loss = torch.full((x.shape[0],), -float("inf"), device=x.device)  # (B,)
        self.fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)  # (B,)

    def update(self, x_new: torch.Tensor, loss: torch.Tensor, correct: torch.Tensor, idx: torch.Tensor) -> None:
        """Offer candidates ``x_new`` for the examples ``idx`` (indices into the full batch)."""
        fooled_new = ~correct
        better = (fooled_new & ~self.fooled[idx]) | ((fooled_new == self.fooled[idx]) & (loss > self.loss[idx]))
        chosen = idx[better]
        self.x[chosen] = x_new[better].detach()
        self.loss[chosen] = loss[better].to(self.loss.dtype)
        self.fooled[chosen] = fooled_new[better]
