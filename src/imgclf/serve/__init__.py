"""Serving a bundle over HTTP: a FastAPI app with dynamic micro-batching, hard limits, an audit log, drift
gauges and a web page.

fastapi, uvicorn and python-multipart (extra ``serve``) are imported only when an app is built.

>>> from imgclf.serve import ServeSettings, create_app, run_server
>>> # run_server("runs/x/bundle", ServeSettings(port=8080))          # what `imgclf serve` does
>>> # app = create_app("runs/x/bundle", ServeSettings(max_batch=32))  # to mount or test in-process
"""

from imgclf.serve._app import build_app, create_app
from imgclf.serve._audit import AuditLog
from imgclf.serve._batcher import BatcherStoppedError, DeadlineExceededError, MicroBatcher, QueueFullError
from imgclf.serve._decode import DecodedImage, UploadError, decode_upload
from imgclf.serve._metrics import Counter, Gauge, Histogram, ServerMetrics
from imgclf.serve._predictor import REJECTION_SCORES, ImageResult, Predictor
from imgclf.serve._requests import ApiError
from imgclf.serve._server import run_server
from imgclf.serve._settings import TOKEN_ENV, ServeSettings
from imgclf.utils import publish

__all__ = [
    "REJECTION_SCORES",
    "TOKEN_ENV",
    "ApiError",
    "AuditLog",
    "BatcherStoppedError",
    "Counter",
    "DeadlineExceededError",
    "DecodedImage",
    "Gauge",
    "Histogram",
    "ImageResult",
    "MicroBatcher",
    "Predictor",
    "QueueFullError",
    "ServeSettings",
    "ServerMetrics",
    "UploadError",
    "build_app",
    "create_app",
    "decode_upload",
    "run_server",
]

publish(__name__, globals(), __all__)
