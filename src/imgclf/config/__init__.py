"""Typed, frozen configuration: the source of truth that YAML files and CLI flags are views of.

Precedence: dataclass defaults < the model's data config (for fields left unset) < YAML < ``--set`` / keyword
arguments. Unknown keys and bad values raise :class:`~imgclf.errors.ConfigError` with the closest valid key.
A class :class:`Hierarchy` (a tree over the class names, from YAML) lives here too, so losses, metrics and the
bundle share one shape.
"""

from imgclf.config._hierarchy import Hierarchy, load_hierarchy
from imgclf.config._io import from_dict, load_config, parse_set, to_dict, to_yaml, update
from imgclf.config._policy import auto_augment, auto_batch_size, auto_ema, auto_lr, auto_warmup_epochs
from imgclf.config._recipes import RECIPES, recipe
from imgclf.config._resolve import resolve_auto, steps_per_epoch
from imgclf.config._schema import (
    AUGMENT_PRESETS,
    AUTO,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MEMORY_AUGMENTS,
    DataConfig,
    DataSourceConfig,
    ModelConfig,
    OptimConfig,
    RunConfig,
    TrainConfig,
)
from imgclf.utils import publish

__all__ = [
    "RECIPES",
    "recipe",
    "AUGMENT_PRESETS",
    "MEMORY_AUGMENTS",
    "AUTO",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "DataConfig",
    "DataSourceConfig",
    "Hierarchy",
    "ModelConfig",
    "OptimConfig",
    "RunConfig",
    "TrainConfig",
    "auto_augment",
    "auto_batch_size",
    "auto_ema",
    "auto_lr",
    "auto_warmup_epochs",
    "from_dict",
    "load_config",
    "load_hierarchy",
    "parse_set",
    "resolve_auto",
    "steps_per_epoch",
    "to_dict",
    "to_yaml",
    "update",
]

publish(__name__, globals(), __all__)
