"""Files that real datasets contain: broken ones and awkward-but-valid ones, written into tmp_path."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

RED = (255, 0, 0)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(width: int = 20_000, height: int = 10_000) -> bytes:
    """A ~60-byte PNG whose header declares ``width x height`` 8-bit grayscale pixels."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + _png_chunk(b"IEND", b""))  # fmt: skip


def noise(h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def write_bad(folder: Path) -> dict[str, Path]:
    """Unreadable files: truncated JPEG, zero bytes, text named .jpg, a PNG declaring 200 megapixels."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / n for k, n in (("truncated", "truncated.jpg"), ("empty", "empty.jpg"),
                                        ("text", "text.jpg"), ("bomb", "bomb.png"))}  # fmt: skip
    Image.fromarray(noise(64, 64)).save(folder / "full.jpg", quality=90)
    data = (folder / "full.jpg").read_bytes()
    (folder / "full.jpg").unlink()
    paths["truncated"].write_bytes(data[: len(data) // 2])
    paths["empty"].write_bytes(b"")
    paths["text"].write_text("name,label\nthis is not a picture\n")
    paths["bomb"].write_bytes(bomb_png())
    return paths


def write_awkward(folder: Path) -> dict[str, Path]:
    """Valid files that naive loaders get wrong: CMYK JPEG, 16-bit PNG, palette PNG with transparency,
    EXIF-rotated JPEG (stored 40x20 with a red top-left block, orientation 6 = rotate 90 degrees clockwise)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {k: folder / n for k, n in (("cmyk", "cmyk.jpg"), ("gray16", "gray16.png"), ("palette", "palette.png"),
                                        ("rotated", "rotated.jpg"))}  # fmt: skip
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(paths["cmyk"], quality=95)  # pure red in CMYK
    ramp = np.tile(np.linspace(0, 65535, 16).astype(np.uint16), (16, 1))  # (16, 16) 0..65535 left to right
    Image.fromarray(ramp).save(paths["gray16"])
    pal = Image.new("P", (16, 16), 0)
    pal.putpalette([0, 0, 0] + [0, 0, 255] + [0] * 762)  # index 0 black (made transparent), index 1 blue
    pal.paste(1, (0, 0, 8, 16))  # left half blue, right half transparent
    pal.save(paths["palette"], transparency=0)
    stored = np.zeros((20, 40, 3), np.uint8)  # (H, W, 3): wide as stored
    stored[:8, :8] = RED
    exif = Image.Exif()
    exif[0x0112] = 6
    Image.fromarray(stored).save(paths["rotated"], quality=95, exif=exif.tobytes())
    return paths


@pytest.fixture
def bad_files(tmp_path: Path) -> dict[str, Path]:
    return write_bad(tmp_path / "bad")


@pytest.fixture
def awkward_files(tmp_path: Path) -> dict[str, Path]:
    return write_awkward(tmp_path / "awkward")


@pytest.fixture
def make_tree(tmp_path: Path) -> Callable[..., Path]:
    """``make_tree({"train/cat": 3, "train/dog": 2})`` writes that many small PNGs per folder (0 = empty folder)."""

    def make(spec: dict[str, int], root: Path | None = None) -> Path:
        root = root or tmp_path / "tree"
        for k, (folder, n) in enumerate(spec.items()):
            (root / folder).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(noise(8, 8, seed=k * 1000 + i)).save(root / folder / f"img_{i:02d}.png")
        return root

    return make
