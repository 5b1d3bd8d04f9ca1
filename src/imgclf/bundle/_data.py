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
    same held-out part training used. ``split=None`` picks test, else val, else train; but ``all`` when ``source``
    is not the data the bundle records training on and comes without splits of its own (a flat folder, a CSV
    without a split column): none of it was trained on, so every image is held out. ``all`` joins every split.

    >>> # samples, split, splits = split_samples(bundle.meta, "data/flowers", None)
    """
    data_cfg, train_cfg = meta.training.get("data", {}), meta.training.get("train", {})
    trained_on = same_source(source, data_cfg.get("source"))
    cap = data_cfg.get("max_per_class") if trained_on else None
    splits = D.load_source(source, val_fraction=data_cfg.get("val_fraction", 0.1),
                           test_fraction=data_cfg.get("test_fraction", 0.1), seed=train_cfg.get("seed", 0),
                           max_per_class=cap, **_task_kwargs(meta))  # fmt: skip
    unknown = [c for c in splits.classes if c not in meta.classes]
    if unknown:
        raise DataError(f"{source}: class(es) {', '.join(unknown)} are not among the model's classes "
                        f"({', '.join(meta.classes)}); evaluate on data with the model's classes")  # fmt: skip
    parts = {"train": splits.train, "val": splits.val, "test": splits.test}
    if split is None and _never_trained_on(meta, trained_on, splits):
        split = "all"
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


def _never_trained_on(meta: BundleMeta, trained_on: bool, splits: D.Splits) -> bool:
    """Whether every image of ``splits`` is held out from the bundle: the bundle records other training data (by
    resolved path) and the source has no splits of its own (split folders, a split column, an official test set);
    all its splits were drawn here by the seed.

    A source whose split fingerprint (relative file names and labels) equals the training data's counts as the
    training data: a moved or copied training folder keeps its held-out split instead of being scored whole,
    training images included. A new folder named exactly like the training one does too: the safe side, its
    output names the split scored and ``--split all`` scores everything.
    """
    if trained_on or not meta.training.get("data", {}).get("source"):
        return False
    recorded = meta.data.get("fingerprint")
    if recorded and recorded == splits.info.get("fingerprint"):
        return False
    made = [str(part.get("how", "")) for part in splits.info.get("splits", {}).values()]
    return not any(how.startswith(("given", "official")) for how in made)


def _task_kwargs(meta: BundleMeta) -> dict[str, str]:
    """How the source must be read for this bundle's task (a multi-label bundle reads multi-label targets)."""
    kind = meta.task.get("kind", "single")
    return {"task": "multilabel"} if kind == "multilabel" else {}


def same_source(a: str | Path | None, b: str | Path | None) -> bool:
    """Whether two data sources name the same thing (paths compared resolved); a missing one never matches.

    >>> same_source("data", "./data"), same_source("digits", None)
    (True, False)
    """
    if not a or not b:
        return False
    return str(a) == str(b) or Path(a).resolve() == Path(b).resolve()
