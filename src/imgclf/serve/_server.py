"""Running the app under uvicorn, with graceful shutdown on SIGTERM / Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgclf.serve._app import create_app
from imgclf.serve._settings import ServeSettings
from imgclf.utils import optional_import


def run_server(bundle_dir: str | Path, settings: ServeSettings | None = None, *, log_level: str = "info") -> None:
    """Serve ``bundle_dir`` on ``settings.host:settings.port`` (127.0.0.1:8000 by default) until stopped.

    On SIGTERM or Ctrl-C the server stops accepting connections, finishes the requests it has accepted (up to
    ``shutdown_timeout_s``), drains the inference queue, closes the audit log, and returns.

    >>> # run_server("runs/x/bundle", ServeSettings(port=8080, token="s3cret"))
    """
    uvicorn = optional_import("uvicorn", "serve")
    settings = (settings or ServeSettings()).with_env_token()
    app = create_app(bundle_dir, settings)
    config: Any = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                                 timeout_graceful_shutdown=int(settings.shutdown_timeout_s) or 1,
                                 access_log=False, server_header=False, lifespan="on")  # fmt: skip
    uvicorn.Server(config).run()
