"""Server settings: one frozen dataclass, filled from CLI flags or keyword arguments."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from imgclf import data as D
from imgclf.errors import ConfigError

TOKEN_ENV = "IMGCLF_TOKEN"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


@dataclass(frozen=True)
class ServeSettings:
    """How the server binds, batches, limits and logs.

    - ``token``: bearer token required on every endpoint except ``/healthz`` and ``/readyz`` (None: open).
      :meth:`with_env_token` fills it from ``$IMGCLF_TOKEN``.
    - ``max_batch`` / ``max_wait_ms``: the inference worker runs a batch when it has ``max_batch`` images or the
      oldest waiting image has waited ``max_wait_ms``.
    - ``queue_size``: images waiting for the worker; beyond it requests get 429 with ``Retry-After``.
    - ``max_body_mb``: request bodies above it get 413 before they are parsed; ``max_images`` per request
      (counted before anything is decoded); ``max_pixels`` per image and ``max_request_pixels`` for all the
      images of one request together (width x height from the headers, checked before any pixel is decoded;
      413); images whose long side is over ``max_aspect`` times the short one get 422.
    - ``formats``: the image formats accepted (Pillow names; default JPEG, PNG, WEBP, BMP, GIF, TIFF); any other
      gets 415 without being parsed.
    - ``decode_threads``: images decoded at once across all requests (bounds decoding memory).
    - ``body_timeout_s``: the whole request body must arrive within it (408 past it, e.g. a trickling client);
      ``max_connections``: concurrent connections (uvicorn answers 503 beyond it).
    - ``timeout_s``: a request's deadline; a client may ask for less with ``X-Timeout-Ms`` (a positive finite
      number of milliseconds, else 422); 504 past it.
    - ``explain_queue_size``: ``/v1/explain`` requests waiting for the explain worker (one at a time, on its own
      copy of the model); beyond it 429 with ``Retry-After``.
    - ``allowed_hosts``: ``Host`` header names accepted besides 127.0.0.1, localhost, [::1] and ``host`` (400
      otherwise, against DNS rebinding; ``"*"`` accepts any). ``cors_origins``: origins allowed to call the API
      from a browser (CORS); none by default, so a cross-origin request gets 403.
    - ``drain_delay_s``: on SIGTERM, seconds during which ``/readyz`` answers 503 while requests are still
      served, before the listener closes (lets a load balancer stop routing first).
    - ``log`` / ``log_images`` / ``log_max_mb`` / ``log_backups``: the JSONL audit log and its rotation.
    - ``engine``: torch, torch-fast or onnxruntime (the bundle's exported ``model.onnx``), as ``imgclf.load``.
    - ``adapt``: ``"bn"`` or ``"tent"`` answers through a test-time-adapted copy of the model (opt-in; see
      :meth:`imgclf.Classifier.adapted`).
    - ``tta`` (``"flip"`` / ``"flip+crop"`` / ``"flip+shift"``) and ``mc_dropout`` (T passes): answer with the
      probabilities averaged over test-time views / dropout passes, as ``imgclf predict --tta / --mc-dropout``
      does (one code path: :func:`imgclf.api.hedge`); each prediction then carries its ``uncertainty`` (mutual
      information, nats). A model without dropout fails at start-up with ``mc_dropout``.
    - ``drift_window``: predictions per drift window for the ``/metrics`` gauges (needs the bundle's
      ``extra["monitor"]`` reference).

    >>> ServeSettings(port=8080, max_batch=32).host
    '127.0.0.1'
    """

    host: str = "127.0.0.1"
    port: int = 8000
    token: str | None = None
    max_batch: int = 16
    max_wait_ms: float = 5.0
    queue_size: int = 256
    max_body_mb: float = 20.0
    max_images: int = 32
    max_pixels: int = 40_000_000
    max_request_pixels: int = 100_000_000
    max_aspect: float = 100.0
    formats: tuple[str, ...] = D.IMAGE_FORMATS
    decode_threads: int = 4
    body_timeout_s: float = 30.0
    max_connections: int = 64
    timeout_s: float = 30.0
    explain_queue_size: int = 8
    allowed_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    drain_delay_s: float = 0.0
    top_k: int = 5
    reject: bool = True
    log: Path | None = None
    log_images: bool = False
    log_max_mb: float = 50.0
    log_backups: int = 5
    drift_window: int = 200
    drift_alpha: float = 0.05
    shutdown_timeout_s: float = 30.0
    device: str = "cpu"
    engine: str = "torch"
    adapt: str | None = None
    tta: str | None = None
    mc_dropout: int = 0

    def __post_init__(self) -> None:
        positive = ("max_batch", "queue_size", "max_body_mb", "max_images", "max_pixels", "max_request_pixels",
                    "max_aspect", "timeout_s", "top_k", "log_max_mb", "shutdown_timeout_s", "decode_threads",
                    "body_timeout_s", "max_connections", "explain_queue_size")  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"serve setting {name}={value} must be a positive number")
        if isinstance(self.mc_dropout, bool) or not isinstance(self.mc_dropout, int) or self.mc_dropout < 0:
            raise ConfigError(f"--mc-dropout {self.mc_dropout!r} must be a number of passes >= 1 (0: off)")
        if self.adapt and (self.tta or self.mc_dropout):
            raise ConfigError("--adapt cannot be combined with --tta / --mc-dropout: serve one or the other")
        if self.max_wait_ms < 0 or self.log_backups < 0 or not self.drain_delay_s >= 0:
            raise ConfigError("serve settings max_wait_ms, log_backups and drain_delay_s must not be negative")
        object.__setattr__(self, "formats", D.image_formats(self.formats))
        object.__setattr__(self, "allowed_hosts", tuple(h.strip().lower() for h in self.allowed_hosts if h.strip()))
        origins = tuple(o.strip().rstrip("/").lower() for o in self.cors_origins if o.strip())
        bad = [o for o in origins if o != "*" and not o.startswith(("http://", "https://"))]
        if bad:
            raise ConfigError(f"CORS origin {bad[0]!r} must look like http://host[:port] or https://host[:port]")
        object.__setattr__(self, "cors_origins", origins)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not a TCP port (0-65535)")
        ceiling = 2 * (Image.MAX_IMAGE_PIXELS or 0)  # Pillow refuses larger images whatever the caller allows
        if ceiling and self.max_pixels > ceiling:
            raise ConfigError(f"--max-megapixels {self.max_pixels / 1e6:g} is above Pillow's decompression-bomb limit "
                              f"({ceiling / 1e6:.1f} MP), which cannot be lifted; pass at most that")  # fmt: skip
        if self.drift_window < 10:
            raise ConfigError(f"drift_window={self.drift_window}: a drift window needs at least 10 predictions")
        if self.token is not None and not self.token.strip():
            raise ConfigError("the bearer token is empty; pass a real token or none")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def hosts(self) -> frozenset[str]:
        """``Host`` header names accepted (port stripped, lower case; IPv6 in brackets); contains "*" for any."""
        bound = self.host.strip().lower()
        if ":" in bound and not bound.startswith("["):
            bound = f"[{bound}]"
        return frozenset((*LOOPBACK_HOSTS, bound, *self.allowed_hosts))

    def with_env_token(self) -> ServeSettings:
        """These settings with ``token`` taken from ``$IMGCLF_TOKEN`` when not set explicitly."""
        env = os.environ.get(TOKEN_ENV, "").strip()
        return dataclasses.replace(self, token=env) if self.token is None and env else self
