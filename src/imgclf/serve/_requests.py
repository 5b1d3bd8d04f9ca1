"""Reading a request: its uploads (multipart or base64 JSON, counted before anything is decoded), its headers
(bearer token, deadline), and turning uploads into model inputs within the server's limits."""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from imgclf.serve._decode import UploadError, decode_upload, probe_upload, safe_name
from imgclf.serve._settings import ServeSettings


class ApiError(Exception):
    """A refusal with its HTTP status, a short machine code and a human reason (and optional headers)."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}
        super().__init__(detail)


@dataclass(frozen=True)
class Upload:
    """What a request keeps of an image once its tensor exists: the full-resolution pixels are gone."""

    name: str
    width: int
    height: int
    sha256: str
    nbytes: int


class LateError(Exception):
    """The request's deadline passed while its images were waiting to be decoded."""


async def read_uploads(request: Any, settings: ServeSettings) -> list[tuple[str, bytes]]:
    """``[(name, bytes)]`` from a multipart form (every file field) or JSON ``{"images": [base64, ...]}``."""
    from starlette.exceptions import HTTPException

    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        try:
            form = await request.form(max_files=settings.max_images, max_fields=settings.max_images + 16)
        except HTTPException as exc:  # the multipart parser's refusals (starlette turns them into 400s)
            if "too many files" in str(exc.detail).lower():
                raise ApiError(413, "too_many_images", f"more than {settings.max_images} images in one request; "
                                                       f"the limit is {settings.max_images}") from None  # fmt: skip
            raise ApiError(422, "bad_multipart", f"malformed multipart body ({exc.detail})") from None
        try:
            files = [(safe_name(v.filename, i), await v.read())
                     for i, (_, v) in enumerate(form.multi_items()) if hasattr(v, "read")]  # fmt: skip
        finally:
            await form.close()
    elif ctype in ("application/json", ""):
        raw = await request.body()
        try:
            payload = json.loads(raw)
        except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
            raise ApiError(422, "bad_json", f"the body is not valid JSON ({type(exc).__name__})") from None
        del raw
        images = payload.get("images") if isinstance(payload, dict) else None
        if not isinstance(images, list):
            raise ApiError(422, "bad_json", 'expected JSON {"images": ["<base64>", ...]}')
        if len(images) > settings.max_images:  # counted before a single entry is decoded
            raise ApiError(413, "too_many_images", f"{len(images)} images in one request; the limit is "
                                                   f"{settings.max_images}")  # fmt: skip
        if not all(isinstance(x, str) for x in images):
            raise ApiError(422, "bad_json", 'expected JSON {"images": ["<base64>", ...]}')
        files = []
        for i, text in enumerate(images):
            b64 = text.split(",", 1)[1] if text.startswith("data:") and "," in text else text  # data URLs too
            try:
                files.append((f"image {i}", base64.b64decode(b64, validate=True)))
            except (binascii.Error, ValueError):
                raise ApiError(422, "bad_base64", f"image {i}: not valid base64") from None
    else:
        why = f"content type {ctype!r}: send multipart/form-data files or JSON with base64 images"
        raise ApiError(415, "unsupported_media_type", why)
    if not files:
        raise ApiError(422, "no_images", "the request holds no image: send one or more files")
    if len(files) > settings.max_images:
        raise ApiError(413, "too_many_images", f"{len(files)} images in one request; the limit is "
                                               f"{settings.max_images}")  # fmt: skip
    return files


def bearer_token(header: str) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme in any case), else ""."""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def timeout_s(request: Any, settings: ServeSettings) -> float:
    """The request's deadline in seconds: ``timeout_s``, or less when ``X-Timeout-Ms`` asks for less."""
    raw = request.headers.get("x-timeout-ms")
    if raw is None:
        return settings.timeout_s
    try:
        ms = float(raw)
    except ValueError:
        ms = math.nan
    if not (math.isfinite(ms) and ms > 0):  # nan, inf, 0 and negatives would mean "no deadline" or "none left"
        raise ApiError(422, "bad_timeout", f"X-Timeout-Ms must be a positive, finite number of milliseconds "
                                           f"(got {raw[:40]!r})")  # fmt: skip
    return min(settings.timeout_s, ms / 1000.0)


IMAGES_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {"schema": {"type": "object", "properties": {
            "file": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
        "application/json": {"schema": {"type": "object", "required": ["images"], "properties": {
            "images": {"type": "array", "items": {"type": "string", "description": "base64 or a data: URL"}}}}},
    },
}  # fmt: skip
REQUEST_HEADERS = [
    {"name": "X-Timeout-Ms", "in": "header", "required": False, "schema": {"type": "string"}},
    {"name": "X-Request-ID", "in": "header", "required": False, "schema": {"type": "string"}},
]
_NUMBER, _STRING, _STRINGS = {"type": "number"}, {"type": "string"}, {"type": "array", "items": {"type": "string"}}
_ANSWER = {  # imgclf.tasks.Answer.to_dict() (the schema of `predict --json`) plus the upload's facts
    "type": "object",
    "required": ["index", "name", "label", "score", "topk", "unknown", "confidence", "width", "height", "sha256",
                 "latency_ms"],
    "properties": {
        "index": {"type": "integer", "description": "position of the image in the request, from 0"},
        "name": {"type": "string", "description": "the upload's file name, else 'image <index>'"},
        "label": {"type": "string", "description": "the answer; 'unknown' when the rejection rule refuses the image; "
                                                   "multi-label: the labels joined by ';'"},
        "score": _NUMBER,
        "topk": {"type": "array", "items": {"type": "object", "properties": {"label": _STRING, "score": _NUMBER}}},
        "unknown": {"type": "boolean"}, "ood_score": _NUMBER, "reason": _STRING,
        "labels": _STRINGS, "scores": {"type": "object", "additionalProperties": _NUMBER},  # multi-label
        "ancestors": _STRINGS, "leaf": _STRING,  # hierarchies
        "confidence": _NUMBER, "uncertainty": _NUMBER, "width": {"type": "integer"}, "height": {"type": "integer"},
        "sha256": _STRING, "latency_ms": _NUMBER,
    },
}
PREDICT_RESPONSES = {"200": {"description": "One answer per image, in request order.", "content": {
    "application/json": {"schema": {"type": "object", "required": ["model", "request_id", "latency_ms", "predictions"],
                                    "properties": {"model": {"type": "string", "description": "weights sha256"},
                                                   "request_id": _STRING, "latency_ms": _NUMBER,
                                                   "predictions": {"type": "array", "items": _ANSWER}}}}}}}



def prepare_uploads(files: Sequence[tuple[str, bytes]], settings: ServeSettings, preprocess: Callable[[Any], Any],
                    deadline: float) -> tuple[list[Upload], list[Any]]:  # fmt: skip
    """Headers of every upload checked against the limits first, then each image decoded, preprocessed into
    its input tensor and dropped at once: a request never holds more than one full-resolution image."""
    s = settings
    infos = [probe_upload(data, max_pixels=s.max_pixels, max_aspect=s.max_aspect, name=name, formats=s.formats)
             for name, data in files]  # fmt: skip
    total = sum(info.pixels for info in infos)
    if total > s.max_request_pixels:
        why = (f"the {len(files)} images hold {total:,} pixels together > limit of {s.max_request_pixels:,} "
               "per request; send fewer or smaller images")  # fmt: skip
        raise UploadError(413, "too_many_pixels", why)
    uploads, tensors = [], []
    for name, data in files:
        if time.monotonic() > deadline:
            raise LateError
        decoded = decode_upload(data, max_pixels=s.max_pixels, max_aspect=s.max_aspect, name=name,
                                formats=s.formats)  # fmt: skip
        tensors.append(preprocess(decoded.image))
        uploads.append(Upload(name, decoded.width, decoded.height, decoded.sha256, decoded.nbytes))
        del decoded  # the full-resolution image goes now, not when the response is sent
    return uploads, tensors

