"""The FastAPI application: routes, authentication, request parsing, and the glue to the batcher."""

# No `from __future__ import annotations` here: FastAPI reads the route annotations at definition time, and
# `Request` is imported inside build_app so that importing imgclf.serve does not import fastapi.
import asyncio
import base64
import binascii
import contextlib
import hmac
import json
import logging
import math
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imgclf.serve._audit import AuditLog
from imgclf.serve._batcher import BatcherStoppedError, DeadlineExceededError, MicroBatcher, QueueFullError
from imgclf.serve._decode import DecodedImage, UploadError, decode_upload, safe_name
from imgclf.serve._drift import DriftTracker
from imgclf.serve._guard import GuardMiddleware
from imgclf.serve._metrics import CONTENT_TYPE, ServerMetrics
from imgclf.serve._page import APP_JS, INDEX_HTML, STYLE_CSS
from imgclf.serve._predictor import ImageResult, Predictor
from imgclf.serve._settings import ServeSettings
from imgclf.utils import optional_import

log = logging.getLogger("imgclf.serve")


class ApiError(Exception):
    """A refusal with its HTTP status, a short machine code and a human reason (and optional headers)."""

    def __init__(self, status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> None:
        self.status, self.code, self.detail, self.headers = status, code, detail, headers or {}
        super().__init__(detail)


class ServerState:
    """Everything the routes share: predictor, batcher, metrics, audit log, drift tracker, settings."""

    def __init__(self, predictor: Predictor, settings: ServeSettings) -> None:
        self.predictor, self.settings = predictor, settings
        self.metrics = ServerMetrics()
        self.metrics.model_info.set(1, predictor.version[:16], predictor.meta.architecture)
        self.batcher: MicroBatcher[Any, ImageResult] = MicroBatcher(
            predictor, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms, capacity=settings.queue_size,
            warmup=predictor.warmup, on_batch=self._on_batch)  # fmt: skip
        self.audit = None
        if settings.log is not None:
            self.audit = AuditLog(settings.log, max_bytes=int(settings.log_max_mb * (1 << 20)),
                                  backups=settings.log_backups, on_error=self.metrics.audit_errors.inc)  # fmt: skip
        self.drift = None
        if predictor.reference is not None:
            self.drift = DriftTracker(predictor.reference, self.metrics, window=settings.drift_window,
                                      alpha=settings.drift_alpha)  # fmt: skip

    def _on_batch(self, size: int, seconds: float) -> None:
        self.metrics.batch_size.observe(size)
        self.metrics.inference.observe(seconds)
        self.metrics.queue_depth.set(self.batcher.queued)


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _record(state: ServerState, img: DecodedImage, res: ImageResult, request_id: str, latency_ms: float,
            raw: bytes) -> dict[str, Any]:  # fmt: skip
    rec: dict[str, Any] = {
        "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
        "request_id": request_id,
        "sha256": img.sha256,
        "bytes": img.nbytes,
        "width": img.width,
        "height": img.height,
        "label": res.label,
        "class_index": res.class_index,
        "confidence": round(res.confidence, 6),
        "topk": [{"label": lab, "p": round(p, 6)} for lab, p in res.topk],
        "unknown": res.unknown,
        "ood_score": _finite(round(res.ood_score, 6)),
        "ood_kind": state.predictor.score_name,
        "model": state.predictor.version,
        "latency_ms": round(latency_ms, 3),
    }
    if res.features is not None:
        rec["features"] = [_finite(v) for v in res.features]
    if state.settings.log_images:
        rec["image"] = base64.b64encode(raw).decode("ascii")
    return rec


async def _read_uploads(request: Any, settings: ServeSettings) -> list[tuple[str, bytes]]:
    """``[(name, bytes)]`` from a multipart form (every file field) or JSON ``{"images": [base64, ...]}``."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "multipart/form-data":
        form = await request.form(max_files=settings.max_images + 1, max_fields=settings.max_images + 16)
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
        images = payload.get("images") if isinstance(payload, dict) else None
        if not isinstance(images, list) or not all(isinstance(x, str) for x in images):
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


def create_app(bundle_dir: str | Path, settings: ServeSettings | None = None) -> Any:
    """A FastAPI app serving the bundle in ``bundle_dir`` (loaded now; warmed up when the app starts).

    Routes: ``POST /v1/predict``, ``GET /v1/model``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics`` and the
    web page at ``/``. Nothing is ever loaded from a request. See :class:`ServeSettings` for the limits.

    >>> # app = create_app("runs/x/bundle", ServeSettings(token="s3cret"))  # then: uvicorn.run(app)
    """
    from imgclf.api import load

    settings = settings or ServeSettings()
    optional_import("fastapi", "serve")
    optional_import("python_multipart", "serve")  # python-multipart, for uploads
    clf = load(bundle_dir, device=settings.device, engine=settings.engine)
    return build_app(Predictor(clf, top_k=settings.top_k, reject=settings.reject), settings)


def build_app(predictor: Predictor, settings: ServeSettings) -> Any:
    """The app around an already built :class:`Predictor` (what :func:`create_app` calls after loading)."""
    fastapi = optional_import("fastapi", "serve")
    from fastapi import Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from starlette.concurrency import run_in_threadpool

    state = ServerState(predictor, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        state.batcher.start()
        try:
            yield
        finally:
            # Uvicorn has finished the in-flight requests by now; drain whatever is still queued.
            await run_in_threadpool(state.batcher.stop, drain=True, timeout=settings.shutdown_timeout_s)
            if state.audit is not None:
                state.audit.close()

    app = fastapi.FastAPI(title="imgclf", version=predictor.version[:12], lifespan=lifespan, docs_url=None,
                          redoc_url=None, openapi_url=None)  # fmt: skip
    app.state.imgclf = state
    app.add_middleware(GuardMiddleware, max_body=settings.max_body_bytes, metrics=state.metrics)

    def refuse(exc: ApiError) -> Any:
        state.metrics.errors.inc(exc.code)
        return JSONResponse({"detail": exc.detail, "code": exc.code}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Any, exc: ApiError) -> Any:
        return refuse(exc)

    async def require_token(request: Request) -> None:
        """With a token set, every route but the health checks and the static page shell needs it."""
        if settings.token:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {settings.token}".encode()):
                raise ApiError(401, "unauthorized", "missing or wrong bearer token (send 'Authorization: Bearer ...')",
                               {"WWW-Authenticate": 'Bearer realm="imgclf"'})  # fmt: skip

    protected = [fastapi.Depends(require_token)]

    @app.get("/healthz")
    async def healthz() -> Any:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Any:
        ready = state.batcher.ready
        state.metrics.ready.set(1.0 if ready else 0.0)
        body = {"ready": ready, "model": predictor.version}
        if state.batcher.error is not None:
            body["error"] = f"warm-up failed: {state.batcher.error}"
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", dependencies=protected)
    async def metrics() -> Any:
        state.metrics.queue_depth.set(state.batcher.queued)
        state.metrics.ready.set(1.0 if state.batcher.ready else 0.0)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/v1/model", dependencies=protected)
    async def model_info() -> Any:
        meta = predictor.meta
        return {"architecture": meta.architecture, "classes": list(meta.classes),
                "num_classes": meta.num_classes, "preprocessing": meta.to_dict()["preprocessing"],
                "version": meta.weights_sha256, "temperature": meta.temperature, "rejection": meta.rejection,
                "rejection_active": predictor.threshold is not None, "ood_score": predictor.score_name,
                "metrics": meta.metrics, "created": meta.created, "drift_monitoring": state.drift is not None,
                "top_k": predictor.top_k, "explain": True, "engine": predictor.engine_name,
                "limits": {"max_body_bytes": settings.max_body_bytes, "max_images": settings.max_images,
                           "max_pixels": settings.max_pixels, "timeout_s": settings.timeout_s}}  # fmt: skip

    def decode_all(files: list[tuple[str, bytes]]) -> tuple[list[DecodedImage], list[Any]]:
        decoded = [decode_upload(data, max_pixels=settings.max_pixels, max_aspect=settings.max_aspect, name=name)
                   for name, data in files]  # fmt: skip
        return decoded, [predictor.preprocess(d.image) for d in decoded]

    @app.post("/v1/predict", dependencies=protected)
    async def predict(request: Request) -> Any:
        start = time.perf_counter()
        request_id = safe_name(request.headers.get("x-request-id"), 0)[:64] if request.headers.get(
            "x-request-id") else uuid.uuid4().hex  # fmt: skip
        timeout = settings.timeout_s
        if request.headers.get("x-timeout-ms"):
            try:
                timeout = min(timeout, max(0.0, float(request.headers["x-timeout-ms"]) / 1000.0))
            except ValueError:
                raise ApiError(422, "bad_timeout", "X-Timeout-Ms must be a number of milliseconds") from None
        deadline_wall = start + timeout
        files = await _read_uploads(request, settings)
        try:
            decoded, tensors = await run_in_threadpool(decode_all, files)
        except UploadError as exc:
            raise ApiError(exc.status, exc.code, exc.reason) from None
        left = deadline_wall - time.perf_counter()
        if left <= 0:
            raise ApiError(504, "deadline", f"the request's deadline of {timeout:.3f} s passed before inference")
        try:
            futures = state.batcher.submit(tensors, deadline=time.monotonic() + left)
        except QueueFullError as exc:
            raise ApiError(429, "queue_full", str(exc), {"Retry-After": str(math.ceil(exc.retry_after_s))}) from None
        except BatcherStoppedError as exc:
            raise ApiError(503, "shutting_down", str(exc), {"Retry-After": "1"}) from None
        state.metrics.queue_depth.set(state.batcher.queued)
        waiting = [asyncio.wrap_future(f) for f in futures]
        try:
            results = await asyncio.wait_for(asyncio.gather(*waiting), timeout=left)
        except (asyncio.TimeoutError, DeadlineExceededError):
            for f in futures:
                f.cancel()
            why = f"no answer within the request's deadline of {timeout:.3f} s (overloaded; retry later)"
            raise ApiError(504, "deadline", why) from None
        except BatcherStoppedError as exc:
            raise ApiError(503, "shutting_down", str(exc), {"Retry-After": "1"}) from None
        latency_ms = (time.perf_counter() - start) * 1000.0
        state.metrics.images.inc(amount=len(results))
        rejected = sum(r.unknown for r in results)
        if rejected:
            state.metrics.rejections.inc(amount=rejected)
        if state.audit is not None:
            for img, res, (_, raw) in zip(decoded, results, files):
                state.audit.write(_record(state, img, res, request_id, latency_ms, raw))
        if state.drift is not None:
            state.drift.add(list(results))
        preds = [{"index": i, "name": name, "label": r.label, "confidence": r.confidence, "unknown": r.unknown,
                  "ood_score": r.ood_score if math.isfinite(r.ood_score) else None,
                  "topk": [{"label": lab, "probability": p} for lab, p in r.topk],
                  "width": d.width, "height": d.height, "sha256": d.sha256, "latency_ms": latency_ms}
                 for i, (r, d, (name, _)) in enumerate(zip(results, decoded, files))]  # fmt: skip
        return {"model": predictor.version, "request_id": request_id, "latency_ms": latency_ms,
                "predictions": preds}  # fmt: skip

    @app.post("/v1/explain", dependencies=protected)
    async def explain_image(request: Request) -> Any:
        """Grad-CAM overlay of one uploaded image for its predicted class, as a PNG data URL."""
        files = await _read_uploads(request, settings)
        if len(files) != 1:
            raise ApiError(422, "one_image", f"/v1/explain takes exactly one image, got {len(files)}")
        try:
            decoded, _ = await run_in_threadpool(decode_all, files)
        except UploadError as exc:
            raise ApiError(exc.status, exc.code, exc.reason) from None
        png = await run_in_threadpool(predictor.overlay_png, decoded[0].image)
        return {"model": predictor.version, "method": "gradcam",
                "overlay": "data:image/png;base64," + base64.b64encode(png).decode("ascii")}  # fmt: skip

    @app.get("/", response_class=HTMLResponse)
    async def index() -> Any:
        return HTMLResponse(INDEX_HTML)

    @app.get("/ui/app.js")
    async def app_js() -> Any:
        return Response(APP_JS, media_type="text/javascript; charset=utf-8")

    @app.get("/ui/style.css")
    async def style_css() -> Any:
        return Response(STYLE_CSS, media_type="text/css; charset=utf-8")

    return app
