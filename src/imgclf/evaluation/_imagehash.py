"""Perceptual hashes (dHash and pHash, 64 bits each) and their Hamming distance.

dHash compares neighbouring pixels of a 9x8 grey thumbnail; pHash thresholds the 8x8 lowest frequencies of the
DCT of a 32x32 grey thumbnail at their median. Resizing and JPEG re-encoding move a pHash by 0-6 bits, unrelated
photos by ~32; but on tiny low-detail images (28x28 digits) look-alikes written by different people also lie
within a few bits, so a close hash only makes a *candidate*: :mod:`._near_duplicates` confirms it at pixel level.
dHash is kept for callers; on low-detail images JPEG noise flips many of its bits.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_BITS = 1 << np.arange(64, dtype=np.uint64)  # bit weights, least significant first
_POPCOUNT8 = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _dct_matrix(n: int) -> np.ndarray:
    """Orthonormal DCT-II matrix ``(n, n)``: ``D @ x`` is the DCT of a column vector ``x``."""
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    d = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2 / n)
    d[0] /= np.sqrt(2)
    return d


_DCT32 = _dct_matrix(32)


def _pack(bits: np.ndarray) -> np.uint64:
    """64 booleans to one unsigned 64-bit integer."""
    return np.uint64(np.sum(_BITS[bits.ravel()], dtype=np.uint64))


def dhash(image: Any) -> np.uint64:
    """64-bit difference hash of a PIL image: is each pixel brighter than its right neighbour (9x8 grey)?

    >>> from PIL import Image
    >>> int(dhash(Image.new("L", (16, 16), 128)))
    0
    """
    from PIL import Image

    grey = np.asarray(image.convert("L").resize((9, 8), Image.Resampling.BOX), dtype=np.int16)  # (8, 9)
    return _pack(grey[:, 1:] > grey[:, :-1])


def phash(image: Any) -> np.uint64:
    """64-bit DCT hash of a PIL image: the 8x8 lowest DCT frequencies of a 32x32 grey thumbnail above their
    median.

    >>> from PIL import Image
    >>> bool(phash(Image.new("L", (40, 40), 10)) == phash(Image.new("L", (64, 64), 10)))
    True
    """
    from PIL import Image

    grey = np.asarray(image.convert("L").resize((32, 32), Image.Resampling.BOX), dtype=np.float64)  # (32, 32)
    low = (_DCT32 @ grey @ _DCT32.T)[:8, :8]  # (8, 8) lowest frequencies
    return _pack(low > np.median(low))


def popcount(x: np.ndarray) -> np.ndarray:
    """Number of set bits of each uint64 in ``x`` (same shape, uint8)."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.uint8)
    as_bytes = x[..., None].view(np.uint8)  # (..., 8)
    return _POPCOUNT8[as_bytes].sum(axis=-1, dtype=np.uint8)


def hamming(a: np.uint64 | int, b: np.uint64 | int) -> int:
    """Hamming distance of two 64-bit hashes.

    >>> hamming(0b1011, 0b0001)
    2
    """
    return int(popcount(np.array([np.uint64(a) ^ np.uint64(b)], dtype=np.uint64))[0])
