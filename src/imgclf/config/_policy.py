"""The policies behind ``"auto"`` defaults: pure functions of what a run knows before it starts.

Each takes plain numbers (image size, training images, epochs, optimizer steps ...) and returns a concrete value;
:func:`imgclf.config.resolve_auto` applies them once, so a run's ``config.yaml`` records what was used. The
thresholds come from side-by-side runs against a hand-written loop (benchmarks/vs_plain.py, benchmarks/README.md).
"""

from __future__ import annotations

import math

# EMA: below this many optimizer steps an average of the weights gains nothing measurable (it lost 0-2 points in
# 5-epoch runs of ~200 steps); above it the average spans a tenth of the run, at most EMA_MAX_DECAY.
EMA_MIN_STEPS = 1000
EMA_MAX_DECAY = 0.9998

# Batch size: a small dataset's epoch holds at least this many full batches (smaller batches, down to MIN_BATCH);
# 245 ants/bees photos at batch 64 were 4 optimizer steps an epoch, and batch 16 gained ~10 points in 5 epochs.
MIN_BATCHES_PER_EPOCH = 16
MAX_BATCH, MIN_BATCH = 64, 16

# Augmentation: how many passes over the data a run makes decides how much distortion it can learn through.
SHORT_RUN_EPOCHS = 10  # fewer: "none"
LONG_RUN_EPOCHS = 60  # at least: "strong" when a class has few images
FEW_PER_CLASS = 1000
SMALL_IMAGE = 48  # px: random-resized crops with a quarter of the area leave too few pixels of the object


def auto_batch_size(train_size: int, *, world_size: int = 1) -> int:
    """Images per batch and process: :data:`MAX_BATCH`, halved (down to :data:`MIN_BATCH`) while a process's share
    of ``train_size`` images is less than :data:`MIN_BATCHES_PER_EPOCH` full batches (1,000 images at 64 would be
    15.6, so 32).

    >>> auto_batch_size(50000), auto_batch_size(1000), auto_batch_size(220)
    (64, 32, 16)
    """
    per_process = train_size / max(1, world_size)
    batch = MAX_BATCH
    while batch > MIN_BATCH and per_process / batch < MIN_BATCHES_PER_EPOCH:
        batch //= 2
    return batch


def auto_lr(optimizer: str, *, batch_size: int, pretrained: bool) -> float:
    """Peak learning rate for ``optimizer`` at a global ``batch_size``.

    AdamW: 2e-3 at batch 64 from scratch (1e-3 when fine-tuning pretrained weights), scaled with the square root of
    the batch; SGD: 0.05 at batch 64, scaled linearly. Both clipped to a quarter / four times the batch-64 value;
    Muon: 0.24 at any batch (its updates have a fixed size).
    With a cosine schedule and warm-up (:func:`auto_warmup_epochs`) the same peak works from 5 to 200 epochs.

    >>> auto_lr("adamw", batch_size=64, pretrained=False)
    0.002
    >>> auto_lr("sgd", batch_size=128, pretrained=False)
    0.1
    """
    ratio = batch_size / 64
    if optimizer == "muon":  # orthogonalised updates have a fixed size: the speedrun's 0.24 at any batch
        return 0.24
    if optimizer == "sgd":
        return 0.05 * min(4.0, max(0.25, ratio))
    base = 1e-3 if pretrained else 2e-3
    return base * min(4.0, max(0.25, math.sqrt(ratio)))


def auto_warmup_epochs(epochs: int) -> float:
    """Linear warm-up: a fifth of the run, at most 5 epochs (1 of 5, 2 of 10, 5 from 25 on).

    >>> auto_warmup_epochs(5), auto_warmup_epochs(200)
    (1.0, 5.0)
    """
    return float(min(5.0, round(0.2 * epochs, 2)))


def auto_ema(total_steps: int) -> tuple[bool, float]:
    """``(use EMA, decay)`` for a run of ``total_steps`` optimizer steps.

    Short runs (< :data:`EMA_MIN_STEPS`) train without EMA: the weights still move fast at the end of the run, and
    any average lags behind them. Longer runs average over a tenth of the run (``decay = 1 - 10 / steps``), at most
    :data:`EMA_MAX_DECAY`; the decay itself warms up over the first updates (see ``engine.EMA``).

    >>> auto_ema(200)
    (False, 0.95)
    >>> auto_ema(20000)
    (True, 0.9995)
    """
    decay = min(EMA_MAX_DECAY, 1 - 10 / max(total_steps, 20))
    return total_steps >= EMA_MIN_STEPS, round(decay, 6)


def auto_augment(*, img_size: int, train_size: int, num_classes: int, epochs: int, pretrained: bool) -> str:
    """The augmentation preset for a run (see ``data.build_train_transform`` for what each does).

    Short runs (< :data:`SHORT_RUN_EPOCHS` epochs) are under-fitted: augmentation only slows them down, so they get
    ``none`` (5 epochs on 3,000 MNIST digits: 97.5% with none, 95.9% with flips, 92.7% with light crops, 90.1% with
    the old ``standard``; ants/bees at 128 px: 62.7% with none, 58.8% with light). Long runs
    (>= :data:`LONG_RUN_EPOCHS`) on few images per class (< :data:`FEW_PER_CLASS`) need more: ``strong``. Otherwise
    ``standard``, or ``small`` for small images (<= :data:`SMALL_IMAGE` px). Pretrained weights learn fast, so
    their epochs count twice.

    >>> auto_augment(img_size=32, train_size=2700, num_classes=10, epochs=5, pretrained=False)
    'none'
    >>> auto_augment(img_size=224, train_size=220, num_classes=2, epochs=100, pretrained=False)
    'strong'
    """
    passes = epochs * (2 if pretrained else 1)
    small = img_size <= SMALL_IMAGE
    if passes < SHORT_RUN_EPOCHS:
        return "none"
    per_class = train_size / max(1, num_classes)
    if passes >= LONG_RUN_EPOCHS and per_class < FEW_PER_CLASS and not small:
        return "strong"
    return "small" if small else "standard"
