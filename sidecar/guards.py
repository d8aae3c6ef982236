"""What a hostile local client or web page may not do to the API (ASGI middleware).

- :class:`HostCheckMiddleware`: only ``Host`` values naming this daemon are
  answered (a loopback name or IP literal with any port, the configured listen
  address with its port; with a wildcard listen address also IP literals and the
  machine's host name). Any other gets ``421``: a web page whose name was
  re-bound to 127.0.0.1 (DNS rebinding) cannot drive the unauthenticated API.
- :class:`BodyBudgetMiddleware`: request body bytes held at once, over all
  connections, stay under ``server.max_buffered_body``; the request that would
  pass it gets ``503`` and its connection is closed.

:func:`install_guards` adds both, the event-loop lag monitor and the connection
metrics to an app; the connection limits themselves live in the uvicorn protocol
(:mod:`sidecar.connections`), set up by :mod:`sidecar.serve`.
"""

from __future__ import annotations

import ipaddress
import json
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sidecar.config import SidecarConfig, is_loopback_host
from sidecar.connections import ConnectionCollector, ConnectionGuard, ConnectionLimits
from sidecar.looplag import LoopLag

WILDCARDS = frozenset({"0.0.0.0", "::"})


@dataclass(frozen=True)
class HostPolicy:
    """Which ``Host`` header values name this daemon."""

    listen_host: str
    port: int
    any_ip: bool = False
    names: frozenset[str] = frozenset()

    @classmethod
    def of(cls, config: SidecarConfig) -> HostPolicy:
        host = config.server.host.lower()
        wildcard = host in WILDCARDS
        names = frozenset({socket.gethostname().lower()}) if wildcard else frozenset()
        return cls(host, config.server.port, any_ip=wildcard, names=names)

    def allows(self, value: str) -> bool:
        host, port = split_host(value)
        if host is None:
            return False
        if is_loopback_host(host):
            return True
        if host == self.listen_host and port == self.port:
            return True
        if host in self.names:
            return True
        return self.any_ip and _is_ip(host)


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_host(value: str) -> tuple[str | None, int | None]:
    """``(host, port)`` of a ``Host`` header, lower case, brackets removed; ``(None, None)``
    when it is not ``host[:port]``."""
    value = value.strip().lower()
    if value.startswith("["):
        host, bracket, rest = value[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return None, None
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_or_empty = value.partition(":")
        port_text = port_text_or_empty if colon else None
    if not host or any(c in host for c in "/@?#\\ "):
        return None, None
    if port_text is None:
        return host, None
    if not port_text.isdigit() or len(port_text) > 5 or not 0 < int(port_text) < 65536:
        return None, None
    return host, int(port_text)


async def _answer(send: Send, status: int, message: str, *, close: bool = False) -> None:
    body = json.dumps({"error": message}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class HostCheckMiddleware:
    """``421`` for a ``Host`` that does not name this daemon (see :class:`HostPolicy`)."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            hosts = [v for k, v in scope.get("headers") or () if k == b"host"]
            # No Host at all: HTTP/1.0, never a browser; answered.
            if not all(self.policy.allows(v.decode("latin-1")) for v in hosts):
                await _answer(
                    send, 421, "Host header does not name this daemon (see README.md, Limits)"
                )
                return
        await self.app(scope, receive, send)


class BodyBudget:
    """Request body bytes held now, over all requests of one app; one event loop."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.refused = 0

    def take(self, size: int) -> bool:
        if self.used + size > self.limit:
            self.refused += 1
            return False
        self.used += size
        return True

    def give(self, size: int) -> None:
        self.used -= size


class _OverBudget(Exception):
    pass


class BodyBudgetMiddleware:
    """Counts every body chunk a request receives against a shared :class:`BodyBudget`.

    Sits inside the bearer-token check (no byte is read for a client without the
    token) and outside the code that reads bodies; the bytes are given back when
    the request ends.
    """

    def __init__(self, app: ASGIApp, budget: BodyBudget) -> None:
        self.app = app
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        taken = 0
        started = False

        async def counted() -> Message:
            nonlocal taken
            message = await receive()
            size = len(message.get("body", b""))
            if size:
                if not self.budget.take(size):
                    raise _OverBudget
                taken += size
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except _OverBudget:
            if not started:
                await _answer(
                    send, 503, "server busy: too many request bodies in flight", close=True
                )
        finally:
            self.budget.give(taken)


@dataclass
class Guards:
    """What :func:`install_guards` added to an app (``app.state.guards``)."""

    budget: BodyBudget
    connections: ConnectionGuard
    lag: LoopLag


def install_guards(
    app: FastAPI,
    config: SidecarConfig,
    registry: CollectorRegistry,
    add_task: Callable[[str, Callable[[], Awaitable[None]]], None],
) -> Guards:
    """Add the body budget, the Host check, the loop-lag monitor (a background task,
    through ``add_task``) and the connection metrics (in ``registry``); call it after
    the body-reading middleware, before the bearer-token check."""
    server = config.server
    guards = Guards(
        budget=BodyBudget(server.max_buffered_body),
        connections=ConnectionGuard(
            ConnectionLimits(
                max_connections=server.max_connections,
                head_timeout=server.request_head_timeout,
                body_timeout=server.request_body_timeout,
            )
        ),
        lag=LoopLag(registry),
    )
    app.add_middleware(BodyBudgetMiddleware, budget=guards.budget)
    app.add_middleware(HostCheckMiddleware, policy=HostPolicy.of(config))
    registry.register(ConnectionCollector(guards.connections))
    add_task("loop_lag", guards.lag.run)
    app.state.guards = guards
    return guards


def guards_of(app: Any) -> Guards | None:
    """The :class:`Guards` of an app built by ``create_app`` (``None`` for another app)."""
    guards = getattr(getattr(app, "state", None), "guards", None)
    return guards if isinstance(guards, Guards) else None
