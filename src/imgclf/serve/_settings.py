"""Server settings: one frozen dataclass, filled from CLI flags or keyword arguments."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from imgclf.errors import ConfigError

TOKEN_ENV = "IMGCLF_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    """How the server binds, batches, limits and logs.

    - ``token``: bearer token required on every endpoint except ``/healthz`` and ``/readyz`` (None: open).
      :meth:`with_env_token` fills it from ``$IMGCLF_TOKEN``.
    - ``max_batch`` / ``max_wait_ms``: the inference worker runs a batch when it has ``max_batch`` images or the
      oldest waiting image has waited ``max_wait_ms``.
    - ``queue_size``: images waiting for the worker; beyond it requests get 429 with ``Retry-After``.
    - ``max_body_mb``: request bodies above it get 413 before they are parsed; ``max_images`` per request;
      ``max_pixels`` per image (width x height, checked from the header before decoding; 413); images whose
      long side is over ``max_aspect`` times the short one get 422.
    - ``timeout_s``: a request's deadline (a client may ask for less with ``X-Timeout-Ms``); 504 past it.
    - ``log`` / ``log_images`` / ``log_max_mb`` / ``log_backups``: the JSONL audit log and its rotation.
    - ``engine``: torch, torch-fast or onnxruntime (the bundle's exported ``model.onnx``), as ``imgclf.load``.
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
    max_aspect: float = 100.0
    timeout_s: float = 30.0
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

    def __post_init__(self) -> None:
        positive = ("max_batch", "queue_size", "max_body_mb", "max_images", "max_pixels", "max_aspect", "timeout_s",
                    "top_k", "log_max_mb", "shutdown_timeout_s")  # fmt: skip
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"serve setting {name}={getattr(self, name)} must be positive")
        if self.max_wait_ms < 0 or self.log_backups < 0:
            raise ConfigError("serve settings max_wait_ms and log_backups must not be negative")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is not a TCP port (0-65535)")
        if self.drift_window < 10:
            raise ConfigError(f"drift_window={self.drift_window}: a drift window needs at least 10 predictions")
        if self.token is not None and not self.token.strip():
            raise ConfigError("the bearer token is empty; pass a real token or none")

    @property
    def max_body_bytes(self) -> int:
        return int(self.max_body_mb * 1024 * 1024)

    def with_env_token(self) -> ServeSettings:
        """These settings with ``token`` taken from ``$IMGCLF_TOKEN`` when not set explicitly."""
        env = os.environ.get(TOKEN_ENV, "").strip()
        return dataclasses.replace(self, token=env) if self.token is None and env else self
