"""Transform presets (torchvision.transforms.v2): PIL RGB -> normalised float tensor (3, H, W); MixUp / CutMix."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import InterpolationMode, v2

from imgclf.config import AUGMENT_PRESETS, DataConfig
from imgclf.errors import ConfigError
from imgclf.utils import closest

_INTERPOLATION = {"nearest": InterpolationMode.NEAREST, "bilinear": InterpolationMode.BILINEAR,
                  "bicubic": InterpolationMode.BICUBIC}  # fmt: skip


def _to_tensor(cfg: DataConfig) -> list[v2.Transform]:
    return [v2.ToImage(), v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(cfg.mean), list(cfg.std))]


def shift_pixels(size: int) -> int:
    """How far ``shift`` augmentation translates an image of ``size`` px: 1/16 of it, at least 1 (2 px at 32).

    >>> shift_pixels(32), shift_pixels(224)
    (2, 14)
    """
    return max(1, round(size / 16))


def build_eval_transform(cfg: DataConfig) -> v2.Compose:
    """Resize the shorter side to ``cfg.resize_size``, center-crop ``cfg.input_size``, scale to [0, 1], normalise.

    This is the preprocessing every bundle stores: predict, evaluate and serve all use it.

    >>> t = build_eval_transform(DataConfig(input_size=32, resize_size=36))
    >>> from PIL import Image; t(Image.new("RGB", (50, 40))).shape
    torch.Size([3, 32, 32])
    """
    interpolation = _INTERPOLATION[cfg.interpolation]
    return v2.Compose([v2.Resize(cfg.resize_size, interpolation=interpolation, antialias=True),
                       v2.CenterCrop(cfg.input_size), *_to_tensor(cfg)])  # fmt: skip


def build_train_transform(cfg: DataConfig, preset: str, *, hflip: bool = True) -> v2.Compose:
    """The training transform of an augmentation ``preset``; output matches :func:`build_eval_transform`'s.

    ``none``: the eval transform. ``flip``: the eval transform + horizontal flip (short runs on small images).
    ``shift``: flip + a random translation by up to :func:`shift_pixels` (reflect-padded; the speedrun recipe's).
    ``light``: RandomResizedCrop(scale 0.6-1) + horizontal flip. ``small``: RandomResizedCrop(scale 0.35-1) + flip
    (small images, where a quarter of the area leaves too few pixels). ``standard``: RandomResizedCrop(scale 0.25-1)
    + flip + mild ColorJitter. ``strong``: standard + TrivialAugmentWide, and RandomErasing(p=0.25) after
    normalising. ``hflip=False`` drops the flip (for text, digits, asymmetric data). ``data.augment=auto`` picks one
    from the image size, data size and run length (``config.auto_augment``).
    Randomness comes from torch's global generator, so seeding it makes a call repeatable.

    >>> t = build_train_transform(DataConfig(input_size=32, resize_size=36), "light")
    >>> from PIL import Image; t(Image.new("RGB", (50, 40))).shape
    torch.Size([3, 32, 32])
    """
    if preset not in AUGMENT_PRESETS:
        raise ConfigError(f"augmentation preset {preset!r} is unknown.{closest(preset, AUGMENT_PRESETS)} "
                          f"Choose one of {', '.join(AUGMENT_PRESETS)}")  # fmt: skip
    if preset == "none":
        return build_eval_transform(cfg)
    interpolation = _INTERPOLATION[cfg.interpolation]
    if preset in ("flip", "shift"):
        eval_steps = list(build_eval_transform(cfg).transforms)
        extra: list[v2.Transform] = [v2.RandomHorizontalFlip()] if hflip else []
        if preset == "shift":
            pad = shift_pixels(cfg.input_size)
            extra.insert(0, v2.RandomCrop(cfg.input_size, padding=pad, padding_mode="reflect"))
        return v2.Compose([*eval_steps[:2], *extra, *eval_steps[2:]])
    scale = {"light": (0.6, 1.0), "small": (0.35, 1.0)}.get(preset, (0.25, 1.0))
    steps: list[v2.Transform] = [v2.RandomResizedCrop(cfg.input_size, scale=scale, interpolation=interpolation,
                                                      antialias=True)]  # fmt: skip
    if hflip:
        steps.append(v2.RandomHorizontalFlip())
    if preset in ("standard", "strong"):
        steps.append(v2.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2))
    if preset == "strong":
        steps.append(v2.TrivialAugmentWide(interpolation=interpolation))
    steps += _to_tensor(cfg)
    if preset == "strong":
        steps.append(v2.RandomErasing(p=0.25))
    return v2.Compose(steps)


class BatchMixer:
    """MixUp and/or CutMix on a batch: ``(images (B, C, H, W), labels (B,)) -> (images, soft targets (B, K))``."""

    def __init__(self, num_classes: int, mixup_alpha: float, cutmix_alpha: float) -> None:
        self.num_classes, self.mixup_alpha, self.cutmix_alpha = num_classes, mixup_alpha, cutmix_alpha
        choices: list[v2.Transform] = []
        if mixup_alpha > 0:
            choices.append(v2.MixUp(alpha=mixup_alpha, num_classes=num_classes))
        if cutmix_alpha > 0:
            choices.append(v2.CutMix(alpha=cutmix_alpha, num_classes=num_classes))
        self.transform = choices[0] if len(choices) == 1 else v2.RandomChoice(choices)

    def __call__(self, images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mixed, targets = self.transform(images, labels.long())  # (B, C, H, W), (B, num_classes)
        return mixed, targets

    def __repr__(self) -> str:
        return f"BatchMixer(num_classes={self.num_classes}, mixup={self.mixup_alpha}, cutmix={self.cutmix_alpha})"


def mixup_cutmix(num_classes: int, mixup_alpha: float, cutmix_alpha: float
                 ) -> Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None:  # fmt: skip
    """A batch callable applying MixUp (``mixup_alpha > 0``), CutMix (``cutmix_alpha > 0``) or a random choice of
    the two per batch; ``None`` when both alphas are 0. Labels ``(B,)`` (or multi-hot ``(B, num_classes)``, mixed
    with the same weights as the images) become soft targets ``(B, num_classes)``.

    >>> mix = mixup_cutmix(3, 0.2, 0.0)
    >>> mix(torch.zeros(4, 3, 8, 8), torch.tensor([0, 1, 2, 0]))[1].shape
    torch.Size([4, 3])
    """
    if mixup_alpha < 0 or cutmix_alpha < 0:
        raise ConfigError(f"data.mixup={mixup_alpha} and data.cutmix={cutmix_alpha} must be >= 0")
    if mixup_alpha == 0 and cutmix_alpha == 0:
        return None
    if num_classes < 2:
        raise ConfigError(f"mixup/cutmix need at least 2 classes, got {num_classes}")
    return BatchMixer(num_classes, mixup_alpha, cutmix_alpha)
