"""The side-by-side gallery of flagged pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf.errors import DataError
from imgclf.evaluation import FileRef, Leak, NearDuplicate
from imgclf.evaluation._pair_gallery import plot_pair_gallery

from .conftest import smooth_image, write


def test_pairs_are_drawn_side_by_side_and_an_unreadable_file_becomes_a_grey_tile(tmp_path: Path) -> None:
    a = write(smooth_image(1), tmp_path / "train" / "a.png")
    b = write(smooth_image(1).resize((40, 40)), tmp_path / "test" / "b.png")
    pairs = [
        Leak("near", FileRef("train", a), FileRef("test", b), 2, 0.991),
        NearDuplicate(FileRef("train", a), FileRef("test", str(tmp_path / "gone.png")), 5, "near", "look-alike", 0.93),
    ]
    out = plot_pair_gallery(pairs, tmp_path / "pairs.png", columns=2)
    with Image.open(out) as im:
        pixels = np.asarray(im.convert("RGB"))
    assert pixels.shape[1] > 2 * pixels.shape[0]  # one row: two pairs, each two images side by side
    assert pixels.std() > 20  # the images were drawn, not a blank canvas
    with pytest.raises(DataError, match="at least one pair"):
        plot_pair_gallery([], tmp_path / "none.png")
