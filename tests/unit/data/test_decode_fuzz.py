"""Mutation fuzz of the one image decoder: valid seeds in every accepted format, bytes flipped, set, cut, inserted
and repeated by hypothesis. Only our documented error may come out (BadImageError, a DataError), and no single
case may take over 2 s of CPU (a robustness bound on hostile input, measured per case on the decoding thread, so
that a busy shared machine does not count; not a speed benchmark).

The fast suite runs a few hundred cases; the slow suite 20,000.
"""

from __future__ import annotations

import io
import time
from collections import Counter
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgclf import data as D
from imgclf.errors import DataError

CASE_LIMIT_S = 2.0


def _save(image: Image.Image, fmt: str, **options: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **options)
    return buf.getvalue()


def _seeds() -> dict[str, bytes]:
    """Small valid files covering each accepted format and its common variants."""
    rng = np.random.default_rng(0)
    rgb = Image.fromarray(rng.integers(0, 256, size=(24, 32, 3), dtype=np.uint8))
    rgba = rgb.convert("RGBA")
    gray16 = Image.fromarray(np.arange(24 * 32, dtype=np.uint16).reshape(24, 32) * 80)
    exif = Image.Exif()
    exif[0x0112] = 6
    frames = [Image.new("P", (16, 16), i) for i in range(3)]
    seeds = {
        "jpeg": _save(rgb, "JPEG", quality=80),
        "jpeg-progressive-exif": _save(rgb, "JPEG", progressive=True, exif=exif),
        "jpeg-gray": _save(rgb.convert("L"), "JPEG"),
        "jpeg-cmyk": _save(rgb.convert("CMYK"), "JPEG"),
        "png": _save(rgb, "PNG"),
        "png-rgba": _save(rgba, "PNG"),
        "png-palette": _save(rgb.convert("P"), "PNG", transparency=0),
        "png-16bit": _save(gray16, "PNG"),
        "webp-lossy": _save(rgb, "WEBP", quality=70),
        "webp-lossless": _save(rgba, "WEBP", lossless=True),
        "bmp": _save(rgb, "BMP"),
        "bmp-palette": _save(rgb.convert("P"), "BMP"),
        "gif": _save(rgb.convert("P"), "GIF"),
        "gif-animated": _save(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0),
        "tiff": _save(rgb, "TIFF"),
        "tiff-lzw": _save(rgb, "TIFF", compression="tiff_lzw"),
        "tiff-deflate-rgba": _save(rgba, "TIFF", compression="tiff_adobe_deflate"),
        "tiff-16bit": _save(gray16, "TIFF"),
    }
    for name, blob in seeds.items():  # every seed is valid to start with
        assert D.open_image(blob, name=name).mode == "RGB", name
    return seeds


SEEDS = _seeds()
FORMATS_COVERED = {D.probe_image(b).format for b in SEEDS.values()}

_position = st.one_of(st.integers(8, 255), st.integers(0, 1 << 16))  # headers (past the magic) first, anywhere too
_mutation = st.tuples(st.sampled_from(["flip", "set", "cut", "insert", "truncate", "repeat"]), _position,
                      st.sampled_from([0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF]) | st.integers(0, 255),
                      st.integers(1, 64))  # fmt: skip


def mutate(blob: bytes, mutations: list[tuple[str, int, int, int]]) -> bytes:
    data = bytearray(blob)
    for op, pos, value, length in mutations:
        if not data:
            break
        at = pos % len(data)
        if op == "flip":
            data[at] ^= 1 << (value % 8)
        elif op == "set":
            data[at : at + length % 5 + 1] = bytes([value]) * len(data[at : at + length % 5 + 1])
        elif op == "cut":
            del data[at : at + length]
        elif op == "insert":
            data[at:at] = bytes([value]) * length
        elif op == "truncate":
            del data[at:]
        else:  # repeat a slice (duplicated chunks, markers, frames)
            data[at:at] = data[at : at + length]
    return bytes(data)


def fuzz(cases: int) -> dict[str, Any]:
    stats: dict[str, Any] = {"cases": 0, "slowest_s": 0.0, "slowest": "", "reasons": Counter(), "decoded": 0}

    @settings(max_examples=cases, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))  # fmt: skip
    @given(seed=st.sampled_from(sorted(SEEDS)), mutations=st.lists(_mutation, min_size=1, max_size=6))
    def case(seed: str, mutations: list[tuple[str, int, int, int]]) -> None:
        blob = mutate(SEEDS[seed], mutations)
        start = time.thread_time()
        try:
            image = D.open_image(blob, name=f"fuzz-{seed}")
        except D.BadImageError as exc:  # the one documented error, naming the file and a reason
            assert isinstance(exc, DataError) and exc.path == f"fuzz-{seed}" and exc.reason
            stats["reasons"][exc.reason.split(" (")[0].split(":")[0]] += 1
        else:
            assert image.mode == "RGB" and image.width > 0 and image.height > 0
            stats["decoded"] += 1
        seconds = time.thread_time() - start
        stats["cases"] += 1
        if seconds > stats["slowest_s"]:
            stats["slowest_s"], stats["slowest"] = seconds, f"{seed} {mutations}"
        assert seconds < CASE_LIMIT_S, f"{seed} mutated by {mutations} took {seconds:.2f} s of CPU to decode"

    case()
    return stats


def _report(stats: dict[str, Any]) -> None:
    print(f"\n{stats['cases']} cases: {stats['decoded']} decoded, slowest {stats['slowest_s'] * 1000:.0f} ms "
          f"({stats['slowest']}); errors: {dict(stats['reasons'].most_common(8))}")  # fmt: skip


def test_seeds_cover_every_accepted_format() -> None:
    assert set(D.IMAGE_FORMATS) == FORMATS_COVERED


def test_decoder_fuzz_fast() -> None:
    stats = fuzz(300)
    _report(stats)
    assert stats["cases"] >= 300 and stats["decoded"] > 0 and sum(stats["reasons"].values()) > 0


@pytest.mark.slow
def test_decoder_fuzz_20k_cases() -> None:
    stats = fuzz(20_000)
    _report(stats)
    assert stats["cases"] >= 20_000
