"""Uploaded bytes to an RGB image through imgclf.data's one safe opener, with the server's pixel limit."""

from __future__ import annotations

import tempfile
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
    if reason.startswith("decompression bomb"):
        return 413, "too_many_pixels"
    if reason.startswith("not an image"):
        return 415, "not_an_image"
    if reason.startswith("empty"):
        return 422, "empty_image"
    if reason.startswith("truncated"):
        return 422, "truncated_image"
    return 422, "corrupt_image"


def decode_upload(data: bytes, *, max_pixels: int, max_aspect: float = 100.0, name: str = "image") -> DecodedImage:
    """Decode an uploaded image, refusing it with an :class:`UploadError` that maps to an HTTP status.

    The header is checked first (format recognised, Pillow's bomb limit, ``width * height <= max_pixels``), so
    an oversized image is refused before its pixels are decoded; so is a sliver whose sides differ more than
    ``max_aspect`` times (resizing its short side to the model's input would blow up the long one). Then
    :func:`imgclf.data.open_image` decodes it (EXIF orientation, every mode to RGB). ``name`` appears in the
    reason.

    >>> # decode_upload(png_bytes, max_pixels=40_000_000).image.mode
    >>> # 'RGB'
    """
    if not data:
        raise UploadError(422, "empty_image", f"{name}: empty file")
    # imgclf.data opens paths, so the bytes go through a private temporary file (removed on close).
    with tempfile.NamedTemporaryFile(prefix="imgclf-upload-") as tmp:
        tmp.write(data)
        tmp.flush()
        try:
            D.check_image(tmp.name)  # header only: recognised format, Pillow's own bomb limit
            with Image.open(tmp.name) as probe:
                width, height = probe.size
            if width * height > max_pixels:
                why = f"{name}: {width}x{height} = {width * height:,} pixels > limit of {max_pixels:,}"
                raise UploadError(413, "too_many_pixels", why)
            if max(width, height) > max_aspect * max(1, min(width, height)):
                why = f"{name}: {width}x{height} has an aspect ratio beyond {max_aspect:g}:1; crop it first"
                raise UploadError(422, "extreme_aspect_ratio", why)
            image = D.open_image(tmp.name)
        except D.BadImageError as exc:
            status, code = _status_of(exc.reason)
            raise UploadError(status, code, f"{name}: {exc.reason}") from None
    return DecodedImage(image, *image.size, sha256_bytes(data), len(data))  # size upright, after EXIF


def safe_name(name: str | None, index: int) -> str:
    """A short printable name for an upload (its filename, else ``image <index>``)."""
    clean = "".join(ch for ch in (name or "") if ch.isprintable())[:100].strip()
    return clean or f"image {index}"

