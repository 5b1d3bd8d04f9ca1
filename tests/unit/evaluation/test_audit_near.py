"""Near duplicates confirmed at pixel level: copies (resized, JPEG, cropped, brightened, mirrored) are found,
look-alikes are listed as information and never called leakage."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

from imgclf.evaluation import audit_files
from imgclf.evaluation._near_duplicates import find_matches, fingerprint, thresholds_for
from imgclf.evaluation._pixel_match import match_scores, signature

from .conftest import smooth_image, write


def _jpeg(img: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert(img.mode)


def _stroke(seed: int) -> Image.Image:
    """A 28x28 'digit': one thick slanted stroke on black, slightly different per seed (a look-alike family)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:28, :28].astype(float)
    slope, shift, width = 0.35 + rng.normal(0, 0.06), rng.normal(0, 1.0), 1.8 + rng.normal(0, 0.3)
    wobble = rng.normal(0, 0.8) * np.sin(yy / 28 * np.pi * rng.uniform(1, 2))  # a hand never draws a straight line
    d = np.abs(xx - 14 - shift - slope * (yy - 14) - wobble)
    img = np.clip(255 * (width + 0.5 - d), 0, 255) * ((yy > 4) & (yy < 24))
    return Image.fromarray(img.astype(np.uint8), "L")


COPIES = {
    "resized 0.5x": lambda im: im.resize((im.width // 2, im.height // 2), Image.Resampling.BICUBIC),
    "resized 2x": lambda im: im.resize((im.width * 2, im.height * 2), Image.Resampling.BICUBIC),
    "jpeg q30": lambda im: _jpeg(im, 30),
    "cropped 92%": lambda im: im.crop((3, 1, 3 + round(im.width * 0.92), 1 + round(im.height * 0.92))),
    "brighter, less contrast": lambda im: ImageEnhance.Contrast(ImageEnhance.Brightness(im).enhance(1.1)).enhance(0.9),
}


@pytest.mark.parametrize("how", sorted(COPIES))
def test_each_kind_of_copy_is_confirmed_and_an_unrelated_image_is_not(how: str) -> None:
    original = smooth_image(3, size=96)
    prints = [fingerprint(original), fingerprint(COPIES[how](original)), fingerprint(smooth_image(40, size=96))]
    found = {(m.i, m.j): m for m in find_matches(prints)}
    assert found[(0, 1)].tier == "confirmed" and found[(0, 1)].kind == "near"
    assert found[(0, 1)].score >= thresholds_for(7.0)[0]
    assert all(m.tier != "confirmed" for key, m in found.items() if 2 in key)


def test_a_mirrored_copy_is_its_own_kind() -> None:
    original = smooth_image(5, size=64)
    m = list(find_matches([fingerprint(original), fingerprint(ImageOps.mirror(original))]))
    assert [(x.i, x.j, x.kind, x.tier) for x in m] == [(0, 1, "mirror", "confirmed")]


def test_the_crop_search_recovers_the_window() -> None:
    original = smooth_image(7, size=100)
    crop = original.crop((6, 2, 96, 92))  # a 90% window
    unaligned = np.corrcoef(signature(original).ravel(), signature(crop).ravel())[0, 1]
    score, peak, found = match_scores(signature(original)[None], signature(crop)[None], [100], [90])
    assert score[0] > 0.97 and peak[0] < 0.3
    assert found[0] <= 0.95  # a crop window was found
    assert score[0] - unaligned > 0.02  # alignment matters: unaligned, the crop correlates less


def test_look_alike_digits_are_not_leakage_but_a_copy_among_them_is(tmp_path: Path) -> None:
    train = [write(_stroke(k), tmp_path / "train" / "1" / f"{k}.png") for k in range(12)]
    test = [write(_stroke(100 + k), tmp_path / "test" / "1" / f"{k}.png") for k in range(5)]
    copy = write(_jpeg(_stroke(4), 40), tmp_path / "test" / "1" / "copy.jpg", quality=95)
    r = audit_files({"train": train, "test": test + [copy]})
    assert [(leak.a.path, leak.b.path) for leak in r.leakage] == [(train[4], copy)]
    assert r.n_leaks == 1 and r.leakage[0].kind == "near"
    assert r.n_cross_look_alikes > 0  # similar strokes are listed ...
    assert all(p.tier == "look-alike" for p in r.look_alikes)
    assert all(copy not in (p.a.path, p.b.path) or p.a.path != train[4] for p in r.look_alikes)
    leak_lines = [w for w in r.warnings if w.startswith("LEAKAGE")]
    assert len(leak_lines) == 1 and "1 test image is a resized" in leak_lines[0]  # ... but only the copy is leakage
    assert any("look alike but are not confirmed" in w for w in r.warnings)
    assert r.tiers == {"exact": 0, "confirmed near": 1, "look-alike": r.n_look_alikes}
    assert r.settings["low_entropy_max_peak"] < r.settings["max_peak"]  # the thresholds used are reported


def test_confirming_in_small_chunks_on_threads_finds_the_same_matches_in_the_same_order() -> None:
    from imgclf.evaluation._near_duplicates import _candidates, _confirm

    images = [_stroke(k) for k in range(40)] + [_jpeg(_stroke(k), 40) for k in (3, 17)]  # look-alikes and copies
    prints = [fingerprint(im) for im in images]
    sigs = np.stack([p.signature for p in prints])
    short, ent = np.array([p.short_side for p in prints]), np.array([p.entropy for p in prints])
    serial = [m for c in _candidates(prints, 8, 512) for m in _confirm(sigs, short, ent, *c)]  # one chunk, no pool
    assert len(serial) > 20 and {m.tier for m in serial} == {"confirmed", "look-alike"}
    assert list(find_matches(prints, chunk=3)) == serial  # dozens of chunks, confirmed on a thread pool
