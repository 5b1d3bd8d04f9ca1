"""The data a bundle was trained on: which source, and the same splits training made."""

from __future__ import annotations

from pathlib import Path

from imgclf import data as D
from imgclf.bundle._bundle import BundleMeta
from imgclf.errors import ConfigError, DataError

SPLITS = ("test", "val", "train", "all")


def training_source(meta: BundleMeta, data: str | None = None, *, option: str = "--data") -> str:
    """``data`` when given, else the source the bundle recorded; a recorded folder that is gone is an error that
    says where the path came from and how to pass another."""
    if data:
        return str(data)
    source = str(meta.training.get("data", {}).get("source") or "")
    if not source:
        raise ConfigError(f"the bundle records no training data; pass {option} (a folder, CSV or built-in name)")
    looks_like_path = "/" in source or source.endswith(".csv") or source.startswith(".")
    if looks_like_path and not Path(source).exists():
        raise DataError(f"the bundle's training data {source} (recorded at training time) does not exist here; "
                        f"pass {option} with its current location")  # fmt: skip
    return source


def split_samples(meta: BundleMeta, source: str, split: str | None) -> tuple[D.SampleList, str, D.Splits]:
    """The samples of ``split`` of ``source``, relabelled to the bundle's classes, the split's name, all splits.

    A flat folder is split with the seed, fractions and class cap the bundle was trained with, so ``test`` is the
    same held-out part training used. ``split=None`` picks test, else val; ``all`` joins every split.

    >>> # samples, split, splits = split_samples(bundle.meta, "data/flowers", None)
    """
    data_cfg, train_cfg = meta.training.get("data", {}), meta.training.get("train", {})
    cap = data_cfg.get("max_per_class") if _same(source, data_cfg.get("source")) else None
    splits = D.load_source(source, val_fraction=data_cfg.get("val_fraction", 0.1),
                           test_fraction=data_cfg.get("test_fraction", 0.1), seed=train_cfg.get("seed", 0),
                           max_per_class=cap, **_task_kwargs(meta))  # fmt: skip
    unknown = [c for c in splits.classes if c not in meta.classes]
    if unknown:
        raise DataError(f"{source}: class(es) {', '.join(unknown)} are not among the model's classes "
                        f"({', '.join(meta.classes)}); evaluate on data with the model's classes")  # fmt: skip
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    if split is None:
        split = "test" if splits.test is not None else "val" if splits.val is not None else "train"
    if split not in SPLITS:
        raise DataError(f"--split {split!r} is not one of {', '.join(SPLITS)}")
    chosen = [p for name, p in parts.items() if p is not None and (split == "all" or name == split)]
    if not chosen:
        have = ", ".join(n for n, p in parts.items() if p is not None)
        raise DataError(f"{source} has no {split!r} split (it has: {have}); pass --split")
    remap = [meta.classes.index(c) for c in splits.classes]
    samples = chosen[0] if len(chosen) == 1 else D.SampleList.concat(chosen)
    return samples.relabel(remap, num_classes=len(meta.classes)), split, splits


def _task_kwargs(meta: BundleMeta) -> dict[str, str]:
    """How the source must be read for this bundle's task (a multi-label bundle reads multi-label targets)."""
    kind = meta.task.get("kind", "single")
    return {"task": "multilabel"} if kind == "multilabel" else {}


def _same(a: str | None, b: str | None) -> bool:
    """Whether two data sources name the same thing (paths compared resolved)."""
    if not a or not b:
        return False
    return a == b or Path(a).resolve() == Path(b).resolve()
