"""Built-in datasets: scikit-learn's bundled digits (offline) and torchvision's MNIST / Fashion-MNIST / CIFAR."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from imgclf.data._samples import SampleList, Splits
from imgclf.data._split import carve, finish, split_how
from imgclf.errors import DataError

BUILTIN_DATASETS = ("digits", "mnist", "fashion-mnist", "cifar10", "cifar100")
_ALIASES = {"fashion_mnist": "fashion-mnist", "fashionmnist": "fashion-mnist", "cifar-10": "cifar10",
            "cifar-100": "cifar100"}  # fmt: skip
_TORCHVISION = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "cifar10": "CIFAR10", "cifar100": "CIFAR100"}


def builtin_name(text: str) -> str | None:
    """The canonical built-in dataset name for ``text`` (case-insensitive, common aliases), else None."""
    key = text.strip().lower()
    key = _ALIASES.get(key, key)
    return key if key in BUILTIN_DATASETS else None


def default_cache_dir(name: str) -> Path:
    return Path.home() / ".cache" / "imgclf" / "datasets" / name


def _digits(*, val_fraction: float, test_fraction: float, seed: int, max_per_class: int | None) -> Splits:
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    images = np.rint(bunch.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)  # (N, 8, 8), 0..16 -> 0..255
    samples = SampleList.from_arrays(images, bunch.target.tolist(), name="digits")
    train, val, test = carve(samples, [val_fraction, test_fraction], seed)
    parts = {"train": (train, f"stratified split, seed {seed}, remainder"), "val": (val, split_how(seed, val_fraction)),
             "test": (test, split_how(seed, test_fraction))}  # fmt: skip
    classes = [str(i) for i in range(10)]
    return finish("builtin", "sklearn.datasets.load_digits", classes, parts, (), max_per_class=max_per_class,
                  extra={"name": "digits"})  # fmt: skip


def _as_uint8(data: object) -> np.ndarray:
    arr = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
    return np.ascontiguousarray(arr, dtype=np.uint8)


def _torchvision(name: str, *, val_fraction: float, seed: int, max_per_class: int | None,
                 cache_dir: str | os.PathLike | None) -> Splits:  # fmt: skip
    import torchvision.datasets as tvd

    root = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir(name)
    dataset_cls = getattr(tvd, _TORCHVISION[name])
    try:
        train_set = dataset_cls(root=str(root), train=True, download=True)
        test_set = dataset_cls(root=str(root), train=False, download=True)
    except (OSError, RuntimeError, ValueError) as exc:  # URLError is an OSError; torchvision raises RuntimeError
        raise DataError(
            f"could not download {name} into {root} ({type(exc).__name__}: {exc}). If this machine is offline, "
            f"extract an image-folder copy and pass its path: imgclf train /path/to/{name} (ROOT/train/<class>/...), "
            f"or copy torchvision's {name} files into {root}"
        ) from exc
    classes = [str(c) for c in train_set.classes]
    train = SampleList.from_arrays(_as_uint8(train_set.data), [int(t) for t in train_set.targets], name=f"{name}-train")
    test = SampleList.from_arrays(_as_uint8(test_set.data), [int(t) for t in test_set.targets], name=f"{name}-test")
    parts: dict[str, tuple[SampleList | None, str]]
    if val_fraction > 0:
        rest, val = carve(train, [val_fraction], seed)
        parts = {"train": (rest, "official train split, val carved out"), "val": (val, split_how(seed, val_fraction)),
                 "test": (test, "given (official test split)")}  # fmt: skip
    else:
        parts = {"train": (train, "given (official train split)"), "val": (None, ""),
                 "test": (test, "given (official test split)")}  # fmt: skip
    return finish("builtin", str(root), classes, parts, (), max_per_class=max_per_class, extra={"name": name})


def load_builtin(name: str, *, val_fraction: float, test_fraction: float, seed: int, max_per_class: int | None,
                 cache_dir: str | os.PathLike | None) -> Splits:  # fmt: skip
    """Splits of a built-in dataset (``name`` from :data:`BUILTIN_DATASETS`)."""
    if name == "digits":
        return _digits(val_fraction=val_fraction, test_fraction=test_fraction, seed=seed, max_per_class=max_per_class)
    return _torchvision(name, val_fraction=val_fraction, seed=seed, max_per_class=max_per_class, cache_dir=cache_dir)
