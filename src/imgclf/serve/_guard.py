"""ASGI middleware in front of every route: Host and Origin checks, request body limit and read timeout, request
counts and latency, security headers, and client disconnects taken for what they are."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from imgclf.serve._metrics import ServerMetrics
from imgclf.serve._settings import ServeSettings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("imgclf.serve")

ROUTES = ("/", "/v1/predict", "/v1/explain", "/v1/model", "/healthz", "/readyz", "/metrics", "/openapi.json",
          "/ui/app.js", "/ui/style.css")  # fmt: skip
HEALTH_ROUTES = ("/healthz", "/readyz")  # probes come with the pod's address as Host; they reveal nothing
CLIENT_CLOSED = 499  # nginx's "client closed request": counted, never a 5xx
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'"),
]
CORS_ALLOW_HEADERS = b"authorization, content-type, x-request-id, x-timeout-ms"


class BodyTooLargeError(Exception):
    """Raised from ``receive`` when the streamed body passes the limit (turned into a 413 here)."""


class BodyTimeoutError(Exception):
    """Raised from ``receive`` when the body has not fully arrived within the read timeout (a 408 here)."""


def _json(status: int, detail: str, code: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"detail": detail, "code": code}).encode()
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")], body  # fmt: skip


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return None


def host_name(host: str) -> str:
    """The name part of a ``Host`` header, lower case: ``"[::1]:8000"`` -> ``"[::1]"``, ``"a.b:80"`` -> ``"a.b"``."""
    host = host.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[: end + 1] if end > 0 else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class GuardMiddleware:
    """In front of the app, in this order:

    - ``Host`` must be one of ``settings.hosts`` (400 ``bad_host``; the health checks are exempt): a page on
      another site cannot reach the API through DNS rebinding.
    - A request with an ``Origin`` other than the server's own gets 403 ``cross_origin`` unless that origin is
      in ``settings.cors_origins``; listed origins get CORS headers and preflight answers. No CORS by default.
    - Bodies over ``max_body`` bytes get 413 before the app parses them (at once when ``Content-Length`` says
      so, else as soon as the streamed bytes pass the limit); a body not complete within ``body_timeout_s``
      gets 408.
    - A client that goes away mid-body is counted as status 499 and reason ``client_disconnect``, not as a
      server error, and leaves no traceback.

    Every request is counted by route and status and timed; security headers go on every response.
    """

    def __init__(self, app: ASGIApp, *, settings: ServeSettings, metrics: ServerMetrics) -> None:
        self.app, self.settings, self.metrics = app, settings, metrics
        self.max_body = settings.max_body_bytes
        self.hosts = settings.hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        route = path if path in ROUTES else "other"
        start = time.perf_counter()
        state: dict[str, Any] = {"status": 0, "started": False, "disconnected": False}
        cors = self._cors_headers(scope)

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS + cors
            await send(message)

        try:
            refusal = self._check_host(scope, path) or self._check_origin(scope)
            if refusal is not None:
                await self._drain(scope, receive)  # so the client reads our answer, not a reset
                await self._send(send_wrapper, *refusal)
                return
            if scope.get("method") == "OPTIONS" and _header(scope, b"access-control-request-method") and cors:
                await self._preflight(send_wrapper)
                return
            declared = self._content_length(scope)
            if declared is not None and declared > self.max_body:
                await self._refuse_size(send_wrapper, declared)
                return
            seen, body_done = 0, False
            until = time.monotonic() + self.settings.body_timeout_s

            async def receive_limited() -> Message:
                nonlocal seen, body_done
                if body_done:
                    message = await receive()
                else:
                    left = until - time.monotonic()
                    if left <= 0:
                        raise BodyTimeoutError
                    try:
                        message = await asyncio.wait_for(receive(), left)
                    except asyncio.TimeoutError:
                        raise BodyTimeoutError from None
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > self.max_body:
                        raise BodyTooLargeError
                    body_done = body_done or not message.get("more_body", False)
                elif message["type"] == "http.disconnect":
                    state["disconnected"] = not body_done or not state["started"]
                return message

            await self.app(scope, receive_limited, send_wrapper)
        except BodyTooLargeError:
            if state["started"]:
                raise
            await self._refuse_size(send_wrapper, None)
        except BodyTimeoutError:
            if state["started"]:
                raise
            why = (f"the request body did not arrive within {self.settings.body_timeout_s:g} s (send it faster, "
                   "or start the server with a larger --body-timeout)")  # fmt: skip
            await self._send(send_wrapper, 408, why, "body_timeout")
        except Exception:
            if not state["disconnected"]:
                raise
            # The client hung up before its request was read (or answered): nothing to answer, nothing failed.
            log.info("client disconnected before its request to %s was complete", path)
        finally:
            if state["disconnected"] and not state["started"]:
                status = CLIENT_CLOSED
                self.metrics.errors.inc("client_disconnect")
            else:
                status = state["status"] or 500
            self.metrics.requests.inc(route, str(status))
            self.metrics.latency.observe(time.perf_counter() - start, route)

    # -- checks -------------------------------------------------------------------------------------------
    def _check_host(self, scope: Scope, path: str) -> tuple[int, str, str] | None:
        host = _header(scope, b"host")
        if host is None or path in HEALTH_ROUTES or "*" in self.hosts or host_name(host) in self.hosts:
            return None
        why = (f"Host {host[:100]!r} is not served here (accepted: {', '.join(sorted(self.hosts))}); start the "
               "server with --allowed-host NAME to add a name")  # fmt: skip
        return 400, why, "bad_host"

    def _foreign_origin(self, scope: Scope) -> str | None:
        """The request's ``Origin`` when it is not the server's own, else None."""
        origin = _header(scope, b"origin")
        if origin is None:
            return None
        origin = origin.strip().lower().rstrip("/")
        host = (_header(scope, b"host") or "").strip().lower()
        if origin != "null" and host and origin.split("://", 1)[-1] == host:
            return None
        return origin

    def _check_origin(self, scope: Scope) -> tuple[int, str, str] | None:
        origin = self._foreign_origin(scope)
        if origin is None or origin in self.settings.cors_origins or "*" in self.settings.cors_origins:
            return None
        why = (f"cross-origin request from {origin[:100]!r} refused: this server allows no other origin (start it "
               "with --cors-origin ORIGIN to allow one)")  # fmt: skip
        return 403, why, "cross_origin"

    def _cors_headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        origin = self._foreign_origin(scope)
        allowed = self.settings.cors_origins
        if origin is None or origin == "null" or not (origin in allowed or "*" in allowed):
            return []
        return [(b"access-control-allow-origin", origin.encode("latin-1")), (b"vary", b"Origin"),
                (b"access-control-expose-headers", b"retry-after, www-authenticate")]  # fmt: skip

    @staticmethod
    def _content_length(scope: Scope) -> int | None:
        value = _header(scope, b"content-length")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    async def _drain(self, scope: Scope, receive: Receive) -> None:
        """Read and drop a refused request's body (within the size limit and the body timeout): closing the
        connection with unread bytes in it makes the client see a reset instead of the refusal."""
        declared = self._content_length(scope)
        if declared is not None and (declared == 0 or declared > self.max_body):
            return
        seen, until = 0, time.monotonic() + self.settings.body_timeout_s
        while (left := until - time.monotonic()) > 0:
            try:
                message = await asyncio.wait_for(receive(), left)
            except asyncio.TimeoutError:
                return
            if message["type"] != "http.request":
                return
            seen += len(message.get("body", b""))
            if seen > self.max_body or not message.get("more_body", False):
                return

    # -- answers ------------------------------------------------------------------------------------------
    async def _send(self, send: Send, status: int, detail: str, code: str) -> None:
        self.metrics.errors.inc(code)
        headers, body = _json(status, detail, code)
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _refuse_size(self, send: Send, declared: int | None) -> None:
        size = f"is {declared:,} bytes" if declared is not None else "streamed past that"
        why = (f"request body {size}; the limit is {self.max_body:,} bytes (send fewer or smaller images, "
               "or start the server with a larger --max-body-mb)")  # fmt: skip
        await self._send(send, 413, why, "body_too_large")

    @staticmethod
    async def _preflight(send: Send) -> None:
        headers = [(b"access-control-allow-methods", b"GET, POST"), (b"access-control-allow-headers",
                   CORS_ALLOW_HEADERS), (b"access-control-max-age", b"600"), (b"content-length", b"0")]  # fmt: skip
        await send({"type": "http.response.start", "status": 204, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
