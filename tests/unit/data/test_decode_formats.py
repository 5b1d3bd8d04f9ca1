"""The decoder's format allow-list, bytes input, and Pillow failures outside OSError (NotImplementedError from DDS,
RuntimeError from AVIF) reported as BadImageError naming the file, at train-time scans too."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import pytest
from PIL import Image

from imgclf import data as D
from imgclf.errors import ConfigError


def encoded(fmt: str, size: tuple[int, int] = (16, 12), mode: str = "RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 200).save(buf, format=fmt)
    return buf.getvalue()


def dds_unimplemented() -> bytes:
    """A DDS whose pixel format is a FourCC Pillow does not implement (Pillow raises NotImplementedError)."""
    data = bytearray(encoded("DDS"))
    data[80:88] = struct.pack("<I", 0x4) + b"ZZZZ"  # DDPF_FOURCC, unknown code
    return bytes(data)


def avif_broken() -> bytes:
    """An AVIF whose coded planes are scrambled (libavif fails, Pillow raises RuntimeError)."""
    data = bytearray(encoded("AVIF"))
    for i in range(len(data) - 40, len(data)):
        data[i] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize(("fmt", "mode"), [("DDS", "RGB"), ("AVIF", "RGB"), ("EPS", "RGB"), ("XBM", "1"),
                                           ("ICNS", "RGB"), ("ICO", "RGB"), ("PPM", "RGB"), ("JPEG2000", "RGB"),
                                           ("QOI", "RGB"), ("SGI", "RGB")])  # fmt: skip
def test_formats_outside_the_allow_list_are_refused_unparsed(tmp_path: Path, fmt: str, mode: str) -> None:
    path = tmp_path / "photo.jpg"  # the extension lies, as it does in scraped datasets
    path.write_bytes(encoded(fmt, mode=mode))
    for call in (D.open_image, D.check_image):
        with pytest.raises(D.BadImageError) as info:
            call(path)
        assert info.value.path == str(path) and f"format {fmt} is not accepted" in info.value.reason
        assert "JPEG, PNG, WEBP, BMP, GIF, TIFF" in str(info.value)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF"])
def test_allowed_formats_decode_from_paths_and_bytes_alike(tmp_path: Path, fmt: str) -> None:
    blob = encoded(fmt)
    (tmp_path / "x").write_bytes(blob)
    from_path, from_bytes = D.open_image(tmp_path / "x"), D.open_image(blob, name="upload")
    assert from_path.mode == from_bytes.mode == "RGB" and from_path.size == from_bytes.size == (16, 12)
    assert from_path.tobytes() == from_bytes.tobytes()
    assert D.probe_image(blob) == D.ImageInfo(fmt, 16, 12)


@pytest.mark.parametrize(("blob", "fmt", "what"), [(dds_unimplemented(), "DDS", "NotImplementedError"),
                                                    (avif_broken(), "AVIF", "RuntimeError")])  # fmt: skip
def test_every_pillow_failure_becomes_a_bad_image_error(blob: bytes, fmt: str, what: str) -> None:
    # Even when such a format is allowed on purpose, Pillow's NotImplementedError / RuntimeError come out as ours.
    with pytest.raises(D.BadImageError) as info:
        D.open_image(blob, formats=[fmt], name="odd.bin")
    assert info.value.path == "odd.bin" and what in info.value.reason


def test_a_train_time_scan_skips_such_files_with_a_warning(tmp_path: Path) -> None:
    for label in ("a", "b"):
        (tmp_path / label).mkdir()
        for i in range(4):
            (tmp_path / label / f"{i}.png").write_bytes(encoded("PNG", (8 + i, 8)))
    (tmp_path / "a" / "texture.png").write_bytes(dds_unimplemented())  # a DDS named .png
    (tmp_path / "b" / "scan.jpg").write_bytes(encoded("EPS"))  # would call Ghostscript if parsed
    with pytest.warns(D.DataWarning) as caught:
        splits = D.load_source(tmp_path, seed=0)
    messages = " | ".join(str(w.message) for w in caught)
    assert "texture.png: format DDS is not accepted" in messages and "scan.jpg: format EPS" in messages
    skipped = {Path(p).name for p, _ in splits.skipped}
    assert skipped == {"texture.png", "scan.jpg"}
    assert len(splits.train) + len(splits.val) + len(splits.test) == 8


def test_format_names_are_validated_and_aliased() -> None:
    assert D.image_formats(["jpg", "Tif", "png", "PNG"]) == ("JPEG", "TIFF", "PNG")
    assert D.image_formats(None) == D.IMAGE_FORMATS == ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
    with pytest.raises(ConfigError, match="unknown image format 'HEIC'"):
        D.image_formats(["HEIC"])
    with pytest.raises(ConfigError, match="empty"):
        D.image_formats([])
