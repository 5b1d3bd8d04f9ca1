"""Upload decoding: through imgclf.data's safe opener, refusals mapped to HTTP statuses with reasons."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib

import pytest
from PIL import Image

from imgclf.serve import UploadError, decode_upload
from imgclf.serve._decode import probe_upload

from .conftest import png_bytes


def huge_png_header(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims ``width x height`` pixels (the pixel data is a few bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(  # noqa: E731
        ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)  # fmt: skip
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def test_decodes_to_upright_rgb_with_hash_and_size() -> None:
    data = png_bytes(1, (40, 32), mode="RGBA")
    img = decode_upload(data, max_pixels=10_000)
    assert img.image.mode == "RGB" and (img.width, img.height) == (40, 32)
    assert img.sha256 == hashlib.sha256(data).hexdigest() and img.nbytes == len(data)
    # EXIF orientation 6 (rotate 90): a 40x32 stored JPEG is shown 32x40
    buf = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.new("RGB", (40, 32), "red").save(buf, format="JPEG", exif=exif)
    assert decode_upload(buf.getvalue(), max_pixels=10_000).image.size == (32, 40)


@pytest.mark.parametrize(
    ("data", "status", "code", "reason"),
    [
        (b"", 422, "empty_image", "empty file"),
        (b"just some text, not pixels", 415, "not_an_image", "not an image"),
        (png_bytes(2)[:200], 422, "truncated_image", "truncated"),
        (huge_png_header(20_000, 20_000), 413, "too_many_pixels", "pixels > limit"),  # Pillow's bomb check
        (huge_png_header(5_000, 5_000), 413, "too_many_pixels", "25,000,000 pixels > limit of 1,000,000"),
        (huge_png_header(1, 300_000), 422, "extreme_aspect_ratio", "aspect ratio beyond 100:1"),
    ],
)
def test_refusals_carry_status_code_and_reason(data: bytes, status: int, code: str, reason: str) -> None:
    with pytest.raises(UploadError) as info:
        decode_upload(data, max_pixels=1_000_000, name="up.png")
    assert (info.value.status, info.value.code) == (status, code)
    assert reason in info.value.reason and info.value.reason.startswith("up.png: ")


@pytest.mark.parametrize(("width", "height"), [(10_000, 9_000), (10_000, 5_200), (20_000, 20_000)])
def test_the_configured_pixel_limit_is_the_one_named_for_any_size(width: int, height: int) -> None:
    # 90 MP lies between Pillow's bomb warning level (89.5 MP) and its hard limit (179 MP), 52 MP below both and
    # 400 MP above both: the server's own limit is the one reported each time, never Pillow's.
    with pytest.raises(UploadError) as info:
        decode_upload(huge_png_header(width, height), max_pixels=40_000_000, name="up.png")
    assert (info.value.status, info.value.code) == (413, "too_many_pixels")
    assert info.value.reason.endswith(f"{width * height:,} pixels > limit of 40,000,000")
    assert "decompression bomb" not in info.value.reason and "89,478,485" not in info.value.reason


def test_a_limit_above_pillows_warning_level_is_enforced_instead_of_it() -> None:
    # 90 MP with --max-megapixels 100: the header passes (Pillow's warning level does not refuse it first)
    info = probe_upload(huge_png_header(10_000, 9_000), max_pixels=100_000_000)
    assert (info.width, info.height) == (10_000, 9_000)
