"""Near duplicates in two steps: perceptual-hash candidates, then confirmation at pixel level.

Candidates are pairs whose 64-bit pHashes lie within ``max_bits`` bits, directly (resized, re-encoded,
brightened copies move a pHash by 0-6 bits), against the mirror image's pHash (mirrored copies), or against
the pHash of a 94% window of the other image at its centre or a corner (cropped copies; a 90% crop moves the
whole-image pHash by 10-20 bits, the nearest window's by about 6). Each candidate is then aligned and compared
at the resolution of the smaller image (:mod:`._pixel_match`) and lands in one tier:

- ``confirmed``: a copy. The aligned correlation reaches ``min_score`` and no pixel differs by more than
  ``max_peak`` of the grey range. Images with little content (grey-histogram entropy below
  ``LOW_ENTROPY_BITS``, e.g. digits on a flat ground) need the stricter ``low_entropy`` thresholds: different
  people's "1"s correlate at 0.99 and only the residual peak tells them apart.
- ``look-alike``: a candidate that correlates at least ``LOOK_ALIKE_SCORE`` but is not confirmed; listed for
  information, never as leakage.

The thresholds were chosen from planted copies and clean pairs of MNIST, CIFAR-10 and hymenoptera
(``benchmarks/audit_precision.py``; figures in ``benchmarks/README.md``).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from imgclf.evaluation._imagehash import phash, popcount
from imgclf.evaluation._pixel_match import grey_entropy, match_scores, signature

LOW_ENTROPY_BITS = 4.0  # grey-histogram entropy below which an image counts as low-content (digits, line art)
THRESHOLDS = {  # (min aligned correlation, max residual peak as a fraction of the grey range)
    "default": (0.95, 0.30),
    "low_entropy": (0.97, 0.22),
}
LOOK_ALIKE_SCORE = 0.90  # unconfirmed candidates correlating at least this much are listed as look-alikes
WINDOW = 0.94  # side of the windows hashed for cropped copies
_CORNERS = ((0.5, 0.5), (0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (1.0, 1.0))


@dataclass(frozen=True)
class Fingerprint:
    """What the near-duplicate search keeps per image: pHash, mirror pHash, window pHashes ``(5,)``, the 32x32
    grey signature, the short side in pixels and the grey-histogram entropy (bits)."""

    phash: np.uint64
    mirror: np.uint64
    windows: np.ndarray
    signature: np.ndarray
    short_side: int
    entropy: float


def fingerprint(image: Any) -> Fingerprint:
    """The :class:`Fingerprint` of a PIL image (any mode)."""
    from PIL import Image, ImageOps

    grey = image.convert("L")
    w, h = grey.size
    method = Image.Resampling.BILINEAR if min(w, h) < 32 else Image.Resampling.BOX
    wins = []
    for fx, fy in _CORNERS:
        x, y = (w - w * WINDOW) * fx, (h - h * WINDOW) * fy
        wins.append(phash(grey.resize((32, 32), method, box=(x, y, x + w * WINDOW, y + h * WINDOW))))
    return Fingerprint(
        phash=phash(grey),
        mirror=phash(ImageOps.mirror(grey)),
        windows=np.array(wins, dtype=np.uint64),
        signature=signature(grey),
        short_side=min(w, h),
        entropy=grey_entropy(grey),
    )


@dataclass(frozen=True)
class Match:
    """One candidate pair ``i < j`` after confirmation: ``kind`` is ``near`` or ``mirror``, ``tier`` is
    ``confirmed`` or ``look-alike``; ``score`` the aligned correlation, ``peak`` the residual peak, ``crop`` the
    crop window found (1.0 when none), ``bits`` the pHash distance that made it a candidate."""

    i: int
    j: int
    bits: int
    kind: str
    tier: str
    score: float
    peak: float
    crop: float


def thresholds_for(entropy: float) -> tuple[float, float]:
    """``(min_score, max_peak)`` for a pair whose less detailed image has grey-histogram ``entropy`` bits."""
    return THRESHOLDS["low_entropy" if entropy < LOW_ENTROPY_BITS else "default"]


def _candidates(prints: list[Fingerprint], max_bits: int, block: int) -> Iterator[tuple[np.ndarray, ...]]:
    """Blocks of candidate pairs ``(i, j, bits, mirror)`` with ``i < j``: the smaller of the direct and the
    window distances, or the mirror distance when that is the only one within ``max_bits``."""
    n = len(prints)
    h = np.array([p.phash for p in prints], dtype=np.uint64)
    m = np.array([p.mirror for p in prints], dtype=np.uint64)
    w = np.stack([p.windows for p in prints])  # (N, 5)
    for start in range(0, n, block):
        rows = np.arange(start, min(start + block, n))
        cols = slice(start, n)
        direct = popcount(h[rows, None] ^ h[None, cols]).astype(np.int64)  # (B, N - start)
        for k in range(w.shape[1]):  # either image may be the crop of the other
            direct = np.minimum(direct, popcount(h[rows, None] ^ w[None, cols, k]))
            direct = np.minimum(direct, popcount(w[rows, None, k] ^ h[None, cols]))
        mirrored = popcount(m[rows, None] ^ h[None, cols]).astype(np.int64)
        upper = np.arange(start, n)[None, :] > rows[:, None]
        for dist, is_mirror in ((direct, False), (mirrored, True)):
            ok = (dist <= max_bits) & upper
            if is_mirror:
                ok &= direct > max_bits  # a pair close both ways is compared directly (and mirrored if need be)
            r, c = np.nonzero(ok)
            if len(r):
                yield rows[r], c + start, dist[r, c], np.full(len(r), is_mirror)


def find_matches(
    prints: list[Fingerprint], *, max_bits: int = 8, block: int = 512, chunk: int = 1024
) -> Iterator[Match]:
    """Every candidate pair (see the module docstring) that is a confirmed copy or a look-alike, in blocks.

    >>> from PIL import Image
    >>> imgs = [Image.effect_mandelbrot((64, 64), (-2, -1.5, 1, 1.5), 50 + k) for k in (0, 0)]
    >>> [(m.i, m.j, m.tier) for m in find_matches([fingerprint(im) for im in imgs])]
    [(0, 1, 'confirmed')]
    """
    sigs = np.stack([p.signature for p in prints]) if prints else np.zeros((0, 32, 32), np.uint8)
    short = np.array([p.short_side for p in prints])
    ent = np.array([p.entropy for p in prints])
    chunks = (
        tuple(x[s : s + chunk] for x in block_)
        for block_ in _candidates(prints, max_bits, block)
        for s in range(0, len(block_[0]), chunk)
    )  # fmt: skip
    # numpy releases the GIL in the alignment search: chunks are confirmed on every core, yielded in order
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for matches in pool.map(lambda c: list(_confirm(sigs, short, ent, *c)), chunks):
            yield from matches


def _confirm(
    sigs: np.ndarray,
    short: np.ndarray,
    ent: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    bits: np.ndarray,
    mir: np.ndarray,
) -> Iterator[Match]:
    score, peak, crop = match_scores(sigs[i], sigs[j], short[i], short[j])
    kind = np.where(mir, "mirror", "near").astype(object)
    flip = np.nonzero(mir)[0]
    if len(flip):  # mirror candidates: compare with the mirror image
        score[flip], peak[flip], crop[flip] = match_scores(
            sigs[i[flip]], sigs[j[flip]], short[i[flip]], short[j[flip]], mirror=True
        )
    low = np.minimum(ent[i], ent[j]) < LOW_ENTROPY_BITS
    min_score = np.where(low, THRESHOLDS["low_entropy"][0], THRESHOLDS["default"][0])
    max_peak = np.where(low, THRESHOLDS["low_entropy"][1], THRESHOLDS["default"][1])
    confirmed = (score >= min_score) & (peak <= max_peak)
    for k in np.nonzero(confirmed | (score >= LOOK_ALIKE_SCORE))[0].tolist():
        yield Match(
            int(i[k]),
            int(j[k]),
            int(bits[k]),
            str(kind[k]),
            "confirmed" if confirmed[k] else "look-alike",
            float(score[k]),
            float(peak[k]),
            float(crop[k]),
        )
