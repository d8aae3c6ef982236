"""The fetch's own HTTP/1.1 reader against real servers: keep-alive, framing, the gate."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

import pytest

from probes.gate import Gate, NotAllowed
from probes.target import ProbeLimits, ProbeTarget
from probes.urls import origin_of
from sidecar.fetch.netio import BUFFER, Connection, HttpError
from tests.support.fixtures import pattern
from tests.support.http_server import RangeServer

Servers = Callable[..., RangeServer]
LIMITS = ProbeLimits(max_bytes=1, timeout=5.0, connect_timeout=2.0)
CONTENT = pattern(3 * BUFFER + 12345, "netio")


async def _get(
    connection: Connection, url: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    raw = [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    async with connection.get(origin_of(url), urlsplit(url).path, raw) as r:
        body = bytearray()
        async for piece in r.body:
            assert len(piece) <= BUFFER
            body += piece
        return r.status, r.headers, bytes(body)


def _connection(url: str) -> Connection:
    return Connection(Gate.of(ProbeTarget(url=url), LIMITS), LIMITS)


def test_ranged_reads_share_one_keep_alive_connection(http_servers: Servers) -> None:
    server = http_servers("127.0.0.2", content=CONTENT)
    url = server.url("/img")

    async def run() -> list[tuple[int, dict[str, str], bytes]]:
        connection = _connection(url)
        try:
            return [
                await _get(connection, url, {"Range": f"bytes={start}-{start + size - 1}"})
                for start, size in ((0, 10), (5, BUFFER + 7), (BUFFER, 2 * BUFFER))
            ] + [await _get(connection, url)]
        finally:
            assert connection.connections == 1
            connection.close()

    answers = asyncio.run(run())
    assert [a[0] for a in answers] == [206, 206, 206, 200]
    assert answers[0][2] == CONTENT[:10]
    assert answers[1][2] == CONTENT[5 : BUFFER + 12]
    assert answers[2][2] == CONTENT[BUFFER : 3 * BUFFER]
    assert answers[3][2] == CONTENT
    assert answers[1][1]["content-range"] == f"bytes 5-{BUFFER + 11}/{len(CONTENT)}"
    assert len(server.connections) == 1


_CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
#: Answers a hostile server writes raw, each of which must be an error, never bytes.
HOSTILE = {
    "negative-chunk": _CHUNKED_HEAD + b"-5\r\nhello\r\n0\r\n\r\n",
    "prefixed-chunk": _CHUNKED_HEAD + b"0x5\r\nhello\r\n0\r\n\r\n",
    "underscored-chunk": _CHUNKED_HEAD + b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n",
    "endless-trailers": _CHUNKED_HEAD + b"0\r\n" + b"X-T: y\r\n" * 20_000 + b"\r\n",
    "endless-interim": b"HTTP/1.1 100 Continue\r\n\r\n" * 50
    + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "two-lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\nhello",
    "signed-length": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
}


class _Framed(BaseHTTPRequestHandler):
    """Bodies framed by chunked encoding or by the end of the connection."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for at in range(0, len(CONTENT), 300_000):
                piece = CONTENT[at : at + 300_000]
                self.wfile.write(b"%x;ext=1\r\n%s\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif self.path == "/close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(CONTENT)
            self.close_connection = True
        elif self.path == "/quietly-closed":  # kept alive as far as the client knows
            self.send_response(200)
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"hello")
            self.close_connection = True
        elif self.path.startswith("/hostile/"):
            self.wfile.write(HOSTILE[self.path.removeprefix("/hostile/")])
            self.close_connection = True
        else:  # a short body: the connection ends before Content-Length bytes
            self.send_response(200)
            self.send_header("Content-Length", str(len(CONTENT)))
            self.end_headers()
            self.wfile.write(CONTENT[:1000])
            self.close_connection = True


@pytest.fixture
def framed() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.3", 0), _Framed)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield f"http://127.0.0.3:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_chunked_and_close_delimited_bodies(framed: str) -> None:
    async def run() -> tuple[bytes, bytes, int]:
        connection = _connection(framed)
        chunked = (await _get(connection, f"{framed}/chunked"))[2]
        closed = (await _get(connection, f"{framed}/close"))[2]
        again = (await _get(connection, f"{framed}/chunked"))[2]
        assert again == chunked
        connection.close()
        return chunked, closed, connection.connections

    chunked, closed, connections = asyncio.run(run())
    assert chunked == CONTENT and closed == CONTENT
    assert connections == 2  # kept after the chunked answer, not after "Connection: close"


def test_a_keep_alive_connection_the_server_dropped_is_replaced(framed: str) -> None:
    async def run() -> tuple[list[bytes], int]:
        connection = _connection(framed)
        bodies = []
        for _ in range(3):  # seen closed when idle, or failing at once: a fresh one either way
            bodies.append((await _get(connection, f"{framed}/quietly-closed"))[2])
        connection.close()
        return bodies, connection.connections

    bodies, connections = asyncio.run(run())
    assert bodies == [b"hello"] * 3 and connections == 3


def test_a_short_body_is_an_error(framed: str) -> None:
    with pytest.raises(HttpError, match="closed mid-body"):
        asyncio.run(_get(_connection(framed), f"{framed}/short"))


def test_the_gate_is_passed_before_any_connection() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.4", 0))
    listener.listen()
    url = f"http://127.0.0.4:{listener.getsockname()[1]}/img"
    try:
        gate = Gate.of(ProbeTarget(url="http://127.0.0.2/img"), LIMITS)
        with pytest.raises(NotAllowed):
            asyncio.run(_get(Connection(gate, LIMITS), url))
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()  # nothing ever connected
    finally:
        listener.close()


@pytest.mark.parametrize("answer", sorted(HOSTILE))
def test_a_hostile_framing_is_an_error_never_bytes(framed: str, answer: str) -> None:
    with pytest.raises(HttpError):
        asyncio.run(_get(_connection(framed), f"{framed}/hostile/{answer}"))
