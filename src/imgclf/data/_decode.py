"""Safe decoding: the one Pillow-based opener, and the cheap header check used while scanning.

Only the formats in an allow-list are parsed at all (:data:`IMAGE_FORMATS` by default: JPEG, PNG, WebP, BMP,
GIF, TIFF); anything else, and anything Pillow fails on for any reason, becomes a :class:`BadImageError` that
names the file and the reason.
"""

from __future__ import annotations

import io
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from imgclf.errors import ConfigError, DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".jpe", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF")
"""The image formats decoded by default (Pillow's names); every other format is refused unparsed."""

_ALIASES = {"JPG": "JPEG", "TIF": "TIFF", "MPO": "JPEG"}  # MPO: multi-picture JPEGs from cameras
# Pillow's plugins raise nearly anything on malformed input (OSError, SyntaxError, struct.error, IndexError,
# NotImplementedError for DDS variants, RuntimeError from libavif, MemoryError for absurd declared sizes, ...).
# Every exception raised *inside a Pillow call* on the file's bytes is therefore the file's fault and is reported
# as a bad image; our own code around those calls is not inside the guarded region.
_BOMB_SIZE = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+)")

Source = str | os.PathLike | bytes


@dataclass(frozen=True)
class ImageInfo:
    """What an image header says: Pillow's format name and the stored size (before EXIF orientation)."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def image_formats(formats: Iterable[str] | None = None) -> tuple[str, ...]:
    """Validated, upper-case Pillow format names (``None``: :data:`IMAGE_FORMATS`); JPG/TIF are aliases.

    >>> image_formats(["jpg", "png"])
    ('JPEG', 'PNG')
    """
    if formats is None:
        return IMAGE_FORMATS
    Image.init()
    out: list[str] = []
    for name in formats:
        fmt = _ALIASES.get(str(name).strip().upper(), str(name).strip().upper())
        if fmt not in Image.OPEN:
            known = ", ".join(sorted(Image.OPEN))
            raise ConfigError(f"unknown image format {name!r}; Pillow reads: {known}")
        if fmt not in out:
            out.append(fmt)
    if not out:
        raise ConfigError("the list of accepted image formats is empty; name at least one (e.g. JPEG,PNG)")
    return tuple(out)


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


def _bomb_reason(exc: Exception, max_pixels: int | None = None) -> str:
    match = _BOMB_SIZE.search(str(exc))
    if not match:
        return f"decompression bomb: {exc}"
    pixels = int(match.group(1))
    if max_pixels is not None:  # the caller's limit, unless only Pillow's hard limit (2x its warning level) was hit
        return too_many_pixels(pixels, max_pixels if pixels > max_pixels else int(match.group(2)))
    # The warning threshold is MAX_IMAGE_PIXELS; it is treated as the limit because the warning is an error here.
    limit = Image.MAX_IMAGE_PIXELS or int(match.group(2))
    return f"decompression bomb: {pixels:,} pixels > limit of {limit:,}"


def too_many_pixels(pixels: int, limit: int, size: tuple[int, int] | None = None) -> str:
    """The one wording of an image over a pixel limit (``size``: its width and height, when known).

    >>> too_many_pixels(52_000_000, 40_000_000, (10_000, 5_200))
    '10000x5200 = 52,000,000 pixels > limit of 40,000,000'
    """
    shown = f"{size[0]}x{size[1]} = " if size else ""
    return f"{shown}{pixels:,} pixels > limit of {limit:,}"


def _reason(exc: BaseException, max_pixels: int | None = None) -> str:
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return _bomb_reason(exc, max_pixels)
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


def _source(source: Source, name: str | None) -> tuple[str | os.PathLike | IO[bytes], str]:
    """What Pillow opens (a path, or a buffer over bytes) and the name errors use; empty input refused."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        label = name or "<bytes>"
        if len(source) == 0:
            raise BadImageError(label, "empty file")
        return io.BytesIO(bytes(source)), label
    _check_size(source)
    return source, name or os.fspath(source)


def _refused_format(fp: str | os.PathLike | IO[bytes], allowed: tuple[str, ...]) -> str | None:
    """The name of the format a refused file is in, from the plugins' cheap magic-byte tests (never parsed)."""
    try:
        if isinstance(fp, (str, os.PathLike)):
            with open(fp, "rb") as f:
                prefix = f.read(16)
        else:
            fp.seek(0)
            prefix = fp.read(16)
    except OSError:
        return None
    Image.init()
    for fmt, (_factory, accept) in Image.OPEN.items():
        if fmt in allowed or accept is None:
            continue
        try:
            if accept(prefix):
                return fmt
        except Exception:  # noqa: BLE001 - a plugin's magic test failing only means "not this format"
            continue
    return None


def _open(fp: str | os.PathLike | IO[bytes], label: str, allowed: tuple[str, ...]) -> Image.Image:
    """``Image.open`` restricted to ``allowed``; a file in another format is refused by name, unparsed."""
    try:
        return Image.open(fp, formats=list(allowed))
    except UnidentifiedImageError:
        other = _refused_format(fp, allowed)
        if other is None:
            raise
        raise BadImageError(label, f"format {other} is not accepted (accepted: {', '.join(allowed)})") from None


def probe_image(source: Source, *, formats: Iterable[str] | None = None, name: str | None = None,
                max_pixels: int | None = None) -> ImageInfo:  # fmt: skip
    """Read only the header of ``source`` (a path or the file's bytes): its format and stored size.

    The file must be non-empty, in one of ``formats`` (default :data:`IMAGE_FORMATS`) and within ``max_pixels``
    (width x height; default: Pillow's decompression-bomb limit); otherwise :class:`BadImageError` (``name``
    labels bytes in the message). A ``max_pixels`` above Pillow's hard limit (twice its warning level) cannot
    lift it.

    >>> # probe_image(png_bytes, name="upload.png")
    >>> # ImageInfo(format='PNG', width=40, height=32)
    """
    allowed = image_formats(formats)
    fp, label = _source(source, name)
    with bomb_warnings_are_errors(max_pixels):
        try:
            with _open(fp, label, allowed) as im:
                fmt = _ALIASES.get(str(im.format), str(im.format))
                width, height = im.size
        except BadImageError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure inside Pillow is the file's fault
            raise BadImageError(label, _reason(exc, max_pixels)) from exc
    _check_pixels(label, (width, height), max_pixels)
    if fmt not in allowed:  # a plugin may hand back another format (e.g. a JPEG factory's MPO)
        raise BadImageError(label, f"format {fmt} is not accepted (accepted: {', '.join(allowed)})")
    return ImageInfo(fmt, int(width), int(height))


def check_image(path: Source, *, formats: Iterable[str] | None = None) -> None:
    """Cheap scan-time check: the file is non-empty, its header is in an accepted format, and it is not a bomb.

    Pixels are not decoded, so a truncated file passes here and is caught by :func:`open_image` later.
    Raises :class:`BadImageError`.

    >>> # check_image("cat.jpg")  # returns None or raises BadImageError("cat.jpg", "empty file")
    """
    probe_image(path, formats=formats)


@contextmanager
def bomb_warnings_are_errors(max_pixels: int | None = None) -> Iterator[None]:
    """Inside this context Pillow's DecompressionBombWarning is raised instead of printed; with the caller's own
    ``max_pixels`` (checked by the caller on the header's size) it is silenced instead: that limit replaces it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error" if max_pixels is None else "ignore", Image.DecompressionBombWarning)
        yield


def _check_pixels(label: str, size: tuple[int, int], max_pixels: int | None) -> None:
    if max_pixels is not None and size[0] * size[1] > max_pixels:
        raise BadImageError(label, too_many_pixels(size[0] * size[1], max_pixels, size))


def probe_header(path: str | os.PathLike) -> None:
    """:func:`check_image` for scans of many files (default formats)."""
    probe_image(path)


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
    except Exception:  # noqa: BLE001
        # A malformed EXIF block should not cost the picture: keep the stored orientation.
        return im


def open_image(source: Source, *, formats: Iterable[str] | None = None, name: str | None = None,
               max_pixels: int | None = None) -> Image.Image:  # fmt: skip
    """Decode ``source`` (a path or the file's bytes) into a fully loaded RGB image, upright by its EXIF tag.

    Every Pillow mode is converted (alpha and palette transparency are composited on white; 16-bit images
    are scaled to 8 bits, not clipped); animated files give their first frame. Only ``formats`` (default
    :data:`IMAGE_FORMATS`) are parsed. The pixel limit is ``max_pixels`` (width x height, checked on the header
    before decoding) or by default Pillow's decompression-bomb limit, whose warning counts as an error. Raises
    :class:`BadImageError` naming the file (``name`` for bytes) and the reason for empty, truncated, corrupt,
    refused-format, too large or non-image files; no other exception escapes Pillow.

    >>> # open_image("photo.jpg").mode
    >>> # 'RGB'
    """
    allowed = image_formats(formats)
    if isinstance(source, (str, os.PathLike)):
        source = Path(source)
    fp, label = _source(source, name)
    with bomb_warnings_are_errors(max_pixels):
        try:
            with _open(fp, label, allowed) as im:
                fmt = _ALIASES.get(str(im.format), str(im.format))
                if fmt not in allowed:
                    raise BadImageError(label, f"format {fmt} is not accepted (accepted: {', '.join(allowed)})")
                _check_pixels(label, im.size, max_pixels)
                im.load()  # the first frame of animated files; raises on truncated data
                return to_rgb(_exif_upright(im))
        except BadImageError:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure inside Pillow is the file's fault
            raise BadImageError(label, _reason(exc, max_pixels)) from exc


def is_image_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` has an image extension (case-insensitive) and is not hidden."""
    name = os.path.basename(os.fspath(path))
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS
