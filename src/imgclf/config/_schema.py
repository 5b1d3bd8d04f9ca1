from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from imgclf.config._policy import auto_lr
from imgclf.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

AUGMENT_PRESETS = ("none", "flip", "shift", "light", "small", "standard", "strong")
AUTO = "auto"  # a default resolved from the data and the run's length (config.resolve_auto), recorded resolved
AUGMENT_CHOICES = (AUTO, *AUGMENT_PRESETS)
MEMORY_AUGMENTS = ("none", "flip", "shift")  # what data.cache=memory can do on stored tensors
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")


def _choice(section: str, key: str, value: object, choices: tuple) -> None:
    if value not in choices:
        raise ConfigError(f"{section}.{key}={value!r} is not valid; choose one of {', '.join(map(str, choices))}")


def _auto_or(section: str, key: str, value: object, check: object = None) -> None:
    """``value`` is ``"auto"`` or passes ``check`` (a callable raising ConfigError); other strings fail."""
    if isinstance(value, str):
        if value != AUTO:
            raise ConfigError(f"{section}.{key}={value!r} is not valid; give a number or 'auto'")
    elif callable(check):
        check(section, key, value)


def _positive(section: str, key: str, value: float | int | None, allow_zero: bool = False) -> None:
    if value is None:
        return
    if (value < 0) if allow_zero else (value <= 0):
        raise ConfigError(f"{section}.{key}={value!r} must be {'>= 0' if allow_zero else '> 0'}")


@dataclass(frozen=True)
class DataConfig:
    """How a model wants its input: the eval preprocessing stored in every bundle.

    Images are resized so the shorter side is ``resize_size``, center-cropped to ``input_size`` and normalised.

    >>> DataConfig(input_size=224, resize_size=256).with_size(32).resize_size
    36
    """

    input_size: int = 224
    resize_size: int = 256
    interpolation: str = "bilinear"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        _positive("preprocessing", "input_size", self.input_size)
        if self.resize_size < self.input_size:
            raise ConfigError(
                f"preprocessing.resize_size={self.resize_size} is smaller than input_size={self.input_size}"
            )
        _choice("preprocessing", "interpolation", self.interpolation, INTERPOLATIONS)
        if len(self.mean) != 3 or len(self.std) != 3 or any(s <= 0 for s in self.std):
            raise ConfigError("preprocessing.mean and .std need three values each, std > 0")

    @property
    def crop_pct(self) -> float:
        return self.input_size / self.resize_size

    def with_size(self, size: int, crop_pct: float | None = None) -> DataConfig:
        """The same preprocessing at another input size, keeping the crop fraction unless one is given."""
        pct = self.crop_pct if crop_pct is None else crop_pct
        if not 0 < pct <= 1:
            raise ConfigError(f"data.crop_pct={pct} must be in (0, 1]")
        return replace(self, input_size=size, resize_size=max(size, math.floor(size / pct + 1e-6)))


@dataclass(frozen=True)
class DataSourceConfig:
    """Where the images come from and how they are fed to the model."""

    source: str = ""
    img_size: int | None = None
    crop_pct: float | None = None
    batch_size: int | str = AUTO  # "auto": 64, smaller for small datasets (config.auto_batch_size)
    workers: int | None = None
    augment: str = AUTO
    mixup: float = 0.0
    cutmix: float = 0.0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    sampler: str = "shuffle"
    strict: bool = False
    max_per_class: int | None = None
    folds: int | None = None
    fold: int = 0
    task: str | None = None
    hierarchy: str | None = None
    near_duplicates: bool = True
    cache: str = "none"  # "memory": decode every image once, augment whole batches of stored tensors

    def __post_init__(self) -> None:
        _positive("data", "img_size", self.img_size)
        _auto_or("data", "batch_size", self.batch_size, _positive)
        _positive("data", "workers", self.workers, allow_zero=True)
        _positive("data", "mixup", self.mixup, allow_zero=True)
        _positive("data", "cutmix", self.cutmix, allow_zero=True)
        _positive("data", "max_per_class", self.max_per_class)
        if self.folds is not None and not (self.folds >= 2 and 0 <= self.fold < self.folds):
            raise ConfigError(f"data.folds={self.folds}, data.fold={self.fold}: need folds >= 2 and 0 <= fold < folds")
        _choice("data", "augment", self.augment, AUGMENT_CHOICES)
        _choice("data", "sampler", self.sampler, ("shuffle", "balanced"))
        _choice("data", "cache", self.cache, ("none", "memory"))
        if self.cache == "memory" and self.augment not in (AUTO, *MEMORY_AUGMENTS):
            raise ConfigError(f"data.augment={self.augment} needs per-image transforms; data.cache=memory augments "
                              f"whole batches of stored tensors and supports {', '.join(MEMORY_AUGMENTS)}. "
                              "Set data.cache=none for crops and colour changes")  # fmt: skip
        if self.task is not None:
            _choice("data", "task", self.task, ("single", "multilabel"))
        for key in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"data.{key}={getattr(self, key)} must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("data.val_fraction + data.test_fraction must be below 1")


@dataclass(frozen=True)
class ModelConfig:
    """Which architecture, which starting weights, what to train.

    ``weights``: ``None`` for random initialisation, ``"pretrained"`` for the architecture's default
    pretrained weights (timm's loader; needs the network), or a path to a ``.safetensors`` file.
    ``init``: a bundle directory to start from (its architecture, including pruned layer shapes, and weights).
    """

    name: str = "resnet18"
    weights: str | None = None
    freeze: str = "none"
    drop_rate: float = 0.0
    init: str | None = None

    def __post_init__(self) -> None:
        if not self.name:
            raise ConfigError("model.name is empty; see `imgclf models` for names")
        _choice("model", "freeze", self.freeze, ("none", "backbone"))
        if not 0 <= self.drop_rate < 1:
            raise ConfigError(f"model.drop_rate={self.drop_rate} must be in [0, 1)")


@dataclass(frozen=True)
class OptimConfig:
    """Optimizer and learning-rate schedule.

    ``lr="auto"`` and ``warmup_epochs="auto"`` are resolved from the run (config.resolve_auto). ``lr``/``weight_decay``
    of ``None`` pick the fixed per-optimizer defaults (lr 1e-3 AdamW / 0.05 SGD / 0.24 Muon: the defaults before
    "auto"). ``muon`` orthogonalises the backbone's weight updates and trains the rest with Nesterov SGD (see
    ``optim.build_optimizer``); its ``weight_decay`` (default 2e-6) is the shrink per image of the batch at the peak
    rate, for biases and the classifier only. ``schedule=linear`` decays linearly to zero after the warm-up.
    """

    optimizer: str = "adamw"
    lr: float | str | None = AUTO
    weight_decay: float | None = None
    momentum: float = 0.9
    backbone_lr_scale: float = 0.1
    schedule: str = "cosine"
    warmup_epochs: float | str = AUTO
    step_epochs: int = 30
    step_gamma: float = 0.1

    def __post_init__(self) -> None:
        _choice("optim", "optimizer", self.optimizer, ("adamw", "sgd", "muon"))
        _choice("optim", "schedule", self.schedule, ("cosine", "linear", "step", "constant"))
        _auto_or("optim", "lr", self.lr, _positive)
        _positive("optim", "weight_decay", self.weight_decay, allow_zero=True)
        _auto_or("optim", "warmup_epochs", self.warmup_epochs, lambda s, k, v: _positive(s, k, v, allow_zero=True))
        _positive("optim", "step_epochs", self.step_epochs)
        if not 0 < self.backbone_lr_scale <= 1:
            raise ConfigError(f"optim.backbone_lr_scale={self.backbone_lr_scale} must be in (0, 1]")

    @property
    def resolved_lr(self) -> float:
        """The learning rate as a number (an unresolved ``"auto"`` counts as batch 64, from scratch)."""
        if isinstance(self.lr, str):
            return auto_lr(self.optimizer, batch_size=64, pretrained=False)
        return self.lr if self.lr is not None else {"adamw": 1e-3, "sgd": 0.05, "muon": 0.24}[self.optimizer]

    @property
    def resolved_warmup_epochs(self) -> float:
        """Warm-up epochs as a number (``"auto"`` left unresolved counts as 1 epoch)."""
        return 1.0 if isinstance(self.warmup_epochs, str) else float(self.warmup_epochs)

    @property
    def resolved_weight_decay(self) -> float:
        if self.weight_decay is not None:
            return self.weight_decay
        return {"adamw": 0.05, "sgd": 5e-4, "muon": 2e-6}[self.optimizer]


@dataclass(frozen=True)
class TrainConfig:
    """The training loop: length, precision, regularisation, stopping, output."""

    epochs: int = 10
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"
    channels_last: bool = False
    label_smoothing: float = 0.1
    loss: str = "ce"
    focal_gamma: float = 2.0
    class_weights: str = "none"
    ema: bool | str = AUTO
    ema_decay: float | str = AUTO
    grad_clip: float | None = None
    accumulate: int = 1
    patience: int | None = 10
    monitor: str = "val_acc"
    out: str = "runs"
    name: str | None = None
    save_every_steps: int | None = None
    dist_timeout: float | None = None  # seconds a collective (DDP all-reduce, barrier) may wait; None: torch's
    calibrate: bool = True
    report: bool = True
    distill_teacher: str | None = None
    distill_temperature: float = 4.0
    distill_alpha: float = 0.7
    adv_train: str = "none"
    adv_eps: float = 8 / 255
    adv_steps: int = 5
    hierarchy_loss: str = "none"
    noise_augment: float = 0.0  # Gaussian noise std in pixel units (randomized smoothing's base classifier)
    rejection: str = "msp"  # the rejection rule fitted in the training pass (feature rules on training features)
    dp_epsilon: float | None = None  # DP-SGD (Opacus): the (epsilon, dp_delta) budget of the whole run; None: off
    dp_delta: float = 1e-5
    dp_max_grad_norm: float = 1.0  # per-sample gradient clipping norm
    dp_physical_batch: int | None = None  # memory cap per forward pass (default: batch_size + 4 sqrt(batch_size))

    def __post_init__(self) -> None:
        _positive("train", "epochs", self.epochs)
        _choice("train", "amp", self.amp, ("auto", "off", "bf16", "fp16"))
        _choice("train", "loss", self.loss, ("ce", "focal", "bce", "asl"))
        _choice("train", "class_weights", self.class_weights, ("none", "balanced"))
        _choice("train", "monitor", self.monitor, ("val_acc", "val_loss"))
        _positive("train", "accumulate", self.accumulate)
        _choice("train", "adv_train", self.adv_train, ("none", "pgd"))
        _choice("train", "hierarchy_loss", self.hierarchy_loss, ("none", "soft-labels", "hxe"))
        _choice("train", "rejection", self.rejection, ("msp", "max_logit", "energy", "mahalanobis", "knn", "vim"))
        _positive("train", "distill_temperature", self.distill_temperature)
        if not 0 <= self.distill_alpha <= 1:
            raise ConfigError(f"train.distill_alpha={self.distill_alpha} must be in [0, 1]")
        _positive("train", "adv_eps", self.adv_eps)
        _positive("train", "adv_steps", self.adv_steps)
        if self.noise_augment < 0:
            raise ConfigError(f"train.noise_augment={self.noise_augment} must be >= 0 (0 turns it off)")
        _positive("train", "grad_clip", self.grad_clip)
        _positive("train", "dp_epsilon", self.dp_epsilon)
        _positive("train", "dp_max_grad_norm", self.dp_max_grad_norm)
        _positive("train", "dp_physical_batch", self.dp_physical_batch)
        if not 0 < self.dp_delta < 1:
            raise ConfigError(f"train.dp_delta={self.dp_delta} must be in (0, 1), e.g. 1e-5 (< 1 / images)")
        _positive("train", "patience", self.patience)
        _positive("train", "save_every_steps", self.save_every_steps)
        _positive("train", "dist_timeout", self.dist_timeout)
        if not 0 <= self.label_smoothing < 1:
            raise ConfigError(f"train.label_smoothing={self.label_smoothing} must be in [0, 1)")
        if isinstance(self.ema, str) and self.ema != AUTO:
            raise ConfigError(f"train.ema={self.ema!r} is not valid; choose true, false or auto")
        if not isinstance(self.ema_decay, str) and not 0 < self.ema_decay < 1:
            raise ConfigError(f"train.ema_decay={self.ema_decay} must be in (0, 1)")
        _auto_or("train", "ema_decay", self.ema_decay)


@dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs, one section per concern."""

    data: DataSourceConfig = field(default_factory=DataSourceConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
