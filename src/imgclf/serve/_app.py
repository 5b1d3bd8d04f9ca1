"""The FastAPI application: routes, authentication, the shared server state, and the glue to the batchers."""

# No `from __future__ import annotations` here: FastAPI reads the route annotations at definition time, and
# `Request` is imported inside build_app so that importing imgclf.serve does not import fastapi.
import asyncio
import base64
import contextlib
import hmac
import logging
import math
import threading
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imgclf.serve._audit import AuditLog
from imgclf.serve._batcher import BatcherStoppedError, DeadlineExceededError, MicroBatcher, QueueFullError
from imgclf.serve._decode import UploadError, safe_name
from imgclf.serve._drift import DriftTracker
from imgclf.serve._explainer import Explainer
from imgclf.serve._guard import GuardMiddleware
from imgclf.serve._metrics import CONTENT_TYPE, ServerMetrics
from imgclf.serve._page import APP_JS, INDEX_HTML, STYLE_CSS
from imgclf.serve._predictor import ImageResult, Predictor
from imgclf.serve._requests import (
    IMAGES_BODY,
    PREDICT_RESPONSES,
    REQUEST_HEADERS,
    ApiError,
    LateError,
    Upload,
    bearer_token,
    prepare_uploads,
    read_uploads,
    timeout_s,
)
from imgclf.serve._settings import ServeSettings
from imgclf.utils import optional_import

log = logging.getLogger("imgclf.serve")


class ServerState:
    """Everything the routes share: predictor, batchers, explainer, metrics, audit log, drift tracker, settings."""

    def __init__(self, predictor: Predictor, settings: ServeSettings) -> None:
        self.predictor, self.settings = predictor, settings
        self.metrics = ServerMetrics()
        self.metrics.model_info.set(1, predictor.version[:16], predictor.meta.architecture)
        self.batcher: MicroBatcher[Any, ImageResult] = MicroBatcher(
            predictor, max_batch=settings.max_batch, max_wait_ms=settings.max_wait_ms, capacity=settings.queue_size,
            warmup=predictor.warmup, on_batch=self._on_batch)  # fmt: skip
        # /v1/explain: one request at a time on the explainer's own model copy, behind its own bounded queue.
        self.explainer = Explainer(predictor.explain_model, predictor.meta.preprocessing)
        self.explain_batcher: MicroBatcher[Any, bytes] = MicroBatcher(
            self.explainer, max_batch=1, max_wait_ms=0, capacity=settings.explain_queue_size,
            warmup=self.explainer.warmup, on_batch=self._on_explain)  # fmt: skip
        # Decoding runs on a few threads of its own, so that at most `decode_threads` images are decoded at once.
        self.decode_pool = ThreadPoolExecutor(settings.decode_threads, thread_name_prefix="imgclf-decode")
        self.draining = threading.Event()
        self.audit = None
        if settings.log is not None:
            self.audit = AuditLog(settings.log, max_bytes=int(settings.log_max_mb * (1 << 20)),
                                  backups=settings.log_backups, on_error=self.metrics.audit_errors.inc)  # fmt: skip
        self.drift = None
        if predictor.reference is not None:
            self.drift = DriftTracker(predictor.reference, self.metrics, window=settings.drift_window,
                                      alpha=settings.drift_alpha, classes=tuple(predictor.meta.classes))  # fmt: skip

    def _on_batch(self, size: int, seconds: float) -> None:
        self.metrics.batch_size.observe(size)
        self.metrics.inference.observe(seconds)
        self.metrics.queue_depth.set(self.batcher.queued)

    def _on_explain(self, size: int, seconds: float) -> None:
        self.metrics.explain_seconds.observe(seconds)
        self.metrics.explain_queue_depth.set(self.explain_batcher.queued)

    @property
    def explain_available(self) -> bool:
        """Explain works for this model (its warm-up, which finds the target layer, did not fail)."""
        return self.explain_batcher.error is None

    @property
    def ready(self) -> bool:
        """Both workers warmed up (explain may have been found impossible for this model) and not draining."""
        explain_ok = self.explain_batcher.ready or self.explain_batcher.error is not None
        return self.batcher.ready and explain_ok and not self.draining.is_set()

    def dead(self) -> str | None:
        """Why the server cannot answer predictions any more (a worker died), or None."""
        if self.batcher.dead:
            return f"inference worker: {self.batcher.died or self.batcher.error or 'exited'}"
        if self.explain_batcher.crashed:
            return f"explain worker: {self.explain_batcher.died or 'exited'}"
        return None

    def begin_drain(self) -> None:
        """Readiness off (``/readyz`` 503) while requests are still answered: called first on SIGTERM."""
        self.draining.set()
        self.metrics.ready.set(0.0)

    def prepare(self, files: Sequence[tuple[str, bytes]], deadline: float) -> tuple[list[Upload], list[Any]]:
        return prepare_uploads(files, self.settings, self.predictor.preprocess, deadline)

    def close(self, timeout: float) -> None:
        self.draining.set()
        self.batcher.stop(drain=True, timeout=timeout)
        self.explain_batcher.stop(drain=True, timeout=timeout)
        self.decode_pool.shutdown(wait=False, cancel_futures=True)
        if self.audit is not None:
            self.audit.close()


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _record(state: ServerState, img: Upload, res: ImageResult, request_id: str, latency_ms: float,
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
        "labels": None if res.answer.labels is None else list(res.answer.labels),
        "unknown": res.unknown,
        "ood_score": _finite(round(res.ood_score, 6)),
        "ood_kind": state.predictor.score_name,
        "uncertainty": None if res.uncertainty is None else round(res.uncertainty, 6),
        "model": state.predictor.version,
        "latency_ms": round(latency_ms, 3),
    }
    if res.features is not None:
        rec["features"] = [_finite(v) for v in res.features]
    if state.settings.log_images:
        rec["image"] = base64.b64encode(raw).decode("ascii")
    return rec


def create_app(bundle_dir: str | Path, settings: ServeSettings | None = None) -> Any:
    """A FastAPI app serving the bundle in ``bundle_dir`` (loaded now; warmed up when the app starts).

    Routes: ``POST /v1/predict``, ``GET /v1/model``, ``GET /healthz``, ``GET /readyz``, ``GET /metrics``,
    ``GET /openapi.json`` (the request and answer schemas) and the web page at ``/``. Nothing is ever loaded from
    a request. See :class:`ServeSettings` for the limits.

    >>> # app = create_app("runs/x/bundle", ServeSettings(token="s3cret"))  # then: uvicorn.run(app)
    """
    from imgclf.api import hedge, load

    settings = settings or ServeSettings()
    optional_import("fastapi", "serve")
    optional_import("python_multipart", "serve")  # python-multipart, for uploads
    clf = load(bundle_dir, device=settings.device, engine=settings.engine)
    if settings.adapt:
        clf = clf.adapted(settings.adapt)
    # the same wrapper as `imgclf predict --tta / --mc-dropout`; a model without dropout fails here, at start-up
    clf = hedge(clf, tta=settings.tta, mc_dropout=settings.mc_dropout)
    return build_app(Predictor(clf, top_k=settings.top_k, reject=settings.reject), settings)


def build_app(predictor: Predictor, settings: ServeSettings) -> Any:
    """The app around an already built :class:`Predictor` (what :func:`create_app` calls after loading)."""
    fastapi = optional_import("fastapi", "serve")
    from fastapi import Request
    from fastapi.responses import HTMLResponse, JSONResponse, Response

    state = ServerState(predictor, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        state.batcher.start()
        state.explain_batcher.start()
        try:
            yield
        finally:
            # Uvicorn has finished the in-flight requests by now; drain whatever is still queued.
            await asyncio.get_running_loop().run_in_executor(None, state.close, settings.shutdown_timeout_s)

    # No Swagger UI or ReDoc: they load their scripts from a CDN, which the Content-Security-Policy (default-src
    # 'self') blocks. The OpenAPI document is served below, behind the token like /v1/model (it names the version).
    app = fastapi.FastAPI(title="imgclf", version=predictor.version[:12], lifespan=lifespan, docs_url=None,
                          redoc_url=None, openapi_url=None)  # fmt: skip
    app.state.imgclf = state
    app.add_middleware(GuardMiddleware, settings=settings, metrics=state.metrics)

    def refuse(exc: ApiError) -> Any:
        state.metrics.errors.inc(exc.code)
        return JSONResponse({"detail": exc.detail, "code": exc.code}, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(ApiError)
    async def _api_error(request: Any, exc: ApiError) -> Any:
        return refuse(exc)

    async def require_token(request: Request) -> None:
        """With a token set, every route but the health checks and the static page shell needs it."""
        if settings.token:
            given = bearer_token(request.headers.get("authorization", ""))
            if not hmac.compare_digest(given.encode(), settings.token.encode()):
                raise ApiError(401, "unauthorized", "missing or wrong bearer token (send 'Authorization: Bearer ...')",
                               {"WWW-Authenticate": 'Bearer realm="imgclf"'})  # fmt: skip

    protected = [fastapi.Depends(require_token)]

    @app.get("/healthz")
    async def healthz() -> Any:
        why = state.dead()
        if why is not None:
            return JSONResponse({"status": "dead", "error": why}, status_code=503)
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Any:
        ready = state.ready
        state.metrics.ready.set(1.0 if ready else 0.0)
        body: dict[str, Any] = {"ready": ready, "model": predictor.version}
        if state.batcher.error is not None:
            body["error"] = f"warm-up failed: {state.batcher.error}"
        elif state.draining.is_set():
            body["error"] = "shutting down: finishing the requests in flight"
        elif (why := state.dead()) is not None:
            body["error"] = why
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", dependencies=protected)
    async def metrics() -> Any:
        state.metrics.queue_depth.set(state.batcher.queued)
        state.metrics.explain_queue_depth.set(state.explain_batcher.queued)
        state.metrics.ready.set(1.0 if state.ready else 0.0)
        return Response(state.metrics.render(), media_type=CONTENT_TYPE)

    @app.get("/openapi.json", dependencies=protected, include_in_schema=False)
    async def openapi_document() -> Any:
        """The OpenAPI document: routes, request bodies and headers, and the answer schema of ``/v1/predict``."""
        return JSONResponse(app.openapi())

    @app.get("/v1/model", dependencies=protected)
    async def model_info() -> Any:
        meta = predictor.meta
        return {"architecture": meta.architecture, "classes": list(meta.classes),
                "num_classes": meta.num_classes, "preprocessing": meta.to_dict()["preprocessing"],
                "version": meta.weights_sha256, "temperature": meta.temperature, "rejection": meta.rejection,
                "rejection_active": predictor.threshold is not None, "ood_score": predictor.score_name,
                "metrics": meta.metrics, "created": meta.created, "drift_monitoring": state.drift is not None,
                "top_k": predictor.top_k, "explain": state.explain_available, "engine": predictor.engine_name,
                "tta": settings.tta, "mc_dropout": settings.mc_dropout, "uncertainty": predictor.hedged,
                "limits": {"max_body_bytes": settings.max_body_bytes, "max_images": settings.max_images,
                           "max_pixels": settings.max_pixels, "max_request_pixels": settings.max_request_pixels,
                           "formats": list(settings.formats), "timeout_s": settings.timeout_s}}  # fmt: skip

    async def decode(files: list[tuple[str, bytes]], deadline: float, timeout: float) -> tuple[list[Upload], list]:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(state.decode_pool, state.prepare, files, deadline)
        except UploadError as exc:
            raise ApiError(exc.status, exc.code, exc.reason) from None
        except LateError:
            raise ApiError(504, "deadline", f"the request's deadline of {timeout:.3f} s passed while its images "
                                            "waited to be decoded (overloaded; retry later)") from None  # fmt: skip

    async def run_on(batcher: MicroBatcher, tensors: list, deadline: float, timeout: float) -> list:
        """Queue ``tensors`` on ``batcher`` and wait for their results until ``deadline`` (429/503/504 else)."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise ApiError(504, "deadline", f"the request's deadline of {timeout:.3f} s passed before inference")
        try:
            futures: list[Future] = batcher.submit(tensors, deadline=deadline)
        except QueueFullError as exc:
            raise ApiError(429, "queue_full", str(exc), {"Retry-After": str(math.ceil(exc.retry_after_s))}) from None
        except BatcherStoppedError as exc:
            code = "worker_dead" if batcher.died is not None else "shutting_down"
            raise ApiError(503, code, str(exc), {"Retry-After": "1"}) from None
        del tensors[:]  # the queue holds them now; nothing else does
        waiting = [asyncio.wrap_future(f) for f in futures]
        try:
            return await asyncio.wait_for(asyncio.gather(*waiting), timeout=left)
        except (asyncio.TimeoutError, DeadlineExceededError):
            for f in futures:
                f.cancel()
            why = f"no answer within the request's deadline of {timeout:.3f} s (overloaded; retry later)"
            raise ApiError(504, "deadline", why) from None
        except BatcherStoppedError as exc:
            code = "worker_dead" if batcher.died is not None else "shutting_down"
            raise ApiError(503, code, str(exc), {"Retry-After": "1"}) from None

    @app.post("/v1/predict", dependencies=protected,
              openapi_extra={"requestBody": IMAGES_BODY, "parameters": REQUEST_HEADERS,
                             "responses": PREDICT_RESPONSES})  # fmt: skip
    async def predict(request: Request) -> Any:
        start = time.perf_counter()
        request_id = safe_name(request.headers.get("x-request-id"), 0)[:64] if request.headers.get(
            "x-request-id") else uuid.uuid4().hex  # fmt: skip
        timeout = timeout_s(request, settings)
        deadline = time.monotonic() + timeout
        files = await read_uploads(request, settings)
        uploads, tensors = await decode(files, deadline, timeout)
        state.metrics.queue_depth.set(state.batcher.queued + len(tensors))
        results = await run_on(state.batcher, tensors, deadline, timeout)
        latency_ms = (time.perf_counter() - start) * 1000.0
        state.metrics.images.inc(amount=len(results))
        rejected = sum(r.unknown for r in results)
        if rejected:
            state.metrics.rejections.inc(amount=rejected)
        if state.audit is not None:
            for img, res, (_, raw) in zip(uploads, results, files):
                state.audit.write(_record(state, img, res, request_id, latency_ms, raw))
        if state.drift is not None:
            state.drift.add(list(results))
        # The answer schema of `imgclf predict --json` and the Python API (imgclf.tasks.Answer), plus the upload's
        # facts: one schema for CLI, API and REST.
        preds = [{"index": i, "name": u.name, **r.answer.to_dict(), "confidence": r.confidence,
                  **({} if r.uncertainty is None else {"uncertainty": r.uncertainty}),
                  "width": u.width, "height": u.height, "sha256": u.sha256, "latency_ms": latency_ms}
                 for i, (r, u) in enumerate(zip(results, uploads))]  # fmt: skip
        return {"model": predictor.version, "request_id": request_id, "latency_ms": latency_ms,
                "predictions": preds}  # fmt: skip

    @app.post("/v1/explain", dependencies=protected,
              openapi_extra={"requestBody": IMAGES_BODY, "parameters": REQUEST_HEADERS})  # fmt: skip
    async def explain_image(request: Request) -> Any:
        """Grad-CAM overlay of one uploaded image for its predicted class, as a PNG data URL."""
        timeout = timeout_s(request, settings)
        deadline = time.monotonic() + timeout
        if not state.explain_available:
            raise ApiError(501, "explain_unavailable", f"this model cannot be explained with Grad-CAM "
                                                       f"({state.explain_batcher.error})")  # fmt: skip
        files = await read_uploads(request, settings)
        if len(files) != 1:
            raise ApiError(422, "one_image", f"/v1/explain takes exactly one image, got {len(files)}")
        _, tensors = await decode(files, deadline, timeout)
        (png,) = await run_on(state.explain_batcher, tensors, deadline, timeout)
        state.metrics.explanations.inc()
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
