"""Building a task by kind, and back from what a bundle recorded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from imgclf.errors import BundleError, ConfigError
from imgclf.tasks._base import Task
from imgclf.tasks._hierarchical import HierarchicalTask
from imgclf.tasks._multilabel import MultiLabelTask
from imgclf.tasks._single import SingleLabelTask

_TASKS: dict[str, type[Task]] = {"single": SingleLabelTask, "multilabel": MultiLabelTask,
                                 "hierarchical": HierarchicalTask}  # fmt: skip
TASK_KINDS = tuple(_TASKS)


def make_task(kind: str, classes: Sequence[str], **params: Any) -> Task:
    """The task of ``kind`` over ``classes`` (``params``: its decision parameters, e.g. thresholds).

    >>> make_task("single", ["cat", "dog"]).kind
    'single'
    """
    if kind not in _TASKS:
        raise ConfigError(f"task {kind!r} is not known; choose one of {', '.join(TASK_KINDS)}")
    return _TASKS[kind](classes, **params)


def task_from_dict(data: dict[str, Any] | None, classes: Sequence[str]) -> Task:
    """The task a bundle recorded (``None``: a schema-1 bundle, which was always single-label)."""
    data = dict(data or {"kind": "single"})
    kind = data.pop("kind", "single")
    if kind == "embedding":
        raise BundleError("this is an embedding bundle (from `imgclf pretrain`): it has no classifier. Use it with "
                          "`imgclf embed`, or train a head on it: `imgclf train DATA --weights DIR`")
    if kind not in _TASKS:
        raise BundleError(f"the bundle's task {kind!r} is not known to this imgclf; upgrade imgclf")
    return _TASKS[kind](classes, **data)
