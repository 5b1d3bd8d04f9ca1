"""Pixel-level confirmation of near-duplicate candidates: aligned, size-normalised grey comparison.

Each image keeps a 32x32 grey *signature* (box filter down, bilinear up), its short side in pixels and the
entropy of its grey histogram. A candidate pair is compared at the resolution of the smaller image (both
signatures resampled to ``r x r``, ``r = min(short sides, 32)``), so a half-size copy is compared with the
detail it still has, not with detail it lost. Alignment searches the crops a copy may have suffered (a window of
89-100% of the other image's side at any position, on a lattice of 1% in scale and half a signature pixel in
offset; either image may be the crop) and, for mirrored candidates, the mirror image. Two figures come out:

- ``score``: the Pearson correlation of the aligned grey levels (brightness and contrast shifts do not matter);
- ``peak``: the largest absolute residual after fitting grey levels, as a fraction of the grey range. A copy
  differs from its original a little everywhere (resampling, JPEG noise); a look-alike, e.g. the same digit
  written by two people, differs a lot where one stroke lies and the other does not.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any

import numpy as np

SIDE = 32  # signature side in pixels
MIN_CROP = 0.89  # smallest crop window searched (fraction of the other image's side)
SCALE_STEP, OFFSET_STEP = 0.01, 1 / 64  # the window lattice: 1% of scale, half a signature pixel of offset
SEARCH = 16  # resolution of the coarse crop search; the best window is refined at the pair's own resolution


def signature(image: Any) -> np.ndarray:
    """A 32x32 grey uint8 signature ``(32, 32)`` of a PIL image (box filter down, bilinear up)."""
    from PIL import Image

    grey = image.convert("L")
    method = Image.Resampling.BILINEAR if min(grey.size) < SIDE else Image.Resampling.BOX
    return np.asarray(grey.resize((SIDE, SIDE), method), dtype=np.uint8)


def grey_entropy(image: Any) -> float:
    """Shannon entropy (bits) of the 256-level grey histogram: ~1-2 for digits on a flat ground, ~7 for photos."""
    hist = np.asarray(image.convert("L").histogram(), dtype=np.float64)
    p = hist[hist > 0] / hist.sum()
    return float(-(p * np.log2(p)).sum())


def _interp_batch(n_out: int, start: np.ndarray, width: np.ndarray, n_in: int = SIDE) -> np.ndarray:
    """Linear-interpolation matrices ``(W, n_out, n_in)`` sampling windows ``[start, start + width]`` (fractions of
    the whole signal) of ``n_in`` pixels at ``n_out`` pixel centres, averaged over 4 sub-samples per output pixel
    so that shrinking behaves like an area resize."""
    sub = 4
    k = (np.arange(n_out)[:, None] + (np.arange(sub)[None, :] + 0.5) / sub).ravel() / n_out  # (n_out * sub,)
    u = start[:, None] + width[:, None] * k[None, :]  # (W, n_out * sub) positions in 0..1
    x = np.clip(u * n_in - 0.5, 0, n_in - 1)
    lo = np.floor(x).astype(np.int64)
    hi = np.minimum(lo + 1, n_in - 1)
    f = x - lo
    pix = np.arange(n_in)
    m = (1 - f)[..., None] * (lo[..., None] == pix) + f[..., None] * (hi[..., None] == pix)  # (W, n_out*sub, n_in)
    return m.reshape(len(start), n_out, sub, n_in).mean(axis=2)


@lru_cache(maxsize=1)
def _lattice() -> tuple[np.ndarray, np.ndarray, dict[tuple[int, int], int]]:
    """The 1-D crop windows searched: integer coordinates ``(W, 2)`` (scale steps below 1, offset steps), the
    same as fractions ``(W, 2)`` (scale, offset), and a lookup from coordinates to window index. Window 0 is the
    whole image."""
    coords = []
    for ci in range(int(round((1 - MIN_CROP) / SCALE_STEP)) + 1):
        free = ci * SCALE_STEP
        coords += [(ci, ti) for ti in range(int(np.floor(free / OFFSET_STEP + 1e-9)) + 1)]
    xy = np.array(coords)
    frac = np.stack([1 - xy[:, 0] * SCALE_STEP, xy[:, 1] * OFFSET_STEP], axis=1)
    return xy, frac, {c: k for k, c in enumerate(coords)}


@cache
def _mats(n_out: int) -> np.ndarray:
    """Sampling matrices ``(W, n_out, 32)`` of every lattice window at ``n_out`` pixels."""
    _, frac, _ = _lattice()
    return _interp_batch(n_out, frac[:, 1], frac[:, 0]).astype(np.float32)


@lru_cache(maxsize=1)
def _coarse_hypotheses() -> np.ndarray:
    """2-D hypotheses ``(H, 2)`` (row window, column window) of equal scale for the coarse search: every other
    scale step and every other offset step (plus the last offset, so corner crops are reached)."""
    xy, _, _ = _lattice()
    last = {c: max(t for cc, t in xy.tolist() if cc == c) for c in set(xy[:, 0].tolist())}
    keep = [k for k, (c, t) in enumerate(xy.tolist()) if c % 2 == 0 and (t % 2 == 0 or t == last[c])]
    return np.array([(i, j) for i in keep for j in keep if xy[i, 0] == xy[j, 0]])


def _neighbours(chosen: np.ndarray) -> np.ndarray:
    """Per pair, the 2-D hypotheses one lattice step around ``chosen`` ``(P, 2)`` in scale and both offsets,
    ``(P, 27, 2)``; steps off the lattice fall back to the nearest valid offset."""
    xy, _, index = _lattice()
    top = int(xy[:, 0].max())
    out = np.empty((len(chosen), 27, 2), dtype=np.int64)
    for p, (i, j) in enumerate(chosen.tolist()):
        (ci, ti), (_, tj) = xy[i].tolist(), xy[j].tolist()
        k = 0
        for dc in (-1, 0, 1):
            c = min(max(ci + dc, 0), top)
            limit = int(np.floor(c * SCALE_STEP / OFFSET_STEP + 1e-9))
            for dy in (-1, 0, 1):
                for dx in (-1, 0, 1):
                    out[p, k] = (index[(c, min(max(ti + dy, 0), limit))], index[(c, min(max(tj + dx, 0), limit))])
                    k += 1
    return out


def _corr(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation over the last two axes of ``x`` and ``y`` (broadcast); 0 where either is flat."""
    x = x - x.mean(axis=(-2, -1), keepdims=True)
    y = y - y.mean(axis=(-2, -1), keepdims=True)
    nx = np.sqrt((x * x).sum(axis=(-2, -1)))
    ny = np.sqrt((y * y).sum(axis=(-2, -1)))
    ok = (nx > 1e-6) & (ny > 1e-6)
    return np.where(ok, (x * y).sum(axis=(-2, -1)) / np.where(ok, nx * ny, 1.0), 0.0)


def _search(big: np.ndarray, small: np.ndarray, hyps: np.ndarray, r: int) -> tuple[np.ndarray, np.ndarray]:
    """For each pair, the window (row, column) of ``big`` ``(P, 32, 32)`` best matching the whole of ``small`` at
    ``r x r`` pixels, among ``hyps``: ``(H, 2)`` shared by all pairs or ``(P, H, 2)`` per pair. Returns the
    chosen windows ``(P, 2)`` and their correlations ``(P,)``."""
    mats = _mats(r)  # (W, r, 32)
    target = mats[0] @ small @ mats[0].T  # (P, r, r)
    target = target - target.mean(axis=(1, 2), keepdims=True)
    t_norm = np.sqrt(np.einsum("pij,pij->p", target, target))
    target = target / np.maximum(t_norm, 1e-6)[:, None, None]  # zero mean, unit norm: one dot per hypothesis
    n = r * r
    best = np.full(len(big), -2.0, dtype=big.dtype)
    chosen = np.zeros((len(big), 2), dtype=np.int64)
    cols: dict[int, np.ndarray] = {}
    for h in range(hyps.shape[-2]):
        if hyps.ndim == 3:
            pick = hyps[:, h]  # (P, 2)
            cand = mats[pick[:, 0]] @ big @ mats[pick[:, 1]].transpose(0, 2, 1)  # (P, r, r)
        else:
            i, j = hyps[h].tolist()
            if j not in cols:
                cols[j] = big @ mats[j].T  # (P, 32, r)
            cand = mats[i] @ cols[j]
            pick = np.broadcast_to(hyps[h], (len(big), 2))
        total = cand.sum(axis=(1, 2))
        var = np.einsum("pij,pij->p", cand, cand) - total * total / n
        c = np.einsum("pij,pij->p", cand, target) / np.sqrt(np.maximum(var, 1e-6))
        c = np.where((var > 1e-6) & (t_norm > 1e-6), c, 0.0)
        better = c > best
        best = np.where(better, c, best)
        chosen[better] = pick[better]
    return chosen, best


def residual_peak(aligned: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Largest absolute residual after the least-squares grey-level fit ``target ~ g * aligned + o``, as a
    fraction of ``target``'s grey range (1st to 99th percentile), ``(P,)``."""
    x = aligned.reshape(len(aligned), -1)
    y = target.reshape(len(target), -1)
    xm, ym = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    g = ((x - xm) * (y - ym)).sum(1, keepdims=True) / np.maximum(((x - xm) ** 2).sum(1, keepdims=True), 1e-9)
    res = np.abs(y - (ym + g * (x - xm)))
    lo, hi = np.percentile(y, [1, 99], axis=1)
    return res.max(1) / np.maximum(hi - lo, 1.0)


def _resolution(short_a: np.ndarray, short_b: np.ndarray) -> np.ndarray:
    return np.clip(np.minimum(short_a, short_b), 8, SIDE).astype(np.int64)


def match_scores(
    sig_a: np.ndarray, sig_b: np.ndarray, short_a: Any, short_b: Any, *, mirror: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aligned correlation of image pairs ``(P,)``, the residual peak (see :func:`residual_peak`) ``(P,)`` and the
    crop found ``(P,)`` (fraction of the larger view's side; 1.0 when none).

    ``sig_a``/``sig_b`` are signatures ``(P, 32, 32)``; ``short_a``/``short_b`` the images' short sides in
    pixels. Both directions are tried (either image may be the crop); ``mirror`` flips ``b`` first.

    >>> s = np.random.default_rng(0).integers(0, 255, (1, 32, 32)).astype(np.uint8)
    >>> float(match_scores(s, s, [32], [32])[0][0]) > 0.999
    True
    """
    a = np.asarray(sig_a, dtype=np.float32)
    b = np.asarray(sig_b, dtype=np.float32)
    if mirror:
        b = b[:, :, ::-1]
    r_all = _resolution(np.asarray(short_a), np.asarray(short_b))
    if len(a) == 0:
        return np.zeros(0), np.zeros(0), np.zeros(0)
    # Coarse search both ways (either image may be the crop of the other); refine the better way only.
    (win_ab, s_ab), (win_ba, s_ba) = (_search(x, y, _coarse_hypotheses(), SEARCH) for x, y in ((a, b), (b, a)))
    swap = s_ba > s_ab
    big = np.where(swap[:, None, None], b, a)
    small = np.where(swap[:, None, None], a, b)
    coarse = np.where(swap[:, None], win_ba, win_ab)
    scores, peaks, crops = np.zeros(len(a)), np.zeros(len(a)), np.ones(len(a))
    _, frac, _ = _lattice()
    for r in np.unique(r_all).tolist():
        sel = np.nonzero(r_all == r)[0]
        win, s = _search(big[sel], small[sel], _neighbours(coarse[sel]), r)
        mats = _mats(r)
        aligned = mats[win[:, 0]] @ big[sel] @ mats[win[:, 1]].transpose(0, 2, 1)  # (P, r, r)
        target = mats[0] @ small[sel] @ mats[0].T
        scores[sel] = s
        peaks[sel] = residual_peak(aligned.astype(np.float64), target.astype(np.float64))
        crops[sel] = frac[win[:, 0], 0]
    return scores, peaks, crops
