"""A small HTTP/1.1 client for ranged GETs: one keep-alive connection, 1 MiB reads.

Why not httpcore here: it reads the socket 64 KiB at a time and copies each
piece through h11's buffer, which caps a loopback download at about half of
``curl -o``'s rate (BENCHMARKS.md, ``python -m bench.fetch_rate``). This client
reads the body with ``recv_into`` straight into one reused buffer of ``BUFFER``
bytes and hands out views of it: the only copies are the kernel's (socket to
buffer, buffer to the part file's page cache). https goes through asyncio's TLS
(one more copy, small beside the decryption).

Every connection passes the location's :class:`probes.gate.Gate` right before
the name lookup, on the very host it then resolves (the probes' rule).

The head is parsed here (status line, headers; at most ``MAX_HEAD`` bytes);
the body is framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or
the end of the connection. A connection is reused only when its last answer
was read to the end and neither side asked to close it.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass

from probes.fetch import ssl_context
from probes.gate import Gate
from probes.target import ProbeLimits
from probes.urls import Origin

BUFFER = 1024 * 1024
MAX_HEAD = 64 * 1024
MAX_INTERIM = 8
"""Interim (1xx) answers skipped before the real one; a server that sends more is broken."""
_HEX_DIGITS = b"0123456789abcdefABCDEF"
_NO_BODY = frozenset({204, 304})


class HttpError(Exception):
    """The connection or the answer broke; ``timeout``/``connect`` say how."""

    def __init__(self, message: str, *, timeout: bool = False, connect: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.connect = connect


class _Wire:
    """One TCP (or TLS) connection read into a caller's buffer."""

    def __init__(self, sock: socket.socket | None, streams: _Streams | None) -> None:
        self.sock = sock
        self.streams = streams
        self.loop = asyncio.get_running_loop()

    async def recv_into(self, view: memoryview, timeout: float | None) -> int:
        if self.streams is not None:
            return await self.streams.recv_into(view, timeout)
        assert self.sock is not None
        count = self.ready_now(view)  # what is waiting, without a trip through the loop
        if count is not None:
            return count
        try:
            async with asyncio.timeout(timeout):
                return await self.loop.sock_recv_into(self.sock, view)
        except TimeoutError:
            raise HttpError("timed out", timeout=True) from None
        except OSError as exc:
            raise HttpError(f"connection broken: {exc.strerror or exc}") from None

    def ready_now(self, view: memoryview) -> int | None:
        """Bytes already waiting (read without waiting), or ``None`` when none are."""
        if self.sock is None:
            return None
        try:
            return self.sock.recv_into(view)
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as exc:
            raise HttpError(f"connection broken: {exc.strerror or exc}") from None

    async def send(self, data: bytes, timeout: float | None) -> None:
        try:
            async with asyncio.timeout(timeout):
                if self.streams is not None:
                    self.streams.writer.write(data)
                    await self.streams.writer.drain()
                else:
                    assert self.sock is not None
                    await self.loop.sock_sendall(self.sock, data)
        except TimeoutError:
            raise HttpError("timed out sending the request", timeout=True) from None
        except OSError as exc:
            raise HttpError(f"connection broken: {exc.strerror or exc}") from None

    def stale(self) -> bool:
        """The server closed (or wrote on) this idle keep-alive connection."""
        if self.streams is not None:
            reader = self.streams.reader
            return reader.at_eof() or bool(getattr(reader, "_buffer", b""))
        assert self.sock is not None
        try:
            self.sock.recv(1, socket.MSG_PEEK)  # data or the end: either way not idle
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            pass
        return True

    def close(self) -> None:
        if self.streams is not None:
            self.streams.writer.transport.abort()
        elif self.sock is not None:
            self.sock.close()


@dataclass
class _Streams:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def recv_into(self, view: memoryview, timeout: float | None) -> int:
        try:
            async with asyncio.timeout(timeout):
                data = await self.reader.read(len(view))
        except TimeoutError:
            raise HttpError("timed out", timeout=True) from None
        except (OSError, ssl.SSLError) as exc:
            raise HttpError(f"connection broken: {exc}") from None
        view[: len(data)] = data
        return len(data)


async def _connect(
    origin: Origin, gate: Gate, context: ssl.SSLContext | None, timeout: float | None
) -> _Wire:
    host = gate.check(origin.host)  # the host resolved below is the host checked
    port = origin.port
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            error: Exception | None = None
            for family, kind, proto, _, address in infos:
                sock = socket.socket(family, kind, proto)
                sock.setblocking(False)
                try:
                    await loop.sock_connect(sock, address)
                except OSError as exc:
                    sock.close()
                    error = exc
                    continue
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if context is None:
                    return _Wire(sock, None)
                try:
                    reader, writer = await asyncio.open_connection(
                        sock=sock, ssl=context, server_hostname=host, limit=BUFFER
                    )
                except BaseException:
                    sock.close()
                    raise
                return _Wire(None, _Streams(reader, writer))
    except TimeoutError:
        raise HttpError("connect timed out", timeout=True, connect=True) from None
    except ssl.SSLError as exc:
        raise HttpError(f"TLS: {exc}", connect=True) from None
    except OSError as exc:
        raise HttpError(f"connect: {exc.strerror or exc}", connect=True) from None
    raise HttpError(f"connect: {getattr(error, 'strerror', None) or error}", connect=True)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    """Lower-case names; repeated headers joined with ``, ``."""
    body: AsyncIterator[memoryview]
    """The body in views of the connection's buffer: each one is valid until the
    next is asked for (write it out, do not keep it)."""


class Connection:
    """One origin's keep-alive connection; :meth:`get` sends one request at a time."""

    def __init__(self, gate: Gate, limits: ProbeLimits) -> None:
        self.gate = gate
        self.limits = limits
        self.timeout = limits.timeout
        self._context: ssl.SSLContext | None = None
        self._buffer = bytearray(BUFFER)
        self._view = memoryview(self._buffer)
        self._start = self._end = 0
        self._wire: _Wire | None = None
        self._origin: Origin | None = None
        self._reusable = False
        self.connections = 0
        """Connections opened so far (for tests: keep-alive really keeps)."""

    async def _ready(self, origin: Origin) -> bool:
        """Open (or keep) the connection to ``origin``; ``True`` when it was reused."""
        if self._wire is not None and (
            origin != self._origin or not self._reusable or self._wire.stale()
        ):
            self.close()
        if self._wire is not None:
            return True
        context = None
        if origin.scheme == "https":  # the trust store costs milliseconds: loaded once, if used
            context = self._context = self._context or ssl_context(self.limits)
        self._wire = await _connect(origin, self.gate, context, self.limits.connect_timeout)
        self._origin, self._start, self._end = origin, 0, 0
        self.connections += 1
        return False

    @contextlib.asynccontextmanager
    async def get(
        self, origin: Origin, target: str, headers: list[tuple[bytes, bytes]]
    ) -> AsyncIterator[Response]:
        """``GET target`` on ``origin``; the connection is kept when the body was read."""
        if origin.port is None or not origin.host:
            raise HttpError("URL without a usable host and port", connect=True)
        lines = [f"GET {target} HTTP/1.1\r\n".encode("latin-1")]
        host = origin.host if ":" not in origin.host else f"[{origin.host}]"
        default = 443 if origin.scheme == "https" else 80
        lines.append(
            b"Host: " + (host if origin.port == default else f"{host}:{origin.port}").encode()
        )
        lines.append(b"\r\n")
        for name, value in headers:
            lines += [name, b": ", value, b"\r\n"]
        lines.append(b"\r\n")
        request = b"".join(lines)
        for attempt in (1, 2):
            reused = await self._ready(origin)
            self._reusable = False
            assert self._wire is not None
            try:
                await self._wire.send(request, self.timeout)
                status, fields, keep = await self._head()
            except HttpError as exc:
                self.close()
                if reused and attempt == 1 and not exc.timeout:
                    continue  # a keep-alive connection the server had dropped: once more
                raise
            break
        try:
            yield Response(status, fields, self._body(status, fields, keep))
        finally:
            if not self._reusable:
                self.close()

    async def _more(self) -> int:
        """Read what comes into the free end of the buffer (compacting it first)."""
        assert self._wire is not None
        if self._start == self._end:
            self._start = self._end = 0
        elif self._end == len(self._buffer):
            left = self._end - self._start
            self._buffer[:left] = self._view[self._start : self._end]
            self._start, self._end = 0, left
        count = await self._wire.recv_into(self._view[self._end :], self.timeout)
        self._end += count
        return count

    async def _head(self) -> tuple[int, dict[str, str], bool]:
        for _ in range(MAX_INTERIM + 1):  # interim 1xx answers are skipped, a few of them
            while (at := self._buffer.find(b"\r\n\r\n", self._start, self._end)) < 0:
                if self._end - self._start > MAX_HEAD:
                    raise HttpError("answer head too long")
                if not await self._more():
                    raise HttpError("connection closed before an answer")
            head = bytes(self._view[self._start : at]).decode("latin-1")
            self._start = at + 4
            status, fields, keep = _parse_head(head)
            if not 100 <= status < 200:
                return status, fields, keep
        raise HttpError("too many interim answers")

    async def _body(
        self, status: int, fields: dict[str, str], keep: bool
    ) -> AsyncIterator[memoryview]:
        if status in _NO_BODY:
            self._reusable = keep
            return
        if "chunked" in fields.get("transfer-encoding", "").lower():
            async for piece in self._chunked():
                yield piece
            self._reusable = keep
            return
        length = fields.get("content-length")
        if length is None:
            async for piece in self._until_closed():
                yield piece
            return
        if not length.isdigit():
            raise HttpError(f"bad Content-Length {length[:40]!r}")
        async for piece in self._counted(int(length)):
            yield piece
        self._reusable = keep and self._start == self._end

    async def _counted(self, left: int) -> AsyncIterator[memoryview]:
        assert self._wire is not None
        while left > 0:
            if self._start == self._end and not await self._more():
                raise HttpError("connection closed mid-body")
            # read on while bytes are waiting: one large piece instead of many small ones
            while self._end < len(self._buffer) and self._end - self._start < left:
                count = self._wire.ready_now(self._view[self._end :])
                if not count:
                    break
                self._end += count
            take = min(left, self._end - self._start)
            piece = self._view[self._start : self._start + take]
            self._start += take
            left -= take
            yield piece

    async def _until_closed(self) -> AsyncIterator[memoryview]:
        while True:
            if self._start == self._end and not await self._more():
                return
            piece = self._view[self._start : self._end]
            self._start = self._end
            yield piece

    async def _line(self) -> bytes:
        while (at := self._buffer.find(b"\r\n", self._start, self._end)) < 0:
            if self._end - self._start > 4096:
                raise HttpError("chunk header too long")
            if not await self._more():
                raise HttpError("connection closed mid-body")
        line = bytes(self._view[self._start : at])
        self._start = at + 2
        return line

    async def _chunked(self) -> AsyncIterator[memoryview]:
        while True:
            size_text = (await self._line()).split(b";", 1)[0].strip()
            # hex digits only: int() would also take a sign, "0x" and underscores
            if not size_text or size_text.strip(_HEX_DIGITS) or len(size_text) > 16:
                raise HttpError("bad chunk size")
            size = int(size_text, 16)
            if size == 0:
                trailers = 0
                while line := await self._line():  # trailers, up to the empty line
                    trailers += len(line) + 2
                    if trailers > MAX_HEAD:
                        raise HttpError("trailers too long")
                return
            async for piece in self._counted(size):
                yield piece
            if await self._line():
                raise HttpError("chunk not followed by CRLF")

    def close(self) -> None:
        if self._wire is not None:
            self._wire.close()
        self._wire, self._origin, self._reusable = None, None, False
        self._start = self._end = 0


def _parse_head(head: str) -> tuple[int, dict[str, str], bool]:
    status_line, *rest = head.split("\r\n")
    parts = status_line.split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
        raise HttpError("not an HTTP/1.x answer")
    fields: dict[str, str] = {}
    for line in rest:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[0] in " \t":
            raise HttpError("malformed header line")
        key, text = name.lower(), value.strip(" \t")
        fields[key] = f"{fields[key]}, {text}" if key in fields else text
    tokens = {t.strip().lower() for t in fields.get("connection", "").split(",")}
    keep = parts[0] == "HTTP/1.1" and "close" not in tokens
    return int(parts[1]), fields, keep
