from __future__ import annotations

import importlib
from types import ModuleType

from imgclf.errors import MissingDependencyError


def optional_import(module: str, extra: str) -> ModuleType:
    """Import an optional dependency, or raise an error naming the extra that provides it.

    >>> np = optional_import("numpy", "core")
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"this feature needs the '{module}' package, which is not installed ({exc}). "
            f"Install it with: pip install 'imgclf[{extra}]'"
        ) from exc
