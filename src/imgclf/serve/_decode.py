"""Uploaded bytes to an RGB image through imgclf.data's one safe opener, with the server's limits.

A request is checked in two passes: every upload's header first (format allow-list, per-image pixel limit,
aspect ratio, and the request's total pixel budget), and only then are the images decoded, one at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from PIL import Image

from imgclf import data as D
from imgclf.errors import ImgclfError
from imgclf.utils import sha256_bytes


class UploadError(ImgclfError):
    """An upload the server refuses: ``status`` (413, 415 or 422), a short ``code`` and the ``reason``."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        self.status, self.code, self.reason = status, code, reason
        super().__init__(reason)


@dataclass(frozen=True)
class DecodedImage:
    """A decoded upload: the RGB image, its size, and the sha256 and length of the bytes it came from."""

    image: Image.Image
    width: int
    height: int
    sha256: str
    nbytes: int


def _status_of(reason: str) -> tuple[int, str]:
    if " pixels > limit of " in reason:  # the configured max_pixels (imgclf.data's one wording of it)
        return 413, "too_many_pixels"
    if reason.startswith("not an image"):
        return 415, "not_an_image"
    if reason.startswith("format "):
        return 415, "unsupported_format"
    if reason.startswith("empty"):
        return 422, "empty_image"
    if reason.startswith("truncated"):
        return 422, "truncated_image"
    return 422, "corrupt_image"


def _refuse(exc: D.BadImageError, name: str) -> UploadError:
    status, code = _status_of(exc.reason)
    return UploadError(status, code, f"{name}: {exc.reason}")


def probe_upload(data: bytes, *, max_pixels: int, max_aspect: float = 100.0, name: str = "image",
                 formats: Iterable[str] | None = None) -> D.ImageInfo:  # fmt: skip
    """The upload's header (format and size), refused with an :class:`UploadError` before any pixel is decoded.

    Refused: an empty file (422), an unrecognised (415) or not accepted format (415, ``formats`` default
    :data:`imgclf.data.IMAGE_FORMATS`), ``width * height > max_pixels`` (413 naming that limit, which replaces
    Pillow's decompression-bomb warning level), and a
    sliver whose sides differ more than ``max_aspect`` times (422: resizing its short side to the model's input
    would blow up the long one). ``name`` starts the reason.
    """
    if not data:
        raise UploadError(422, "empty_image", f"{name}: empty file")
    try:
        info = D.probe_image(data, formats=formats, name=name, max_pixels=max_pixels)
    except D.BadImageError as exc:
        raise _refuse(exc, name) from None
    width, height = info.width, info.height
    if max(width, height) > max_aspect * max(1, min(width, height)):
        why = f"{name}: {width}x{height} has an aspect ratio beyond {max_aspect:g}:1; crop it first"
        raise UploadError(422, "extreme_aspect_ratio", why)
    return info


def decode_upload(data: bytes, *, max_pixels: int, max_aspect: float = 100.0, name: str = "image",
                  formats: Iterable[str] | None = None) -> DecodedImage:  # fmt: skip
    """Decode an uploaded image, refusing it with an :class:`UploadError` that maps to an HTTP status.

    The header is checked first (:func:`probe_upload`), so an oversized image is refused before its pixels are
    decoded. Then :func:`imgclf.data.open_image` decodes it (EXIF orientation, every mode to RGB).

    >>> # decode_upload(png_bytes, max_pixels=40_000_000).image.mode
    >>> # 'RGB'
    """
    probe_upload(data, max_pixels=max_pixels, max_aspect=max_aspect, name=name, formats=formats)
    try:
        image = D.open_image(data, formats=formats, name=name, max_pixels=max_pixels)
    except D.BadImageError as exc:
        raise _refuse(exc, name) from None
    return DecodedImage(image, *image.size, sha256_bytes(data), len(data))  # size upright, after EXIF


def safe_name(name: str | None, index: int) -> str:
    """A short printable name for an upload (its filename, else ``image <index>``)."""
    clean = "".join(ch for ch in (name or "") if ch.isprintable())[:100].strip()
    return clean or f"image {index}"
