"""make_synthetic_dataset: the layouts other tests rely on, deterministic and easy to tell apart."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf import data as D


def test_flat_layout_loads_as_a_dataset(tmp_path: Path) -> None:
    root = D.make_synthetic_dataset(tmp_path / "imgs", per_class=6, size=24)
    assert root == tmp_path / "imgs"
    assert sorted(p.name for p in root.iterdir()) == ["blue", "green", "red"]
    files = D.list_images(root / "red")
    assert len(files) == 6 and Image.open(files[0]).size == (24, 24)
    splits = D.load_source(root, val_fraction=0, test_fraction=0)
    assert splits.classes == ("blue", "green", "red") and len(splits.train) == 18 and not splits.skipped


def test_split_layout_and_formats(tmp_path: Path) -> None:
    root = D.make_synthetic_dataset(tmp_path / "s", classes=("a", "b", "c", "d"), per_class=8, layout="split",
                                    fmt="jpg", vary_size=True)  # fmt: skip
    splits = D.load_source(root)
    assert (len(splits.train), len(splits.val), len(splits.test)) == (32, 8, 8)
    assert all(p.endswith(".jpg") for p in splits.train.paths)
    sizes = {Image.open(p).size for p in splits.train.paths}
    assert len(sizes) > 1 and all(24 <= s <= 40 for wh in sizes for s in wh)
    with pytest.raises(ValueError, match="layout"):
        D.make_synthetic_dataset(tmp_path / "x", layout="nested")


def test_deterministic_per_seed(tmp_path: Path) -> None:
    a = D.make_synthetic_dataset(tmp_path / "a", per_class=2, seed=4)
    b = D.make_synthetic_dataset(tmp_path / "b", per_class=2, seed=4)
    c = D.make_synthetic_dataset(tmp_path / "c", per_class=2, seed=5)
    assert (a / "red" / "red_001.png").read_bytes() == (b / "red" / "red_001.png").read_bytes()
    assert (a / "red" / "red_001.png").read_bytes() != (c / "red" / "red_001.png").read_bytes()


def test_classes_are_easy_to_tell_apart(tmp_path: Path) -> None:
    root = D.make_synthetic_dataset(tmp_path / "imgs", per_class=5, size=32)
    for channel, name in enumerate(("red", "green", "blue")):
        for path in D.list_images(root / name):
            arr = np.asarray(Image.open(path)).astype(float)  # (H, W, 3)
            bright = arr[arr.max(axis=2) > 120]  # the class's shape
            assert len(bright) > 50
            assert bright.mean(0).argmax() == channel  # dominated by the class colour
