"""Explicit, loud registries: built from (name, value) pairs; a duplicate name raises, an unknown one suggests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TypeVar

from imgclf.errors import ConfigError
from imgclf.utils import closest

T = TypeVar("T")


def build_registry(kind: str, entries: Iterable[tuple[str, T]]) -> Mapping[str, T]:
    """A read-only name -> value mapping; raises ConfigError when a name appears twice."""
    table: dict[str, T] = {}
    for name, value in entries:
        if name in table:
            raise ConfigError(f"{kind} {name!r} is registered twice; each {kind} name must be unique.")
        table[name] = value
    return MappingProxyType(table)


def lookup(kind: str, registry: Mapping[str, T], name: str) -> T:
    """``registry[name]``, or a ConfigError listing the valid names and the closest match."""
    if name not in registry:
        raise ConfigError(f"unknown {kind} {name!r}.{closest(name, registry)} Choose one of: {', '.join(registry)}.")
    return registry[name]
