"""Perceptual hashes: stable under resizing and re-encoding, far apart for different pictures."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from imgclf.evaluation import dhash, hamming, phash
from imgclf.evaluation._imagehash import _POPCOUNT8, popcount

from .conftest import smooth_image


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_hashes_survive_resizing_and_reencoding_but_separate_different_pictures() -> None:
    for seed in range(5):
        img = smooth_image(seed)
        copy = _jpeg(img.resize((150, 150), Image.Resampling.BICUBIC), quality=70)
        other = smooth_image(seed + 50)
        assert hamming(phash(img), phash(copy)) <= 6
        assert hamming(dhash(img), dhash(copy)) <= 10
        assert hamming(phash(img), phash(other)) > 12


def test_popcount_matches_the_byte_table_fallback() -> None:
    x = np.random.default_rng(0).integers(0, 2**63, 100, dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    by_table = _POPCOUNT8[x[..., None].view(np.uint8)].sum(axis=-1)
    assert np.array_equal(popcount(x), by_table)
    assert hamming(0, 2**64 - 1) == 64
