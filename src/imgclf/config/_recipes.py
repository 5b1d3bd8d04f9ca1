"""Named recipes: complete training set-ups that ``imgclf train --recipe NAME`` starts from (flags still win)."""

from __future__ import annotations

from typing import Any

from imgclf.config._io import update
from imgclf.config._schema import RunConfig
from imgclf.errors import ConfigError
from imgclf.utils import closest, cpu_supports_bf16

# cifar-speed: time to accuracy on small images (benchmarks/speedrun.py). Our own port of the published CIFAR-10
# speedrun ideas to imgclf's loop: a whitened conv net (speednet), Muon for its filters, large batches (2,000 images
# per step, as two accumulated batches of 1,000: on 1 CPU thread a batch of 2,000 ran 17% slower per image), a linear
# decay without warm-up, label smoothing 0.2, images decoded once and augmented a batch at a time (alternating
# flips, 2 px translations), bf16 autocast, every training image used (no validation split, as speedruns do), and
# 9 epochs (90.87% on CIFAR-10 JPEGs with --tta flip+shift, above the yardstick's 90.76%; benchmarks/README.md).
# Evaluate with --tta flip+shift. bf16 pays off only on CPUs with bf16 instructions: elsewhere recipe() asks for
# train.amp=auto instead (fp32 on the CPU, bf16/fp16 on a CUDA device).
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "cifar-speed": {
        "data": {"img_size": 32, "batch_size": 1000, "cache": "memory", "augment": "shift", "val_fraction": 0.0,
                 "near_duplicates": False},  # fmt: skip
        "model": {"name": "speednet"},
        "optim": {"optimizer": "muon", "lr": 0.24, "momentum": 0.85, "weight_decay": 2e-6, "schedule": "linear",
                  "warmup_epochs": 0},  # fmt: skip
        "train": {"epochs": 9, "accumulate": 2, "label_smoothing": 0.2, "ema": False, "amp": "bf16",
                  "channels_last": True, "patience": None},  # fmt: skip
    },
}


def recipe(name: str) -> RunConfig:
    """The run configuration of recipe ``name`` (see :data:`RECIPES`); change it like any config.

    A recipe's ``train.amp=bf16`` becomes ``auto`` on a CPU without bf16 instructions, where bf16 is emulated and
    several times slower than fp32 (``auto``: fp32 on the CPU, bf16 or fp16 on a CUDA device).

    >>> recipe("cifar-speed").model.name
    'speednet'
    """
    if name not in RECIPES:
        raise ConfigError(f"unknown recipe {name!r}.{closest(name, RECIPES)} Recipes: {', '.join(RECIPES)}")
    cfg = update(RunConfig(), RECIPES[name])
    if cfg.train.amp == "bf16" and not cpu_supports_bf16():
        cfg = update(cfg, {"train": {"amp": "auto"}})
    return cfg
