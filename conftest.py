"""Doctests of ``src/imgclf`` (run by ``make test``): a class or function published on its package
(``imgclf.utils.publish`` rewrites its ``__module__``) is collected from the package's ``__init__``, where its own
module's imports are not in scope; it runs with its own module's globals instead."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path
from types import ModuleType

import pytest

SRC = Path(__file__).resolve().parent / "src"


def _source_file(obj: object) -> Path:
    """Where ``obj`` is defined; for a class, where its methods are (``inspect`` follows ``__module__``, which
    ``publish`` rewrote to the package)."""
    if inspect.isclass(obj):
        for value in vars(obj).values():
            value = value.fget if isinstance(value, property) else value
            func = inspect.unwrap(value.__func__ if isinstance(value, (classmethod, staticmethod)) else value)
            if inspect.isfunction(func) and Path(func.__code__.co_filename).is_file():  # not a dataclass's __init__
                return Path(func.__code__.co_filename).resolve()
    return Path(inspect.getsourcefile(inspect.unwrap(obj)) or "").resolve()  # type: ignore[arg-type]


def _home(name: str) -> ModuleType | None:
    """The module whose file defines the object a doctest named ``pkg.mod.obj[.attr]`` is about."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        try:
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            source = _source_file(obj)
            module = ".".join(source.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__")
            return importlib.import_module(module)
        except (AttributeError, TypeError, ValueError, ImportError):
            return None
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.DoctestItem) and item.path.name == "__init__.py":
            found = _home(item.dtest.name)
            if found is not None and Path(found.__file__ or "").resolve() != item.path.resolve():
                item.dtest.globs = {**item.dtest.globs, **vars(found)}
