"""ASGI middleware in front of every route: request body limit, request counts and latency, security headers."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from imgclf.serve._metrics import ServerMetrics

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROUTES = ("/", "/v1/predict", "/v1/model", "/healthz", "/readyz", "/metrics", "/ui/app.js", "/ui/style.css")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; frame-ancestors 'none'"),
]


class BodyTooLargeError(Exception):
    """Raised from ``receive`` when the streamed body passes the limit (turned into a 413 here)."""


def _json(status: int, detail: str, code: str) -> tuple[list[tuple[bytes, bytes]], bytes]:
    body = json.dumps({"detail": detail, "code": code}).encode()
    return [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")], body  # fmt: skip


class GuardMiddleware:
    """Refuses bodies over ``max_body`` bytes with 413 *before* the app parses them: at once when
    ``Content-Length`` says so, else as soon as the streamed bytes pass the limit. Counts every request by
    route and status and times it; adds security headers to every response.
    """

    def __init__(self, app: ASGIApp, *, max_body: int, metrics: ServerMetrics) -> None:
        self.app, self.max_body, self.metrics = app, max_body, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        route = scope.get("path", "") if scope.get("path", "") in ROUTES else "other"
        start = time.perf_counter()
        state = {"status": 0, "started": False}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"], state["started"] = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = list(message["headers"]) + SECURITY_HEADERS
            await send(message)

        try:
            declared = self._content_length(scope)
            if declared is not None and declared > self.max_body:
                await self._refuse(send_wrapper, declared)
                return
            seen = 0

            async def receive_limited() -> Message:
                nonlocal seen
                message = await receive()
                if message["type"] == "http.request":
                    seen += len(message.get("body", b""))
                    if seen > self.max_body:
                        raise BodyTooLargeError
                return message

            await self.app(scope, receive_limited, send_wrapper)
        except BodyTooLargeError:
            if state["started"]:
                raise
            await self._refuse(send_wrapper, None)
        finally:
            status = state["status"] or 500
            self.metrics.requests.inc(route, str(status))
            self.metrics.latency.observe(time.perf_counter() - start, route)

    @staticmethod
    def _content_length(scope: Scope) -> int | None:
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    async def _refuse(self, send: Send, declared: int | None) -> None:
        self.metrics.errors.inc("body_too_large")
        size = f"is {declared:,} bytes" if declared is not None else "streamed past that"
        why = (f"request body {size}; the limit is {self.max_body:,} bytes (send fewer or smaller images, "
               "or start the server with a larger --max-body-mb)")  # fmt: skip
        headers, body = _json(413, why, "body_too_large")
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})
