"""``resolve_auto``: every ``"auto"`` in a run config replaced, once, by the value the run will use."""

from __future__ import annotations

import math
from dataclasses import replace

from imgclf.config._policy import auto_augment, auto_batch_size, auto_ema, auto_lr, auto_warmup_epochs
from imgclf.config._schema import AUTO, MEMORY_AUGMENTS, RunConfig
from imgclf.errors import ConfigError


def steps_per_epoch(train_size: int, batch_size: int, *, world_size: int = 1, accumulate: int = 1) -> int:
    """Optimizer steps in one epoch: batches per process, divided by gradient accumulation (at least 1).

    >>> steps_per_epoch(2700, 64)
    43
    """
    batches = math.ceil(train_size / max(1, world_size) / batch_size)
    return max(1, batches // accumulate)


def resolve_auto(cfg: RunConfig, *, train_size: int, num_classes: int, world_size: int = 1) -> RunConfig:
    """``cfg`` with ``data.batch_size``, ``data.augment``, ``optim.lr``, ``optim.warmup_epochs``, ``train.ema`` and
    ``train.ema_decay`` resolved where they are ``"auto"``; explicit values are kept as given, so a config written by
    a run (resolved) resolves to itself. Needs ``data.img_size`` resolved first; ``train_size`` is the training
    split's size.

    >>> from imgclf.config import RunConfig, update
    >>> cfg = update(RunConfig(), {"data": {"img_size": 32}, "train": {"epochs": 5}})
    >>> r = resolve_auto(cfg, train_size=2700, num_classes=10)
    >>> r.data.batch_size, r.data.augment, r.optim.lr, r.optim.warmup_epochs, r.train.ema
    (64, 'none', 0.002, 1.0, False)
    """
    data, optim, train = cfg.data, cfg.optim, cfg.train
    if data.batch_size == AUTO:  # first: the learning rate and the step count depend on it
        data = replace(data, batch_size=auto_batch_size(train_size, world_size=world_size))
    pretrained = cfg.model.weights is not None or cfg.model.init is not None
    if data.augment == AUTO:
        if data.img_size is None:
            raise ConfigError("data.augment=auto needs data.img_size resolved first (set --img-size)")
        preset = auto_augment(img_size=data.img_size, train_size=train_size, num_classes=num_classes,
                              epochs=train.epochs, pretrained=pretrained)  # fmt: skip
        if data.cache == "memory" and preset not in MEMORY_AUGMENTS:
            preset = "shift"  # the crops of "small"/"standard" as whole-batch translations of stored tensors
        data = replace(data, augment=preset)
    if optim.lr == AUTO:
        global_batch = data.batch_size * max(1, world_size) * train.accumulate
        optim = replace(optim, lr=auto_lr(optim.optimizer, batch_size=global_batch, pretrained=pretrained))
    if optim.warmup_epochs == AUTO:
        optim = replace(optim, warmup_epochs=auto_warmup_epochs(train.epochs))
    total = steps_per_epoch(train_size, data.batch_size, world_size=world_size, accumulate=train.accumulate)
    use, decay = auto_ema(total * train.epochs)
    if train.ema == AUTO:
        train = replace(train, ema=use)
    if train.ema_decay == AUTO:
        train = replace(train, ema_decay=decay)
    return replace(cfg, data=data, optim=optim, train=train)
