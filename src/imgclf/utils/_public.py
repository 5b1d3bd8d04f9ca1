"""Public names report the path users import them from, not the private module that defines them."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any


def publish(package: str, namespace: MutableMapping[str, Any], names: Iterable[str]) -> None:
    """Set ``__module__`` of the classes and functions in ``names`` (defined under ``package``) to ``package``.

    Call at the end of a package's ``__init__``: ``publish(__name__, globals(), __all__)``. Help, reprs and
    pickles then name ``imgclf.api.Classifier`` instead of ``imgclf.api._classifier.Classifier``.
    """
    for name in names:
        obj = namespace.get(name)
        module = getattr(obj, "__module__", None)
        if isinstance(module, str) and module.startswith(package + "._") and (isinstance(obj, type) or callable(obj)):
            try:
                obj.__module__ = package
            except (AttributeError, TypeError):  # builtins and some C types refuse it: leave them
                continue
