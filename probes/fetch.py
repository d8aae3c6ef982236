"""A timed, bounded HTTP request shared by the http, s3 and swift probes.

httpx's transport hides the network backend, so this drives httpcore (the
engine under httpx) directly with a network backend that resolves names
itself: that separates the resolve, connect and TLS phases exactly, instead of
httpcore's trace events, which fold DNS into the TCP connect. Each call opens a
fresh connection on purpose: connection set-up is part of what a probe measures.

Every call runs inside the caller's overall deadline (``asyncio.timeout``), so
a server that never answers or drips one byte a second cannot hold a probe
past ``ProbeLimits.timeout``.

Every connection passes the probe's :class:`probes.gate.Gate` right before the
name lookup, on the very host it then resolves. Header values are checked
before anything is sent: a credential holding control characters fails with a
message that names the header, never the value (the HTTP library's own error
would quote it). httpcore's and httpx's loggers are held at WARNING: at debug
level they would log request and reply headers, tokens included.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import re
import socket
import ssl
import time
import typing
from dataclasses import dataclass, field

import httpcore

from probes.gate import Gate
from probes.result import Phases
from probes.target import ProbeLimits

#: Loggers that would write request or reply headers (tokens) at debug level.
HTTP_LOGGERS = (
    "httpcore",
    "httpcore.connection",
    "httpcore.http11",
    "httpcore.http2",
    "httpcore.proxy",
    "httpcore.socks",
    "httpx",
)


class _BelowWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def quiet_http_loggers() -> None:
    """Hold the HTTP libraries' loggers at WARNING, also against a later
    ``setLevel(DEBUG)``: a filter on each drops their records below WARNING."""
    for name in HTTP_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.WARNING)
        if not any(isinstance(f, _BelowWarning) for f in logger.filters):
            logger.addFilter(_BelowWarning())


quiet_http_loggers()

_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


class ResolveError(httpcore.ConnectError):
    """The host name did not resolve."""


class BadHeader(Exception):
    """A header value this probe may not send (control characters, not Latin-1).

    Every such value comes from a credential; the message names the header only."""


def encode_headers(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Headers as the HTTP library takes them; :class:`BadHeader` for a value
    the library would refuse (control characters, white space at either end,
    outside Latin-1), before anything is sent."""
    encoded = []
    for name, value in headers.items():
        if _BAD_VALUE.search(value):
            raise BadHeader(f"the {name} header would hold control characters: not sent")
        if value != value.strip(" \t"):
            raise BadHeader(f"the {name} header would start or end with white space: not sent")
        try:
            encoded.append((name.encode("latin-1"), value.encode("latin-1")))
        except UnicodeEncodeError:
            raise BadHeader(f"the {name} header would hold non-Latin-1 text: not sent") from None
    return encoded


class _TimedStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream, phases: Phases) -> None:
        self._inner = inner
        self._phases = phases

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._inner.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        started = time.monotonic()
        inner = await self._inner.start_tls(ssl_context, server_hostname, timeout)
        self._phases.add("tls", time.monotonic() - started)
        return _TimedStream(inner, self._phases)

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _TimedBackend(httpcore.AsyncNetworkBackend):
    """Passes the gate, resolves with ``getaddrinfo`` (timed), then connects to
    each address in turn."""

    def __init__(self, phases: Phases, gate: Gate) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._phases = phases
        self._gate = gate

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        host = self._gate.check(host)  # the host resolved below is the host checked
        started = lookup_started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            # The connect timeout covers the lookup too: a dead resolver is a connect problem.
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except TimeoutError:
            raise httpcore.ConnectTimeout("name lookup timed out") from None
        except OSError as exc:
            raise ResolveError(f"cannot resolve host: {exc.strerror or exc}") from None
        self._phases.add("resolve", time.monotonic() - started)
        started = time.monotonic()
        if timeout is not None:
            timeout = max(0.001, timeout - (started - lookup_started))
        error: Exception | None = None
        for *_, sockaddr in infos:
            try:
                stream = await self._inner.connect_tcp(
                    str(sockaddr[0]), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
                continue
            self._phases.add("connect", time.monotonic() - started)
            return _TimedStream(stream, self._phases)
        assert error is not None
        raise error

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


@dataclass
class Progress:
    """Shared with the caller so a deadline that cuts a read short still knows
    how far it got."""

    bytes: int = 0
    headed_at: float | None = None
    status: int | None = None


@dataclass
class Fetched:
    """What one GET (without following redirects) gave back."""

    status: int
    headers: dict[str, str]
    """Lower-case names; repeated headers joined with ``, ``."""
    bytes: int = 0
    body: builtins.bytes = b""
    """Kept only when ``keep_body`` was asked for (auth replies, error documents)."""
    truncated: bool = False
    """We stopped reading before the server's body ended (``max_bytes`` reached)."""
    notes: list[str] = field(default_factory=list)


def ssl_context(limits: ProbeLimits) -> ssl.SSLContext:
    """System trust store, or the configured CA bundle instead."""
    if limits.ca_file:
        return ssl.create_default_context(cafile=limits.ca_file)
    return ssl.create_default_context()


async def request(
    method: str,
    url: str,
    headers: dict[str, str],
    limits: ProbeLimits,
    phases: Phases,
    *,
    gate: Gate,
    max_bytes: int,
    content: bytes = b"",
    progress: Progress | None = None,
    keep_body: int = 0,
    read_body: bool = True,
) -> Fetched:
    """One request on a fresh connection, reading at most ``max_bytes`` of the body.

    Error responses are read only up to ``keep_body`` bytes (often not at all).
    Raises httpcore exceptions for transport failures (all "local"),
    :class:`probes.gate.NotAllowed` for a host the gate refuses (no connection
    made), :class:`BadHeader` (nothing sent), and lets ``TimeoutError`` from
    the caller's deadline through.
    """
    timeouts = {
        "connect": limits.connect_timeout,
        "read": limits.timeout,
        "write": limits.timeout,
        "pool": limits.timeout,
    }
    if content:
        headers = {**headers, "Content-Length": str(len(content))}
    request_headers = encode_headers(headers)
    backend = _TimedBackend(phases, gate)
    # Loading the trust store costs tens of milliseconds: only for https.
    context = ssl_context(limits) if url.lower().startswith("https:") else None
    async with httpcore.AsyncConnectionPool(
        ssl_context=context, network_backend=backend, max_connections=1, retries=0
    ) as pool:
        sent_at = time.monotonic()

        async def trace(event: str, info: dict[str, typing.Any]) -> None:
            nonlocal sent_at
            # Connection set-up is timed by the backend; the server's part starts here.
            if event.endswith("send_request_headers.started"):
                sent_at = time.monotonic()

        async with pool.stream(
            method,
            url,
            headers=request_headers,
            content=content or None,
            extensions={"timeout": timeouts, "trace": trace},
        ) as response:
            headed_at = time.monotonic()
            phases.add("first_byte", headed_at - sent_at)
            progress = progress or Progress()
            progress.headed_at = headed_at
            progress.status = response.status
            progress.bytes = 0
            fetched = Fetched(status=response.status, headers=_header_map(response.headers))
            success = 200 <= response.status < 300
            if read_body and (success or keep_body):
                if not success:
                    max_bytes = keep_body
                body = bytearray()
                stream = typing.cast(typing.AsyncIterable[bytes], response.stream)
                async for chunk in stream:
                    room = max_bytes - fetched.bytes
                    take = chunk[:room]
                    fetched.bytes += len(take)
                    progress.bytes = fetched.bytes
                    if len(body) < keep_body:
                        body += take[: keep_body - len(body)]
                    if len(chunk) > room:
                        fetched.truncated = True
                        break
                    if fetched.bytes >= max_bytes:
                        fetched.truncated = _more_expected(fetched)
                        break
                fetched.body = bytes(body)
            phases.add("transfer", time.monotonic() - headed_at)
            progress.headed_at = None
        return fetched


def _more_expected(fetched: Fetched) -> bool:
    length = fetched.headers.get("content-length")
    return length is None or not length.isdigit() or int(length) > fetched.bytes


def _header_map(raw: list[tuple[bytes, bytes]]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    return headers
