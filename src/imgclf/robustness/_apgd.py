"""APGD-CE (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an ensemble of diverse
parameter-free attacks"): PGD with momentum and a step size halved at checkpoints when progress stalls."""

from __future__ import annotations

import torch
from torch import nn

from imgclf.errors import ConfigError
from imgclf.robustness._ball import WorstCase, check_attack_inputs, loss_and_grad, normalize_l2, project
from imgclf.utils import eval_mode


def apgd(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    eps: float,
    *,
    norm: str = "linf",
    steps: int = 100,
    restarts: int = 1,
    rho: float = 0.75,
    momentum: float = 0.75,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Auto-PGD on the cross-entropy (APGD-CE) in the ``norm`` ball (``"linf"`` or ``"l2"``) of radius ``eps``.

    As in the paper and its reference code: the step size starts at ``2 * eps`` per example; each step moves
    to ``z = P(x_k + eta * dir(grad))`` and then ``x_{k+1} = P(x_k + a (z - x_k) + (1 - a)(x_k - x_{k-1}))``
    with momentum ``a = momentum`` (1 on the first step). Checkpoints come after ``0.22 * steps`` iterations,
    then at shrinking intervals (by ``0.03 * steps``, at least ``0.06 * steps``); at a checkpoint an example's
    step size halves and it restarts from its best point when fewer than ``rho`` of the steps since the last
    checkpoint raised its loss, or when its step size was not reduced last time and its best loss has not
    improved since. Per example the worst point of all iterations and ``restarts`` is returned (misclassified
    first, else highest loss), within the eps ball and [0, 1]; ``eps = 0`` returns a copy of ``x``.

    >>> x_adv = apgd(pixel_model, images, labels, eps=8 / 255, steps=100)  # doctest: +SKIP
    >>> (pixel_model(x_adv).argmax(1) == labels).float().mean()  # doctest: +SKIP
    tensor(0.0100)
    """
    norm = check_attack_inputs(x, y, eps, norm)
    if steps < 1 or restarts < 1:
        raise ConfigError(f"apgd needs steps >= 1 and restarts >= 1, got steps={steps}, restarts={restarts}.")
    if not 0 < rho <= 1 or not 0 < momentum <= 1:
        raise ConfigError(f"apgd needs rho and momentum in (0, 1], got rho={rho}, momentum={momentum}.")
    x = x.detach()
    if eps == 0 or x.shape[0] == 0:
        return x.clone()
    worst = WorstCase(x)
    with eval_mode(model):
        for restart in range(restarts):
            idx = torch.nonzero(~worst.fooled).flatten() if restart else torch.arange(x.shape[0], device=x.device)
            if idx.numel() == 0:
                break
            _single_run(model, x[idx], y[idx], idx, eps, norm, steps, rho, momentum, generator, worst)
    return worst.x


def _boundary_start(x: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    """The reference code's start: a random point on the ball's surface, clamped to [0, 1]."""
    t = torch.randn(x.shape, generator=generator) if norm == "l2" else torch.rand(x.shape, generator=generator) * 2 - 1
    if norm == "linf":
        t = t / t.flatten(1).abs().amax(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    else:
        t = normalize_l2(t)
    return (x + eps * t.to(device=x.device, dtype=x.dtype)).clamp(0.0, 1.0)  # (b, C, H, W)


def _single_run(
    model: nn.Module,
    x0: torch.Tensor,
    y0: torch.Tensor,
    idx: torch.Tensor,
    eps: float,
    norm: str,
    steps: int,
    rho: float,
    momentum: float,
    generator: torch.Generator | None,
    worst: WorstCase,
) -> None:
    b = x0.shape[0]
    first_check, min_interval, shrink = max(int(0.22 * steps), 1), max(int(0.06 * steps), 1), max(int(0.03 * steps), 1)
    x_adv = _boundary_start(x0, eps, norm, generator)
    loss, grad, correct = loss_and_grad(model, x_adv, y0)
    worst.update(x_adv, loss, correct, idx)
    x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), loss.clone()
    step_size = torch.full((b, 1, 1, 1), 2.0 * eps, device=x0.device, dtype=x0.dtype)  # (b, 1, 1, 1)
    x_prev = x_adv.clone()
    history = [loss]  # loss at every iterate, for the oscillation check
    interval, since_check = first_check, 0
    loss_best_at_check = loss_best.clone()
    reduced_at_check = torch.zeros(b, dtype=torch.bool, device=x0.device)
    for i in range(steps):
        a = 1.0 if i == 0 else momentum
        direction = grad.sign() if norm == "linf" else normalize_l2(grad)
        z = project(x_adv + step_size * direction, x0, eps, norm)
        x_next = project(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_prev), x0, eps, norm)
        x_prev, x_adv = x_adv, x_next
        loss, grad, correct = loss_and_grad(model, x_adv, y0)
        worst.update(x_adv, loss, correct, idx)
        improved = loss > loss_best  # (b,)
        x_best[improved], grad_best[improved], loss_best[improved] = x_adv[improved], grad[improved], loss[improved]
        history.append(loss)
        since_check += 1
        if since_check < interval:
            continue
        recent = torch.stack(history[-(interval + 1) :])  # (interval + 1, b)
        increases = (recent[1:] > recent[:-1]).sum(dim=0)  # (b,)
        oscillating = increases <= rho * interval  # condition 1 of the paper
        stalled = ~reduced_at_check & (loss_best_at_check >= loss_best)  # condition 2
        reduce = oscillating | stalled
        step_size[reduce] /= 2.0
        x_adv[reduce], grad[reduce] = x_best[reduce], grad_best[reduce]
        reduced_at_check, loss_best_at_check = reduce, loss_best.clone()
        interval, since_check = max(interval - shrink, min_interval), 0
