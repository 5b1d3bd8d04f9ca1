"""Safe decoding: the one Pillow-based opener, and the cheap header check used while scanning."""

from __future__ import annotations

import os
import re
import struct
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgclf.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")

# What Pillow's decoders raise on malformed input besides OSError (plugins parse headers with struct, index into
# tables, and divide by declared sizes). Listed explicitly so real bugs elsewhere are not swallowed.
_DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, struct.error, IndexError, KeyError, TypeError,
                  ZeroDivisionError)  # fmt: skip
_BOMB_SIZE = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+)")


class DataWarning(UserWarning):
    """A data problem that imgclf worked around (for example an unreadable image that was skipped)."""


class BadImageError(DataError):
    """An image file cannot be decoded; ``.path`` names it and ``.reason`` says why.

    >>> str(BadImageError("a.jpg", "empty file"))
    'cannot read image a.jpg: empty file. Remove or replace the file.'
    """

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot read image {self.path}: {reason}. Remove or replace the file.")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:  # survives pickling out of DataLoader workers
        return type(self), (self.path, self.reason)


def _bomb_reason(exc: Exception) -> str:
    match = _BOMB_SIZE.search(str(exc))
    if not match:
        return f"decompression bomb: {exc}"
    # The warning threshold is MAX_IMAGE_PIXELS; it is treated as the limit because the warning is an error here.
    limit = Image.MAX_IMAGE_PIXELS or int(match.group(2))
    return f"decompression bomb: {int(match.group(1)):,} pixels > limit of {limit:,}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return _bomb_reason(exc)
    if isinstance(exc, UnidentifiedImageError):
        return "not an image (cannot identify format)"
    text = str(exc)
    if "truncated" in text.lower() or isinstance(exc, EOFError):
        return "truncated image data"
    if isinstance(exc, OSError) and exc.errno is not None:
        return f"cannot read file ({exc.strerror})"
    detail = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return f"corrupt image data ({detail})"


def _check_size(path: str | os.PathLike) -> None:
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise BadImageError(path, f"cannot read file ({exc.strerror or exc})") from exc
    if size == 0:
        raise BadImageError(path, "empty file")


def check_image(path: str | os.PathLike) -> None:
    """Cheap scan-time check: the file is non-empty, Pillow recognises its header, and it is not a bomb.

    Pixels are not decoded, so a truncated file passes here and is caught by :func:`open_image` later.
    Raises :class:`BadImageError`.

    >>> # check_image("cat.jpg")  # returns None or raises BadImageError("cat.jpg", "empty file")
    """
    with bomb_warnings_are_errors():
        probe_header(path)


@contextmanager
def bomb_warnings_are_errors() -> Iterator[None]:
    """Inside this context Pillow's DecompressionBombWarning is raised instead of printed."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        yield


def probe_header(path: str | os.PathLike) -> None:
    """:func:`check_image` without its warnings context (callers checking many files enter it once)."""
    _check_size(path)
    try:
        with Image.open(path) as im:
            im.size  # noqa: B018  (header parsed; nothing decoded)
    except (*_DECODE_ERRORS, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(path, _reason(exc)) from exc


def _to_8bit(im: Image.Image) -> Image.Image:
    """Scale a 16/32-bit integer or float image into 0-255 by range (Pillow's own convert would clip)."""
    arr = np.asarray(im, dtype=np.float64)
    if im.mode.startswith("I;16"):
        out = arr / 257.0  # the nominal 16-bit range 0..65535
    else:
        lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
        # 32-bit int and float images have no meaningful nominal range: stretch what is there.
        out = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.clip(arr, 0, 255)
    out = np.nan_to_num(out, nan=0.0)
    return Image.fromarray(np.clip(np.rint(out), 0, 255).astype(np.uint8), mode="L")


def to_rgb(im: Image.Image) -> Image.Image:
    """Any Pillow mode to RGB; transparency is composited on white."""
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        im = _to_8bit(im)
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if has_alpha:
        rgba = im.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return im if im.mode == "RGB" else im.convert("RGB")


def _exif_upright(im: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(im)
    except _DECODE_ERRORS:
        # A malformed EXIF block should not cost the picture: keep the stored orientation.
        return im


def open_image(path: str | os.PathLike) -> Image.Image:
    """Decode ``path`` into a fully loaded RGB image, upright according to its EXIF orientation.

    Every Pillow mode is converted (alpha and palette transparency are composited on white; 16-bit images
    are scaled to 8 bits, not clipped); animated files give their first frame. Pillow's decompression-bomb
    limit stays on and its warning counts as an error. Raises :class:`BadImageError` naming the file and the
    reason for empty, truncated, corrupt or non-image files.

    >>> # open_image("photo.jpg").mode
    >>> # 'RGB'
    """
    path = Path(path)
    _check_size(path)
    with bomb_warnings_are_errors():
        try:
            with Image.open(path) as im:
                im.load()  # the first frame of animated files; raises on truncated data
                return to_rgb(_exif_upright(im))
        except (*_DECODE_ERRORS, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise BadImageError(path, _reason(exc)) from exc


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` has an image extension (case-insensitive) and is not hidden."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
