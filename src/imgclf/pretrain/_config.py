"""The typed settings of one pretraining run (saved as the run's ``config.yaml``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from imgclf.errors import ConfigError
from imgclf.utils import closest

METHODS = ("simclr", "byol", "dino")


@dataclass(frozen=True)
class PretrainConfig:
    """What to pretrain on and how.

    ``source``: a folder of images (class folders or loose files), a CSV manifest or a built-in name; labels, when
    present, are used only for the kNN collapse check on the validation split (``val_fraction``). ``img_size``
    ``None``: the model's own input size. ``lr``: AdamW learning rate, ``None`` for ``2e-2 * batch_size / 256``
    (1e-2 at batch 128, as measured on CIFAR-10).
    ``temperature``: NT-Xent's (SimCLR); ``momentum``: the teacher's EMA start (BYOL, DINO; cosine to 1).
    ``out_dim``: the projection head's output size (DINO's prototype count). ``check_images``: how many
    images the per-epoch collapse check embeds (train bank and validation queries each). ``local_views``: DINO's
    multi-crop, this many small crops per image (:func:`local_crop_size` px, 5-40% of the image) besides its two
    global ones; the student sees every crop, the teacher the global ones (0: two global crops only).

    >>> PretrainConfig(source="photos/", method="simclr", model="resnet20_cifar").method
    'simclr'
    """

    source: str = ""
    method: str = "simclr"
    model: str = "resnet18"
    epochs: int = 10
    batch_size: int = 128
    img_size: int | None = None
    seed: int = 0
    lr: float | None = None
    weight_decay: float = 1e-4
    warmup_epochs: float = 0.0
    temperature: float = 0.2
    momentum: float = 0.99
    out_dim: int = 128
    local_views: int = 0
    val_fraction: float = 0.1
    workers: int | None = None
    check_images: int = 1000
    knn_k: int = 20
    device: str = "auto"

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"--method {self.method!r} is not one of {', '.join(METHODS)}."
                              f"{closest(self.method, METHODS)}")  # fmt: skip
        for key in ("epochs", "batch_size", "out_dim", "knn_k"):
            if getattr(self, key) < 1:
                raise ConfigError(f"pretrain {key}={getattr(self, key)} must be at least 1")
        if self.local_views < 0:
            raise ConfigError(f"--local-views {self.local_views} must be 0 or more")
        if self.local_views and self.method != "dino":
            raise ConfigError(f"--local-views is DINO's multi-crop; {self.method} trains on two views of each image: "
                              "drop --local-views or use --method dino")  # fmt: skip
        if self.batch_size < 2:
            raise ConfigError(f"--batch-size {self.batch_size}: {self.method} compares views across a batch and "
                              "its heads use BatchNorm; use at least 2 (64-512 is typical)")  # fmt: skip
        if self.img_size is not None and self.img_size < 16:
            raise ConfigError(f"--img-size {self.img_size} is too small for random-resized-crop views; use >= 16")
        if not 0 <= self.val_fraction < 1:
            raise ConfigError(f"val_fraction={self.val_fraction} must be in [0, 1)")
        if not 0 < self.momentum < 1:
            raise ConfigError(f"momentum={self.momentum} must be in (0, 1)")
        if self.temperature <= 0:
            raise ConfigError(f"temperature={self.temperature} must be positive")

    def resolved_lr(self) -> float:
        return self.lr if self.lr is not None else 2e-2 * self.batch_size / 256

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PretrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = [k for k in data if k not in known]
        if unknown:
            raise ConfigError(f"unknown pretrain setting {unknown[0]!r}.{closest(unknown[0], sorted(known))}")
        return cls(**data)
