"""Small generated images and results shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def smooth_image(seed: int, size: int = 64) -> Image.Image:
    """A photo-like RGB image: a random 6x6 colour field upsampled smoothly, plus a random bright disc."""
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
    img = np.asarray(coarse.resize((size, size), Image.Resampling.BICUBIC)).astype(np.int32)
    yy, xx = np.mgrid[:size, :size]
    cy, cx, r = rng.integers(10, size - 10, 2).tolist() + [int(rng.integers(5, 12))]
    img[(yy - cy) ** 2 + (xx - cx) ** 2 < r * r] += 90
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def write(img: Image.Image, path: Path, **kw: object) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return str(path)


@pytest.fixture
def image_tree(tmp_path: Path) -> dict[str, object]:
    """train: 12 images of 2 classes; test: 6 new images, one exact copy of a train file, one resized and
    JPEG re-encoded copy of another, one undecodable file and one missing file."""
    train = [write(smooth_image(i), tmp_path / "train" / f"c{i % 2}" / f"{i}.png") for i in range(12)]
    test = [write(smooth_image(100 + i), tmp_path / "test" / f"c{i % 2}" / f"{i}.png") for i in range(6)]
    exact = tmp_path / "test" / "c0" / "copy.png"
    exact.write_bytes(Path(train[2]).read_bytes())
    near = write(smooth_image(5).resize((96, 96), Image.Resampling.BILINEAR), tmp_path / "test/c1/near.jpg", quality=80)
    broken = tmp_path / "test" / "c1" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a png")
    missing = str(tmp_path / "test" / "c0" / "missing.png")
    test += [str(exact), near, str(broken), missing]
    return {
        "paths": {"train": train, "test": test},
        "labels": {"train": [i % 2 for i in range(12)], "test": [i % 2 for i in range(6)] + [0, 1, 1, 0]},
        "names": ["cat", "dog"],
        "exact": (train[2], str(exact)),
        "near": (train[5], near),
        "broken": str(broken),
        "missing": missing,
    }
