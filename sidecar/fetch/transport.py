"""Ranged reads from one location: http(s), s3, swift and file.

Signing and auth are the probes' (``probes.urls.split_userinfo`` for basic auth,
``probes.s3.signed_headers`` for SigV4, ``probes.swift.authenticate`` for Swift v1 and
Keystone v3, with the :class:`~probes.target.TokenCache`): this module only keeps one
connection per location open for the whole fetch (``sidecar.fetch.netio``: HTTP/1.1
keep-alive, large reads), follows redirects through the probes' gate, and checks
that an answer really is the range asked for. A server that ignores
Range (200) is usable only from offset 0; a wrong ``Content-Range``, a total that
disagrees with the image size or a short body is an error, never data.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import typing
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import quote, unquote, urlsplit

import httpcore

from probes import s3, swift
from probes.fetch import BadHeader, encode_headers
from probes.gate import Gate, NotAllowed
from probes.target import (
    Credentials,
    ProbeLimits,
    ProbeTarget,
    S3Credentials,
    SwiftCredentials,
    Token,
    TokenCache,
)
from probes.urls import REDIRECTS, origin_of, redirect_target, split_userinfo
from sidecar.fetch.netio import Connection, HttpError, Response
from strategies.backends import scheme_of
from strategies.failures import ErrorClass, error_class_for_status

CHUNK = 256 * 1024
Chunk = bytes | memoryview
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
USER_AGENT = "location-sidecar-fetch"


class TransportError(Exception):
    """One request failed; ``error_class`` as ``POST /v1/observations`` takes it."""

    def __init__(self, error_class: ErrorClass, message: str) -> None:
        super().__init__(message)
        self.error_class = error_class


@dataclass
class Body:
    """An open answer to a ranged read: the bytes from ``start`` on."""

    start: int
    total: int | None
    """The object's size as the server says it, when it says."""
    whole: bool
    """The server ignored Range (HTTP 200): the body is the object from 0."""
    chunks: AsyncIterator[Chunk]
    """Each chunk is valid until the next one is asked for (a view of a reused
    buffer): write it out, do not keep it."""


class Transport(typing.Protocol):
    secrets: tuple[str, ...]
    size: int | None

    def open(self, start: int, end: int | None) -> typing.AsyncContextManager[Body]:
        """Bytes ``[start, end)`` (``end=None``: to the end of the object)."""
        ...

    async def aclose(self) -> None: ...


def _range_value(start: int, end: int | None) -> str:
    return f"bytes={start}-" if end is None else f"bytes={start}-{end - 1}"


def check_answer(
    status: int, headers: dict[str, str], start: int, end: int | None, size: int | None
) -> tuple[int | None, bool]:
    """``(total, whole)`` for a data answer, or :class:`TransportError` for anything else."""
    if status == 206:
        match = _CONTENT_RANGE.match(headers.get("content-range", "").strip())
        if match is None:
            raise TransportError("server", "206 without a valid Content-Range")
        first, last = int(match.group(1)), int(match.group(2))
        total = None if match.group(3) == "*" else int(match.group(3))
        wanted_last = (end if end is not None else (total or size or 0)) - 1
        if first != start or (wanted_last >= 0 and last != wanted_last):
            raise TransportError(
                "server", f"Content-Range {first}-{last} for a request of {start}-{wanted_last}"
            )
        if total is not None and size is not None and total != size:
            raise TransportError("server", f"object has {total} bytes, expected {size}")
        return total, False
    if status == 200:
        length = headers.get("content-length", "")
        total = int(length) if length.isdigit() else None
        if total is not None and size is not None and total != size:
            raise TransportError("server", f"object has {total} bytes, expected {size}")
        if start > 0:
            raise TransportError("server", "server ignored Range (200): usable from offset 0 only")
        return total, True
    if status == 416:
        raise TransportError("server", "416 Range Not Satisfiable")
    if status >= 400:
        raise TransportError(error_class_for_status(status), f"HTTP {status}")
    raise TransportError("server", f"unexpected HTTP {status}")


def _transport_error(exc: HttpError) -> TransportError:
    if exc.timeout:
        return TransportError("local", "timed out")
    if exc.connect:
        return TransportError("local", str(exc))
    return TransportError("server", str(exc))


#: The only headers sent to an origin other than the location's own (a redirect):
#: never a credential (Authorization, X-Auth-Token, a SigV4 signature).
_PUBLIC_HEADERS = frozenset({"user-agent", "range"})


class HttpTransport:
    """http(s), and the base of s3 and swift: one keep-alive connection, ranged GETs.

    Redirects (301, 302, 303, 307, 308) are followed up to ``limits.max_redirects``
    hops, each target through the location's :class:`~probes.gate.Gate` (its own
    host, or what ``ProbeLimits.allow_host`` allows) before any connection to it.
    Credentials go only to the location's own origin (scheme, host, port); a
    redirect from https to http is refused; a redirect's userinfo is dropped; no
    message names a redirect target other than by its host.
    """

    def __init__(
        self,
        url: str,
        limits: ProbeLimits,
        size: int | None,
        secrets: tuple[str, ...] = (),
        gate: Gate | None = None,
    ) -> None:
        self.url = url
        self.limits = limits
        self.size = size
        self.secrets = secrets
        self.gate = gate or Gate.of(ProbeTarget(url=url), limits)
        self.connection = Connection(self.gate, limits)

    async def headers(self, range_value: str) -> tuple[str, dict[str, str]]:
        """The URL and headers of one ranged GET (signed, authenticated)."""
        return self.url, {"User-Agent": USER_AGENT, "Range": range_value}

    async def _status_hook(self, status: int) -> bool:
        """True: retry the request once (a Swift token went stale)."""
        return False

    @asynccontextmanager
    async def open(self, start: int, end: int | None) -> AsyncIterator[Body]:
        for attempt in (1, 2):
            url, headers = await self.headers(_range_value(start, end))
            try:
                async with self._answer(url, headers) as response:
                    if attempt == 1 and await self._status_hook(response.status):
                        continue
                    total, whole = check_answer(
                        response.status, response.headers, start, end, self.size
                    )
                    yield Body(start, total, whole, _guarded(response.body))
                    return
            except HttpError as exc:
                raise _transport_error(exc) from None
            except NotAllowed as exc:
                raise TransportError("local", str(exc)) from None
        raise TransportError("auth", "refused twice")

    @asynccontextmanager
    async def _answer(self, url: str, headers: dict[str, str]) -> AsyncIterator[Response]:
        """The answer to ``GET url``, redirects followed."""
        try:
            raw = encode_headers(headers)  # names the header, never the value
            public = encode_headers(
                {k: v for k, v in headers.items() if k.lower() in _PUBLIC_HEADERS}
            )
        except BadHeader as exc:
            raise TransportError("local", str(exc)) from None
        own, current, seen = origin_of(url), url, {url}
        for hop in range(self.limits.max_redirects + 1):
            origin = origin_of(current)
            sent = raw if origin.same_as(own) else public
            async with self.connection.get(origin, _target(current), sent) as response:
                location = response.headers.get("location")
                if response.status not in REDIRECTS or not location:
                    yield response
                    return
                if hop == self.limits.max_redirects:
                    break
                current = self._hop(current, location)
                if current in seen:
                    raise TransportError("server", "redirect loop")
                seen.add(current)
        raise TransportError("server", f"more than {self.limits.max_redirects} redirects")

    def _hop(self, current: str, location: str) -> str:
        """Where a redirect leads, when it may be followed (else :class:`TransportError`)."""
        try:
            url = redirect_target(current, location)
        except ValueError as exc:
            raise TransportError("server", str(exc)) from None
        if url.startswith("http:") and current.lower().startswith("https:"):
            raise TransportError("server", "redirect from https to http refused")
        try:
            self.gate.check_url(url, "redirect to another host")
        except NotAllowed as exc:
            raise TransportError("local", str(exc)) from None
        return url

    async def aclose(self) -> None:
        self.connection.close()


def _target(url: str) -> str:
    """The request target: path and query, anything outside what a URL may hold
    (a space, non-ASCII, a control character) percent-encoded, never sent raw."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return quote(target, safe="/?&=:;@!$'()*+,~%-._")


async def _guarded(chunks: AsyncIterator[memoryview]) -> AsyncIterator[memoryview]:
    try:
        async for chunk in chunks:
            yield chunk
    except HttpError as exc:
        raise _transport_error(exc) from None


class BasicHttpTransport(HttpTransport):
    """Glance's http store allows ``user:password@host``: Basic auth, same host only."""

    def __init__(self, url: str, limits: ProbeLimits, size: int | None) -> None:
        bare, user, password = split_userinfo(url)
        super().__init__(bare, limits, size, tuple(s for s in (user, password) if s))
        self._auth = None
        if user is not None:
            pair = f"{user}:{password or ''}".encode()
            self._auth = "Basic " + base64.b64encode(pair).decode()

    async def headers(self, range_value: str) -> tuple[str, dict[str, str]]:
        url, headers = await super().headers(range_value)
        if self._auth:
            headers["Authorization"] = self._auth
        return url, headers


class S3Transport(HttpTransport):
    """SigV4 per request, signed by the probes' ``s3.signed_headers``."""

    def __init__(
        self, url: str, limits: ProbeLimits, size: int | None, fallback: S3Credentials | None
    ) -> None:
        self.location = s3.parse(url, fallback)
        creds = self.location.credentials
        super().__init__(self.location.object_url, limits, size, creds.secrets() if creds else ())

    async def headers(self, range_value: str) -> tuple[str, dict[str, str]]:
        url, headers = await super().headers(range_value)
        return url, s3.signed_headers(self.location, headers)


class SwiftTransport(HttpTransport):
    """Swift v1 or Keystone v3 auth (the probes' code and token cache), then ranged GETs."""

    def __init__(
        self,
        url: str,
        limits: ProbeLimits,
        size: int | None,
        configured: SwiftCredentials | None,
        tokens: TokenCache,
    ) -> None:
        self.location = swift.parse(url)
        try:
            plan = swift.auth_plan(self.location, configured)
        except swift.AuthFailed as failed:
            raise TransportError(failed.error_class, str(failed)) from None
        self.creds, self.auth_url, self.storage_url, self.version = plan
        self.tokens = tokens
        self.key = TokenCache.key_of(self.creds, self.auth_url, self.version)
        # the probes' rule: auth and storage hosts of the location (or its configured
        # auth_url); a storage URL an auth reply names on another host is refused
        gate = Gate.of(ProbeTarget(url=url, credentials=configured), limits)
        super().__init__(self.location.base_url, limits, size, self.creds.secrets(), gate)

    async def _token(self) -> Token:
        token = self.tokens.get(self.key)
        if token is None:
            self.tokens.auth_requests += 1
            try:
                token = await swift.authenticate(
                    self.creds, self.auth_url, self.version, self.limits, self.gate
                )
            except swift.AuthFailed as failed:
                raise TransportError(failed.error_class, str(failed)) from None
            except NotAllowed as exc:
                raise TransportError("local", str(exc)) from None
            except BadHeader as exc:
                raise TransportError("local", str(exc)) from None
            except httpcore.TimeoutException:
                raise TransportError("local", "Swift auth timed out") from None
            except httpcore.NetworkError as exc:
                raise TransportError("local", f"Swift auth: {type(exc).__name__}") from None
            self.tokens.put(self.key, token)
        return token

    async def headers(self, range_value: str) -> tuple[str, dict[str, str]]:
        token = await self._token()
        base = self.storage_url or token.storage_url
        if not base:
            raise TransportError("auth", "Keystone catalog has no object-store endpoint")
        if self.storage_url is None:
            try:
                swift.check_storage_url(base, self.auth_url, self.gate, self.version)
            except NotAllowed as exc:
                raise TransportError("local", str(exc)) from None
        loc = self.location
        url = f"{base.rstrip('/')}/{quote(loc.container)}/{quote(loc.obj)}"
        return url, {"User-Agent": USER_AGENT, "Range": range_value, "X-Auth-Token": token.token}

    async def _status_hook(self, status: int) -> bool:
        if status == 401:
            self.tokens.drop(self.key)  # revoked or expired early: one fresh token
            return True
        return False


class FileTransport:
    """A local file (``file://``), read with ``pread`` in a worker thread."""

    secrets: tuple[str, ...] = ()

    def __init__(self, url: str, size: int | None) -> None:
        self.path = unquote(urlsplit(url.strip()).path)
        self.size = size

    @asynccontextmanager
    async def open(self, start: int, end: int | None) -> AsyncIterator[Body]:
        try:
            fd = await asyncio.to_thread(os.open, self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise TransportError("missing", "no such file") from None
        except PermissionError:
            raise TransportError("auth", "permission denied") from None
        except OSError as exc:
            raise TransportError("local", f"cannot open: {exc.strerror}") from None
        try:
            total = os.fstat(fd).st_size
            if self.size is not None and total != self.size:
                raise TransportError("server", f"file has {total} bytes, expected {self.size}")
            stop = total if end is None else min(end, total)
            yield Body(start, total, False, _pread(fd, start, stop))
        finally:
            os.close(fd)

    async def aclose(self) -> None:
        return None


async def _pread(fd: int, start: int, stop: int) -> AsyncIterator[bytes]:
    position = start
    while position < stop:
        try:
            piece = await asyncio.to_thread(os.pread, fd, min(CHUNK * 4, stop - position), position)
        except OSError as exc:
            raise TransportError("server", f"read failed: {exc.strerror}") from None
        if not piece:
            raise TransportError("server", "file ended early")
        position += len(piece)
        yield piece


def transport_for(
    url: str,
    limits: ProbeLimits,
    size: int | None,
    *,
    credentials: Credentials | None = None,
    swift_tokens: TokenCache | None = None,
) -> Transport:
    """The transport for a location URL; :class:`TransportError` when it cannot be read."""
    scheme = scheme_of(url)
    try:
        if scheme in ("http", "https"):
            return BasicHttpTransport(url, limits, size)
        if scheme in ("s3", "s3+http", "s3+https"):
            fallback = credentials if isinstance(credentials, S3Credentials) else None
            return S3Transport(url, limits, size, fallback)
        if scheme in ("swift", "swift+http", "swift+https"):
            configured = credentials if isinstance(credentials, SwiftCredentials) else None
            return SwiftTransport(url, limits, size, configured, swift_tokens or TokenCache())
        if scheme in ("file", "filesystem"):
            return FileTransport(url, size)
    except ValueError as exc:
        raise TransportError("local", str(exc)) from None
    raise TransportError("local", f"{scheme or '(no scheme)'} locations are not fetched from here")
