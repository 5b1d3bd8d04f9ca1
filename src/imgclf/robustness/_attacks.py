"""FGSM and PGD (L-inf and L2, random start, restarts), written from their definitions.

Both take a pixel-space model (see :class:`NormalizedModel`), images ``(B, C, H, W)`` in [0, 1] and labels
``(B,)``, run the model in eval mode, differentiate w.r.t. the input only (no parameter ``.grad`` is touched)
and return adversarial pixel images inside the eps ball and [0, 1].
"""

from __future__ import annotations

import torch
from torch import nn

from imgclf.errors import ConfigError
from imgclf.robustness._ball import (
    WorstCase,
    check_attack_inputs,
    loss_and_correct,
    loss_and_grad,
    normalize_l2,
    project,
    random_point,
)
from imgclf.utils import eval_mode


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast Gradient Sign Method (Goodfellow et al. 2015): one L-inf step ``x + eps * sign(grad CE)``.

    Returns ``(B, C, H, W)`` pixel images with ``|x_adv - x| <= eps`` and values in [0, 1]; ``eps = 0`` returns
    a copy of ``x``.

    >>> x_adv = fgsm(NormalizedModel(model, mean, std), images, labels, eps=8 / 255)  # doctest: +SKIP
    >>> float((x_adv - images).abs().max()) <= 8 / 255 + 1e-6  # doctest: +SKIP
    True
    """
    check_attack_inputs(x, y, eps, "linf")
    x = x.detach()
    if eps == 0 or x.shape[0] == 0:
        return x.clone()
    with eval_mode(model):
        _, grad, _ = loss_and_grad(model, x, y)
    return project(x + eps * grad.sign(), x, eps, "linf")  # (B, C, H, W)


def default_step_size(eps: float, steps: int) -> float:
    """Madry et al.'s rule of thumb: ``2.5 * eps / steps``, so the walk can cross the ball and back."""
    return 2.5 * eps / steps


def pgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    norm: str = "linf",
    steps: int = 10,
    step_size: float | None = None,
    random_start: bool = True,
    restarts: int = 1,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected Gradient Descent (Madry et al. 2018) on the cross-entropy, in the ``norm`` ball (``"linf"`` or
    ``"l2"``) of radius ``eps``.

    Each of ``restarts`` runs starts from a uniform random point of the ball (or from ``x`` when
    ``random_start`` is False) and takes ``steps`` steps of ``step_size`` (default ``2.5 * eps / steps``): the
    gradient sign for L-inf, the L2-normalised gradient for L2, each followed by projection onto the ball and
    [0, 1]. Per example the worst point over all steps and restarts is returned: a misclassified one if any,
    else the one with the highest loss. Later restarts only attack examples not yet fooled. ``generator`` (a
    CPU ``torch.Generator``) makes the random starts repeat.

    >>> x_adv = pgd(pixel_model, images, labels, eps=8 / 255, steps=10, restarts=2)  # doctest: +SKIP
    >>> (pixel_model(x_adv).argmax(1) == labels).float().mean()  # robust accuracy  # doctest: +SKIP
    tensor(0.0300)
    """
    norm = check_attack_inputs(x, y, eps, norm)
    if steps < 1 or restarts < 1:
        raise ConfigError(f"pgd needs steps >= 1 and restarts >= 1, got steps={steps}, restarts={restarts}.")
    x = x.detach()
    if eps == 0 or x.shape[0] == 0:
        return x.clone()
    alpha = default_step_size(eps, steps) if step_size is None else float(step_size)
    if alpha <= 0:
        raise ConfigError(f"pgd step_size must be positive, got {step_size}.")
    worst = WorstCase(x)
    with eval_mode(model):
        for restart in range(restarts):
            idx = torch.nonzero(~worst.fooled).flatten() if restart else torch.arange(x.shape[0], device=x.device)
            if idx.numel() == 0:
                break
            x0, y0 = x[idx], y[idx]
            x_adv = _start(x0, eps, norm, random_start, generator)
            for _ in range(steps):
                loss, grad, correct = loss_and_grad(model, x_adv, y0)
                worst.update(x_adv, loss, correct, idx)
                step = grad.sign() if norm == "linf" else normalize_l2(grad)
                x_adv = project(x_adv + alpha * step, x0, eps, norm)  # (b, C, H, W)
            loss, correct = loss_and_correct(model, x_adv, y0)
            worst.update(x_adv, loss, correct, idx)
    return worst.x


def _start(x: torch.Tensor, eps: float, norm: str, rand: bool, generator: torch.Generator | None) -> torch.Tensor:
    return random_point(x, eps, norm, generator) if rand else x.clone()
