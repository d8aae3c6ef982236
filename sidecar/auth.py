"""Bearer-token check for every endpoint but ``/healthz`` (``/metrics`` by choice).

A pure ASGI middleware, outermost, so a caller without the token is turned away
before its body is read. The comparison is constant-time (``hmac.compare_digest``)
so response timing says nothing about how much of a guess was right.
"""

from __future__ import annotations

import hmac

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz"})


class BearerAuthMiddleware:
    """Answers 401 unless ``Authorization: Bearer <token>`` matches."""

    def __init__(self, app: ASGIApp, token: str, metrics_auth: bool = True) -> None:
        self.app = app
        self.expected = f"Bearer {token}".encode()
        self.open_paths = OPEN_PATHS if metrics_auth else OPEN_PATHS | {"/metrics"}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        given = b""
        for name, value in scope.get("headers") or []:
            if name == b"authorization":
                given = value
                break
        if not hmac.compare_digest(given, self.expected):
            response = JSONResponse(
                {"error": "missing or wrong bearer token"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
