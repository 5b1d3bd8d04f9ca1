"""Perceptual hashes (dHash and pHash, 64 bits each) and a blocked all-pairs search for near duplicates.

dHash compares neighbouring pixels of a 9x8 grey thumbnail; pHash thresholds the 8x8 lowest frequencies of the
DCT of a 32x32 grey thumbnail at their median. The near-duplicate search takes pairs whose pHashes lie within
a few bits (resizing and JPEG re-encoding move a pHash by 0-8 bits, unrelated photos by ~32) and confirms each
with the correlation of 16x16 grey thumbnails. On tiny low-detail images (28x28 digits) look-alikes written by
different people pass both tests, so near duplicates there include look-alikes, not only copies. dHash is
kept for callers; on low-detail images JPEG noise flips many of its bits.
"""

from __future__ import annotations

from collections.abc import Iterator
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


THUMB = 16  # side of the grey thumbnail kept per image for confirming candidate pairs


def thumbnail(image: Any) -> np.ndarray:
    """A 16x16 grey uint8 thumbnail ``(16, 16)`` (box filter), kept per image to confirm candidate pairs."""
    from PIL import Image

    return np.asarray(image.convert("L").resize((THUMB, THUMB), Image.Resampling.BOX), dtype=np.uint8)


def correlation(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pearson correlation of thumbnails ``a[k]`` and ``b[k]`` ``(K, 16, 16)``, and whether both of a pair are
    flat (their correlation is then reported as 0)."""
    x = a.reshape(len(a), -1).astype(np.float64)
    y = b.reshape(len(b), -1).astype(np.float64)
    x -= x.mean(axis=1, keepdims=True)
    y -= y.mean(axis=1, keepdims=True)
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    flat_x, flat_y = nx < 1e-6, ny < 1e-6
    corr = np.einsum("ij,ij->i", x, y) / np.where(flat_x | flat_y, 1.0, nx * ny)
    return np.where(flat_x | flat_y, 0.0, corr), flat_x & flat_y


def close_pairs(
    p_hashes: np.ndarray,
    thumbs: np.ndarray,
    *,
    max_bits: int = 8,
    min_correlation: float = 0.95,
    block: int = 512,
) -> Iterator[tuple[int, int, int]]:
    """Yield ``(i, j, bits)`` for every pair ``i < j`` of near-duplicate images: pHashes within ``max_bits``
    bits and 16x16 grey ``thumbs`` ``(N, 16, 16)`` correlating at least ``min_correlation`` (two flat images
    match when their mean grey levels are within 8 levels). Blocked, so memory stays ``O(block * N)``.

    >>> t = np.zeros((3, 16, 16), np.uint8); t[:2, :8] = 200; t[2, :, :8] = 200
    >>> list(close_pairs(np.array([0, 1, 255], np.uint64), t))
    [(0, 1, 1)]
    """
    n = len(p_hashes)
    means = thumbs.reshape(n, -1).mean(axis=1)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        bits = popcount(p_hashes[rows, None] ^ p_hashes[None, start:])  # (B, N - start): only columns j >= start
        r, c = np.nonzero(bits <= max_bits)
        keep = c + start > rows[r]
        r, c = r[keep], c[keep]
        i, j = rows[r], c + start
        if len(i) == 0:
            continue
        corr, both_flat = correlation(thumbs[i], thumbs[j])
        ok = (corr >= min_correlation) | (both_flat & (np.abs(means[i] - means[j]) <= 8))
        for a, b, d in zip(i[ok], j[ok], bits[r[ok], c[ok]], strict=True):
            yield int(a), int(b), int(d)
