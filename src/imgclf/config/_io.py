from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

from imgclf.config._schema import RunConfig
from imgclf.errors import ConfigError
from imgclf.utils import closest

T = TypeVar("T")


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check ``value`` against a field annotation, converting only where it loses nothing (int -> float)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}={value!r} must be a list")
        inner = typing.get_args(annotation)[0]
        return tuple(_coerce(v, inner, where) for v in value)
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation is float and isinstance(value, str):  # YAML 1.1 reads "1e-3" as a string
        try:
            return float(value)
        except ValueError:
            pass
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation is bool and isinstance(value, bool):
        return value
    if annotation is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    name = getattr(annotation, "__name__", str(annotation))
    raise ConfigError(f"{where}={value!r} has the wrong type; expected {name}")


def from_dict(cls: type[T], data: Mapping[str, Any], prefix: str = "") -> T:
    """Build a (nested) config dataclass from plain data, failing on unknown keys with a suggestion.

    >>> from imgclf.config import RunConfig
    >>> from_dict(RunConfig, {"train": {"epochs": 3}}).train.epochs
    3
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{prefix or 'config'} must be a mapping of keys to values, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in names:
            raise ConfigError(f"unknown config key '{where}'.{closest(key, names)} Valid keys: {', '.join(names)}")
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            kwargs[key] = from_dict(annotation, value or {}, prefix=f"{where}.")
        else:
            kwargs[key] = _coerce(value, annotation, where)
    return cls(**kwargs)


def to_dict(cfg: Any) -> dict[str, Any]:
    """Plain (YAML/JSON-ready) data of a config dataclass; tuples become lists."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))


def to_yaml(cfg: Any) -> str:
    """YAML text of a config dataclass, keys in declaration order."""
    return yaml.safe_dump(to_dict(cfg), sort_keys=False)


def _merge(base: dict, extra: Mapping) -> dict:
    out = dict(base)
    for k, v in extra.items():
        out[k] = _merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def update(cfg: T, changes: Mapping[str, Any]) -> T:
    """A copy of ``cfg`` with nested ``changes`` applied and validated."""
    return from_dict(type(cfg), _merge(to_dict(cfg), changes))


def parse_set(items: Iterable[str]) -> dict[str, Any]:
    """Turn ``["train.epochs=5", "data.source=x"]`` into nested data (values parsed as YAML scalars).

    >>> parse_set(["train.epochs=5"])
    {'train': {'epochs': 5}}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r} must look like section.key=value, e.g. --set train.epochs=5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from exc
        node = out
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {item!r} conflicts with another --set of '{part}'")
        node[parts[-1]] = value
    return out


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> RunConfig:
    """Defaults < YAML file at ``path`` < ``overrides`` (nested data, e.g. from :func:`parse_set`)."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist; pass a YAML file written by `imgclf train`")
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{p} is not valid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p} must hold a mapping with sections data/model/optim/train")
        data = _merge(data, _normalise_keys(loaded, p))
    if overrides:
        data = _merge(data, overrides)
    return from_dict(RunConfig, data)


def _normalise_keys(data: dict, path: Path) -> dict:
    if any(not isinstance(k, str) for k in data):
        raise ConfigError(f"{path}: every key must be a string")
    return data
