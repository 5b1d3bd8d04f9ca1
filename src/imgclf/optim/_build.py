from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from imgclf.config import OptimConfig
from imgclf.optim._muon import Muon

# Muon's SGD groups, relative to the orthogonalised weights' lr and per image of the batch (the loss is a batch
# mean): biases and norm shifts, the classifier. From the CIFAR-10 speedrun (airbench94_muon: 0.053 and 0.67 per
# summed image against a Muon lr of 0.24); the orthogonalised weights use momentum 0.6, the rest optim.momentum.
MUON_BIAS_LR, MUON_HEAD_LR, MUON_MOMENTUM = 0.053 / 0.24, 0.67 / 0.24, 0.6


def _decay_groups(params: Sequence[nn.Parameter], lr: float, wd: float) -> list[dict]:
    """Split parameters so biases and norm weights (ndim <= 1) get no weight decay."""
    decay = [p for p in params if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in params if p.requires_grad and p.ndim <= 1]
    return [g for g in ({"params": decay, "lr": lr, "weight_decay": wd},
                        {"params": no_decay, "lr": lr, "weight_decay": 0.0}) if g["params"]]  # fmt: skip


def _muon(backbone: Sequence[nn.Parameter], head: Sequence[nn.Parameter], cfg: OptimConfig, backbone_lr_scale: float,
          batch_size: int) -> Muon:  # fmt: skip
    lr, wd = cfg.resolved_lr, cfg.resolved_weight_decay
    trainable = [p for p in (*backbone, *head) if p.requires_grad]
    head_ids = {id(p) for p in head}
    hidden = [p for p in trainable if p.ndim >= 2 and id(p) not in head_ids]
    biases = [p for p in trainable if p.ndim <= 1]
    classifier = [p for p in trainable if p.ndim >= 2 and id(p) in head_ids]
    groups = []
    for params, ratio in ((biases, MUON_BIAS_LR), (classifier, MUON_HEAD_LR)):
        group_lr = ratio * lr * batch_size  # the per-image rate times the images the mean loss averages over
        groups.append({"params": params, "orthogonal": False, "lr": group_lr, "momentum": cfg.momentum,
                       "weight_decay": wd * batch_size / group_lr})  # fmt: skip
    # last, so the loop's logged "lr" (the last group's) is optim.lr times the schedule, as for AdamW / SGD
    groups.append({"params": hidden, "orthogonal": True, "lr": lr * backbone_lr_scale, "momentum": MUON_MOMENTUM})
    return Muon([g for g in groups if g["params"]])


def build_optimizer(
    backbone: Sequence[nn.Parameter], head: Sequence[nn.Parameter], cfg: OptimConfig, *, backbone_lr_scale: float = 1.0,
    batch_size: int = 64,
) -> torch.optim.Optimizer:
    """AdamW, SGD (Nesterov) or Muon over backbone and head parameters.

    The backbone's learning rate is ``lr * backbone_lr_scale`` (pass ``cfg.backbone_lr_scale`` when
    fine-tuning pretrained weights); frozen parameters are left out. Muon orthogonalises the updates of the
    backbone's weight matrices and conv filters (lr ``lr``, momentum 0.6) and trains biases, norm shifts and the
    classifier with Nesterov SGD at rates that scale with ``batch_size`` (the loss is a batch mean; see
    ``MUON_BIAS_LR`` / ``MUON_HEAD_LR``), their weight decay shrinking the weights by ``weight_decay * batch_size``
    per step at the peak rate.

    >>> from torch import nn
    >>> m = nn.Linear(2, 2)
    >>> type(build_optimizer([], list(m.parameters()), OptimConfig())).__name__
    'AdamW'
    """
    if cfg.optimizer == "muon":
        return _muon(backbone, head, cfg, backbone_lr_scale, batch_size)
    lr, wd = cfg.resolved_lr, cfg.resolved_weight_decay
    groups = _decay_groups(backbone, lr * backbone_lr_scale, wd) + _decay_groups(head, lr, wd)
    if not groups:
        raise ValueError("no trainable parameters")
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=lr, momentum=cfg.momentum, nesterov=cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=lr)


def lr_factor(step: int, cfg: OptimConfig, steps_per_epoch: int, epochs: int) -> float:
    """Multiplier of the base learning rate at optimizer step ``step`` (linear warmup, then the schedule).

    >>> lr_factor(0, OptimConfig(warmup_epochs=0), 10, 5)
    1.0
    """
    total = max(1, steps_per_epoch * epochs)
    warmup = min(int(round(cfg.resolved_warmup_epochs * steps_per_epoch)), total - 1)
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if cfg.schedule == "constant":
        return 1.0
    if cfg.schedule == "linear":
        return 1.0 - (step - warmup) / max(1, total - warmup)
    if cfg.schedule == "step":
        return cfg.step_gamma ** (step // max(1, cfg.step_epochs * steps_per_epoch))
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(
    optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int, epochs: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR following :func:`lr_factor`; call ``.step()`` after each optimizer step."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, cfg, steps_per_epoch, epochs))
