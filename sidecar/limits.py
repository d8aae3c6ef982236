"""ASGI middleware: refuses bodies over 1 MiB, times every request for the histogram."""

from __future__ import annotations

import time

from prometheus_client import Histogram
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MAX_BODY_BYTES = 1024 * 1024
BODY = "sidecar.body"
"""Scope key of the body this middleware read (the fast ``/v1/rank`` takes it from there)."""


class LimitsMiddleware:
    """Refuses bodies over :data:`MAX_BODY_BYTES` (413) and times every request."""

    def __init__(self, app: ASGIApp, duration: Histogram) -> None:
        self.app = app
        self.duration = duration
        self._children: dict[str, Histogram] = {}
        """The histogram's child per handler, looked up once (labels() costs a lock)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            length = None
            for name, value in scope.get("headers") or ():
                if name == b"content-length":
                    length = value
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                await _too_large(send)
                return
            if scope.get("method") in ("POST", "PUT", "PATCH"):
                body, too_large = await _read_body(receive)
                if too_large:
                    await _too_large(send)
                    return
                receive = _replay(body, receive)
                scope[BODY] = body
            await self.app(scope, receive, send)
        finally:
            handler = _handler(scope)
            child = self._children.get(handler)
            if child is None:
                child = self._children[handler] = self.duration.labels(handler)
            child.observe(time.perf_counter() - started)


def _handler(scope: Scope) -> str:
    """The route's path template; a plain Starlette route (the fast ``/v1/rank``) sets
    no ``route``, only its endpoint: no route has path parameters, so the path is it."""
    path = getattr(scope.get("route"), "path", None)
    if path is None and scope.get("endpoint") is not None:
        path = scope.get("path")
    return str(path) if path else "unmatched"


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _too_large(send: Send) -> None:
    response = JSONResponse(
        {"error": f"request body larger than {MAX_BODY_BYTES} bytes"}, status_code=413
    )
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
