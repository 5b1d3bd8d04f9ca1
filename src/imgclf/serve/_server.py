"""Running the app under uvicorn, with graceful shutdown on SIGTERM / Ctrl-C."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgclf.serve._app import create_app
from imgclf.serve._settings import ServeSettings
from imgclf.utils import optional_import

log = logging.getLogger("imgclf.serve")


def _draining_server(uvicorn: Any, config: Any, on_signal: Callable[[], None], delay_s: float) -> Any:
    """A uvicorn server that turns readiness off on the first SIGTERM / Ctrl-C *before* it starts draining, and
    keeps serving for ``delay_s`` seconds first (so a load balancer polling /readyz stops routing to it)."""

    class DrainingServer(uvicorn.Server):  # type: ignore[misc, name-defined]
        _timer: threading.Timer | None = None

        def handle_exit(self, sig: int, frame: Any) -> None:
            if self._timer is None and not self.should_exit:
                on_signal()
                if delay_s > 0:
                    log.info("shutting down in %.1f s: /readyz now answers 503, requests are still served", delay_s)
                    self._timer = threading.Timer(delay_s, super().handle_exit, (sig, frame))
                    self._timer.daemon = True
                    self._timer.start()
                    return
            elif self._timer is not None:
                self._timer.cancel()  # a second signal: drain now
            super().handle_exit(sig, frame)

    return DrainingServer(config)


def run_server(bundle_dir: str | Path, settings: ServeSettings | None = None, *, log_level: str = "info") -> None:
    """Serve ``bundle_dir`` on ``settings.host:settings.port`` (127.0.0.1:8000 by default) until stopped.

    On SIGTERM or Ctrl-C the server first turns ``/readyz`` to 503 (and keeps serving ``drain_delay_s``
    seconds), then stops accepting connections, finishes the requests it has accepted (up to
    ``shutdown_timeout_s``), drains the inference queues, closes the audit log, and returns. At most
    ``max_connections`` connections are served at once (uvicorn answers 503 beyond).

    >>> # run_server("runs/x/bundle", ServeSettings(port=8080, token="s3cret"))
    """
    uvicorn = optional_import("uvicorn", "serve")
    settings = (settings or ServeSettings()).with_env_token()
    app = create_app(bundle_dir, settings)
    config: Any = uvicorn.Config(app, host=settings.host, port=settings.port, log_level=log_level,
                                 timeout_graceful_shutdown=int(settings.shutdown_timeout_s) or 1,
                                 # uvicorn counts the connection asking too: N + 1 lets N be served at once
                                 limit_concurrency=settings.max_connections + 1, access_log=False,
                                 server_header=False, lifespan="on")  # fmt: skip
    _draining_server(uvicorn, config, app.state.imgclf.begin_drain, settings.drain_delay_s).run()
