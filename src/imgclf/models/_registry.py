"""The builtin-model registry: one explicit table, filled when ``imgclf.models`` is imported.

Duplicates raise instead of silently replacing an architecture; unknown names are resolved by the factory, which
also looks at timm and torchvision before giving up with close matches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

from torch import nn

from imgclf.config import DataConfig
from imgclf.errors import ModelError

Builder = Callable[..., nn.Module]  # builder(num_classes: int, drop_rate: float) -> nn.Module


@dataclass(frozen=True)
class ModelEntry:
    """One builtin architecture: its builder, default preprocessing and a one-line description."""

    name: str
    builder: Builder
    data_config: DataConfig
    description: str

    def to_dict(self) -> dict:
        return {"name": self.name, "description": self.description, "data_config": asdict(self.data_config)}


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, data_config: DataConfig, description: str) -> Callable[[Builder], Builder]:
    """Register a builder ``fn(num_classes, drop_rate) -> nn.Module`` under ``name``; duplicates raise.

    The builder must return a model meeting the imgclf model contract (``forward_features``, ``forward_head``,
    ``reset_classifier``, ``get_classifier``, ``num_features``, ``num_classes``).

    >>> @register_model("my_net", data_config=DataConfig(32, 32), description="a tiny CNN")  # doctest: +SKIP
    ... def my_net(num_classes: int, drop_rate: float = 0.0) -> nn.Module:
    ...     return MyNet(num_classes, drop_rate)
    """
    if not name or not isinstance(name, str):
        raise ModelError(f"register_model needs a non-empty string name, got {name!r}")
    if name.startswith(("tv/", "timm/")):
        raise ModelError(f"model name {name!r} uses a reserved prefix ('tv/' and 'timm/' select other sources)")
    if not isinstance(data_config, DataConfig):
        raise ModelError(f"register_model({name!r}) needs data_config=DataConfig(...), got {type(data_config)}")

    def decorator(builder: Builder) -> Builder:
        if name in _REGISTRY:
            existing = _REGISTRY[name].builder
            raise ModelError(
                f"model {name!r} is already registered (by {existing.__module__}.{existing.__qualname__}); "
                "pick another name — registrations never replace each other"
            )
        _REGISTRY[name] = ModelEntry(name=name, builder=builder, data_config=data_config, description=description)
        return builder

    return decorator


def builtin_entry(name: str) -> ModelEntry | None:
    """The registered entry for ``name`` (None when it is not a builtin)."""
    return _REGISTRY.get(name)


def builtin_names() -> list[str]:
    """Registered builtin names in registration order."""
    return list(_REGISTRY)
