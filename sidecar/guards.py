"""What a client may do to the API: one ASGI layer in front of every route.

:class:`GuardMiddleware` checks, in this order (one pass over the headers; a
request that cannot carry a body gets no wrapped ``receive`` or ``send``):

- the ``Host`` header: only values naming this daemon are answered (a loopback
  name or IP literal with any port, the configured listen address with its port;
  with a wildcard listen address also IP literals and the machine's host name).
  Any other gets ``421``: a web page whose name was re-bound to 127.0.0.1 (DNS
  rebinding) cannot drive the unauthenticated API (:class:`HostPolicy`);
- the body size: over :data:`MAX_BODY_BYTES` (``Content-Length`` or bytes
  received) gets ``413``; a ``POST``/``PUT``/``PATCH`` body is read here once
  and handed on in the scope (:data:`BODY`, the fast ``/v1/rank`` takes it from
  there) and to ``receive``;
- the body budget: request body bytes held at once, over all connections, stay
  under ``server.max_buffered_body``; the request that would pass it gets
  ``503`` and its connection is closed (:class:`BodyBudget`);

and times every request it lets through the ``Host`` check for the duration
histogram. A ``POST`` to a *hot* path (``/v1/rank``) goes from here straight to
its endpoint, past the routing layers below (exception handlers, router): they
cost about a quarter of a rank request. An endpoint that raises before answering
is run again through them on the same body, so an error is answered exactly as
the app's handlers answer it. :func:`install_guards` adds it, the event-loop lag
monitor and the connection metrics to an app; the connection limits themselves
live in the uvicorn protocol (:mod:`sidecar.connections`), set up by
:mod:`sidecar.serve`.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Histogram
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sidecar.config import SidecarConfig, ip_literal, is_loopback_host
from sidecar.connections import ConnectionCollector, ConnectionGuard, ConnectionLimits
from sidecar.looplag import LoopLag

WILDCARDS = frozenset({"0.0.0.0", "::"})
MAX_BODY_BYTES = 1024 * 1024
BODY = "sidecar.body"
"""Scope key of the body :class:`GuardMiddleware` read (the fast ``/v1/rank`` takes it)."""
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
"""Methods whose body is read (and size-checked) before the route runs."""
MAX_HOSTS = 64
"""``Host`` values whose verdict is remembered; the memo is emptied when full."""


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
        if is_loopback_host(host) or host in self.names:
            return True
        if host == self.listen_host and port == self.port:
            return True
        return self.any_ip and ip_literal(host) is not None


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


class KnownHosts:
    """A :class:`HostPolicy`'s verdict per raw ``Host`` value, remembered (a client
    sends the same one on every request)."""

    def __init__(self, policy: HostPolicy) -> None:
        self.policy = policy
        self._verdicts: dict[bytes, bool] = {}

    def allows(self, value: bytes) -> bool:
        allowed = self._verdicts.get(value)
        if allowed is None:
            allowed = self.policy.allows(value.decode("latin-1"))
            if len(self._verdicts) >= MAX_HOSTS:
                self._verdicts.clear()
            self._verdicts[value] = allowed
        return allowed


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


class GuardMiddleware:
    """The ``Host`` check, the body size limit, the body budget and the request timing
    (see the module docstring); non-HTTP scopes pass untouched."""

    def __init__(
        self,
        app: ASGIApp,
        policy: HostPolicy,
        budget: BodyBudget,
        duration: Histogram,
        hot: dict[str, ASGIApp] | None = None,
    ) -> None:
        self.app = app
        self.hot = hot or {}
        """``POST`` endpoints by exact path, called directly (see the module docstring)."""
        self.hosts = KnownHosts(policy)
        self.budget = budget
        self.duration = duration
        self._children: dict[str, Histogram] = {}
        """The histogram's child per handler, looked up once (labels() costs a lock)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        framed = False  # a body may follow: Content-Length or Transfer-Encoding
        for name, value in scope.get("headers") or ():
            # No Host at all: HTTP/1.0, never a browser; answered.
            if name == b"host" and not self.hosts.allows(value):
                await _answer(
                    send, 421, "Host header does not name this daemon (see README.md, Limits)"
                )
                return
            if name == b"content-length":
                length = value  # the last one
                framed = True
            elif name == b"transfer-encoding":
                framed = True
        started = time.perf_counter()
        taken = 0
        try:
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                await _too_large(send)
                return
            if scope["method"] in BODY_METHODS:
                body, taken = await self._read_body(receive)
                if body is None:
                    await _too_large(send)
                    return
                scope[BODY] = body
                hot = self.hot.get(scope["path"]) if scope["method"] == "POST" else None
                if hot is None or not await _answered(hot, scope, _replay(body, receive), send):
                    await self.app(scope, _replay(body, receive), send)
            elif framed:  # a body the route may read: counted as it is
                taken = await self._counted(scope, receive, send)
            else:  # no body can come: nothing to count
                await self.app(scope, receive, send)
        except _OverBudget:  # while this layer read the body: nothing was sent yet
            await _busy(send)
        finally:
            self.budget.give(taken)
            handler = _handler(scope)
            child = self._children.get(handler)
            if child is None:
                child = self._children[handler] = self.duration.labels(handler)
            child.observe(time.perf_counter() - started)

    async def _read_body(self, receive: Receive) -> tuple[bytes | None, int]:
        """The whole body and the budget taken for it; ``None`` for a body over
        :data:`MAX_BODY_BYTES`. Raises :class:`_OverBudget`."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            if chunk:
                if not self.budget.take(len(chunk)):
                    self.budget.give(size)
                    raise _OverBudget
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    return None, size
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks), size

    async def _counted(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Run the route with every body chunk it receives counted; returns the budget
        taken. A chunk over the budget ends the request with ``503`` (when nothing was
        sent yet)."""
        taken = 0
        tracked = _Tracked(send)

        async def counted() -> Message:
            nonlocal taken
            message = await receive()
            size = len(message.get("body", b""))
            if size:
                if not self.budget.take(size):
                    raise _OverBudget
                taken += size
            return message

        try:
            await self.app(scope, counted, tracked)
        except _OverBudget:
            if not tracked.started:
                await _busy(send)
        return taken


def _handler(scope: Scope) -> str:
    """The route's path template; a plain Starlette route (the fast ``/v1/rank``) sets
    no ``route``, only its endpoint: no route has path parameters, so the path is it."""
    path = getattr(scope.get("route"), "path", None)
    if path is None and scope.get("endpoint") is not None:
        path = scope.get("path")
    return str(path) if path else "unmatched"


class _Tracked:
    """A ``send`` that remembers whether the answer has started (after that, an error
    can no longer be answered)."""

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = self.started or message["type"] == "http.response.start"
        await self.send(message)


async def _answered(endpoint: ASGIApp, scope: Scope, receive: Receive, send: Send) -> bool:
    """Run a hot endpoint; ``False`` when it raised before answering (nothing sent)."""
    tracked = _Tracked(send)
    scope["endpoint"] = endpoint  # as the router sets it (the duration histogram's label)
    try:
        await endpoint(scope, receive, tracked)
    except Exception:
        if tracked.started:
            raise
        return False
    return True


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


async def _busy(send: Send) -> None:
    await _answer(send, 503, "server busy: too many request bodies in flight", close=True)


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
    duration: Histogram,
    hot: dict[str, ASGIApp] | None = None,
) -> Guards:
    """Add :class:`GuardMiddleware` (timing into ``duration``), the loop-lag monitor (a
    background task, through ``add_task``) and the connection metrics (in
    ``registry``); call it before adding the bearer-token check (which goes outside).
    ``hot``: the ``POST`` endpoints :class:`GuardMiddleware` calls directly, by path."""
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
    app.add_middleware(
        GuardMiddleware,
        policy=HostPolicy.of(config),
        budget=guards.budget,
        duration=duration,
        hot=hot,
    )
    registry.register(ConnectionCollector(guards.connections))
    add_task("loop_lag", guards.lag.run)
    app.state.guards = guards
    return guards


def guards_of(app: Any) -> Guards | None:
    """The :class:`Guards` of an app built by ``create_app`` (``None`` for another app)."""
    guards = getattr(getattr(app, "state", None), "guards", None)
    return guards if isinstance(guards, Guards) else None
