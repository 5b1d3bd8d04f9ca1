"""open_image / check_image: every mode to RGB, EXIF orientation, bombs and broken files named with a reason."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf.data import BadImageError, check_image, open_image, probe_image
from imgclf.errors import DataError


def _rgb(path: Path) -> np.ndarray:
    image = open_image(path)
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)  # (H, W, 3)


def test_awkward_files_decode_to_the_right_rgb(awkward_files: dict[str, Path]) -> None:
    cmyk = _rgb(awkward_files["cmyk"])
    assert (np.abs(cmyk - [255, 0, 0]) <= 8).all()

    gray = _rgb(awkward_files["gray16"])  # 16-bit ramp scaled by range, not clipped to white
    assert gray.shape == (16, 16, 3) and (gray[..., 0] == gray[..., 2]).all()
    np.testing.assert_allclose(gray[0, :, 0], np.linspace(0, 255, 16), atol=1)

    palette = _rgb(awkward_files["palette"])
    assert (palette[:, :8] == [0, 0, 255]).all()  # opaque blue stays blue
    assert (palette[:, 8:] == [255, 255, 255]).all()  # transparent becomes white, not black


def test_exif_orientation_is_applied(awkward_files: dict[str, Path]) -> None:
    raw = Image.open(awkward_files["rotated"])
    assert raw.size == (40, 20)  # stored wide
    rotated = _rgb(awkward_files["rotated"])
    assert rotated.shape == (40, 20, 3)  # shown tall: (H, W) swapped
    # 90 degrees clockwise moves the stored top-left block to the top-right corner.
    assert (np.abs(rotated[:6, -6:] - [255, 0, 0]) < 40).all()
    assert rotated[:6, :6].max() < 40


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("1", 1, (255, 255, 255)),
        ("L", 100, (100, 100, 100)),
        ("LA", (100, 0), (255, 255, 255)),  # fully transparent -> white background
        ("RGBA", (255, 0, 0, 128), (255, 127, 127)),  # half-transparent red over white
        ("RGB", (1, 2, 3), (1, 2, 3)),
    ],
)
def test_modes_convert_to_rgb(tmp_path: Path, mode: str, value: object, expected: tuple[int, int, int]) -> None:
    path = tmp_path / f"x_{mode}.png"
    Image.new(mode, (6, 4), value).save(path)
    out = _rgb(path)
    assert out.shape == (4, 6, 3)
    assert (np.abs(out - expected) <= 1).all()


def test_32bit_int_and_float_images_are_stretched_by_range(tmp_path: Path) -> None:
    Image.fromarray(np.arange(100, dtype=np.int32).reshape(10, 10) * 1000).save(tmp_path / "i.tif")
    Image.fromarray(np.linspace(-1, 1, 100, dtype=np.float32).reshape(10, 10)).save(tmp_path / "f.tif")
    for name in ("i.tif", "f.tif"):
        out = _rgb(tmp_path / name)[..., 0].ravel()
        assert out[0] == 0 and out[-1] == 255 and 0 < out[50] < 255
        assert (np.diff(out) >= 0).all()


def test_animated_gif_gives_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(tmp_path / "anim.gif").n_frames == 2
    out = _rgb(tmp_path / "anim.gif")
    assert out[..., 0].min() > 200 and out[..., 2].max() < 50


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("truncated", "truncated image data"),
        ("empty", "empty file"),
        ("text", "not an image (cannot identify format)"),
        ("bomb", "decompression bomb: 200,000,000 pixels > limit"),
    ],
)
def test_bad_files_raise_with_file_and_reason(bad_files: dict[str, Path], kind: str, reason: str) -> None:
    with pytest.raises(BadImageError) as info:
        open_image(bad_files[kind])
    err = info.value
    assert isinstance(err, DataError)
    assert err.path == str(bad_files[kind]) and err.reason.startswith(reason)
    assert str(bad_files[kind]) in str(err) and reason in str(err)


def test_header_check_is_cheap_and_lets_truncated_files_through(bad_files: dict[str, Path]) -> None:
    check_image(bad_files["truncated"])  # header is fine; the pixels are checked when decoding
    for kind in ("empty", "text", "bomb"):
        with pytest.raises(BadImageError, match=bad_files[kind].name):
            check_image(bad_files[kind])


def test_bomb_warning_level_counts_as_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 pixels: above the warning level, below 2x
    with pytest.raises(BadImageError, match="decompression bomb: 1,600 pixels > limit of 1,000"):
        open_image(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    assert open_image(tmp_path / "big.png").size == (40, 40)


def test_missing_file_and_pickling(tmp_path: Path) -> None:
    with pytest.raises(BadImageError, match="nope.png"):
        open_image(tmp_path / "nope.png")
    err = pickle.loads(pickle.dumps(BadImageError("a.jpg", "empty file")))  # crosses DataLoader worker processes
    assert (err.path, err.reason) == ("a.jpg", "empty file")


def test_image_is_fully_loaded_and_detached_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.png"
    Image.new("RGB", (5, 5), (9, 8, 7)).save(path)
    image = open_image(path)
    path.unlink()
    assert image.getpixel((2, 2)) == (9, 8, 7)


def test_a_callers_pixel_limit_replaces_pillows(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Image.new("RGB", (40, 40)).save(tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 pixels: above Pillow's warning level
    assert open_image(tmp_path / "big.png", max_pixels=2000).size == (40, 40)
    assert probe_image(tmp_path / "big.png", max_pixels=2000).pixels == 1600
    for call in (open_image, probe_image):
        with pytest.raises(BadImageError, match=r"big.png: 40x40 = 1,600 pixels > limit of 1,500\."):
            call(tmp_path / "big.png", max_pixels=1500)
