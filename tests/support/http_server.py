"""A real HTTP server on a loopback address, with Range support and faults.

Used by the probe tests, and meant for bench/ and reliability tests too: each
instance binds its own address (127.0.0.2, 127.0.0.3, ...) so that backends
get distinct keys, serves one object at every path, and can be told to be
slow (first-byte delay, token-bucket bandwidth) or broken (see ``FAULTS``).
A fault applies to the whole server (``server.fault = "..."``) or to one
request through a path prefix: ``/_fault/<mode>/anything``.

For bench/: ``objects`` maps paths to their own bodies (other paths still get
``content``), and :meth:`RangeServer.set_schedule` plays a timeline of
:class:`Phase` changes (degrade, outage, recover) on top of the base settings;
:meth:`RangeServer.current` tells what the server does at a given moment, which
is what an oracle needs.

Every request lands in ``server.log`` before it is answered, so a test can
assert that something was (or was not) fetched.
"""

from __future__ import annotations

import re
import socket
import ssl
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from typing import Any

from tests.support.loopback import LoopbackServer, QuietHandler

FAULTS = (
    "ignore_range",  # 200 with the whole body, whatever Range says
    "reset",  # headers and half the body, then a TCP reset
    "hang",  # accept the request, never answer (until the server stops)
    "drip",  # headers, then one byte every ``drip_interval`` seconds
    "404",
    "401",
    "403",
    "500",
    "503",  # with Retry-After: ``retry_after``
    "redirect",  # 302 to ``redirect_to`` (absolute or relative)
    "bad_range",  # 206 whose Content-Range does not say what was asked (start + 1)
)


@dataclass
class Request:
    time: float
    client: str
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class ServerConfig:
    content: bytes = b""
    first_byte_delay: float = 0.0
    bandwidth: float | None = None
    """Bytes per second (token bucket, burst ``chunk``); ``None``: as fast as possible."""
    chunk: int = 16 * 1024
    fault: str | None = None
    retry_after: str = "7"
    redirect_to: str = "/"
    drip_interval: float = 0.2
    extra: dict[str, Any] = field(default_factory=dict)
    objects: dict[str, bytes] = field(default_factory=dict)
    """Bodies by request path (query ignored); any other path gets ``content``."""


_UNSET: Any = object()


@dataclass(frozen=True)
class Phase:
    """From ``at`` seconds after the schedule's start, override the settings given."""

    at: float
    first_byte_delay: float | None = None
    bandwidth: float | None = _UNSET
    fault: str | None = _UNSET

    def __post_init__(self) -> None:
        if self.fault is not _UNSET and self.fault is not None and self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}")


@dataclass(frozen=True)
class Behaviour:
    """What the server does at one moment (base settings with the schedule applied)."""

    first_byte_delay: float
    bandwidth: float | None
    fault: str | None


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeServer(LoopbackServer):
    """``with RangeServer("127.0.0.2", content=b"...") as srv: srv.url("/x")``."""

    def __init__(
        self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None, **config: Any
    ) -> None:
        self.config = ServerConfig(**config)
        self.log: list[Request] = []
        self.schedule: tuple[Phase, ...] = ()
        self.schedule_start = 0.0
        self.stopping = threading.Event()
        super().__init__(host, _make_handler(self), tls)

    # configuration shortcuts
    def __getattr__(self, name: str) -> Any:
        if name in ServerConfig.__dataclass_fields__:
            return getattr(self.config, name)
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ServerConfig.__dataclass_fields__:
            setattr(self.config, name, value)
        else:
            super().__setattr__(name, value)

    def url(self, path: str = "/object", scheme: str = "", userinfo: str = "") -> str:
        at = f"{userinfo}@" if userinfo else ""
        return f"{scheme or self.scheme}://{at}{self.host}:{self.port}{path}"

    def set_schedule(self, phases: list[Phase], start: float | None = None) -> None:
        """Play ``phases`` from ``start`` (``time.monotonic()`` by default)."""
        ordered = tuple(sorted(phases, key=lambda p: p.at))
        with self._lock:
            self.schedule_start = time.monotonic() if start is None else start
            self.schedule = ordered

    def current(self, now: float | None = None) -> Behaviour:
        """The behaviour at monotonic time ``now``: base settings, then every phase begun."""
        cfg = self.config
        delay, bandwidth, fault = cfg.first_byte_delay, cfg.bandwidth, cfg.fault
        with self._lock:
            schedule, start = self.schedule, self.schedule_start
        elapsed = (time.monotonic() if now is None else now) - start
        for phase in schedule:
            if phase.at > elapsed:
                break
            if phase.first_byte_delay is not None:
                delay = phase.first_byte_delay
            if phase.bandwidth is not _UNSET:
                bandwidth = phase.bandwidth
            if phase.fault is not _UNSET:
                fault = phase.fault
        return Behaviour(delay, bandwidth, fault)

    def stop(self) -> None:
        self.stopping.set()  # first: wakes the handlers that wait (hang, drip, delays)
        super().stop()

    def record(self, request: Request) -> None:
        with self._lock:
            self.log.append(request)

    def requests(self) -> list[Request]:
        with self._lock:
            return list(self.log)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[Request]:
        """Poll (with a deadline) until ``count`` requests were logged."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = self.requests()
            if len(seen) >= count:
                return seen
            self.stopping.wait(0.01)
        raise TimeoutError(f"{len(self.requests())} requests logged, wanted {count}")


def _make_handler(server: RangeServer) -> type[QuietHandler]:
    class Handler(QuietHandler):
        def setup(self) -> None:
            super().setup()
            # Headers and body leave in separate writes: without this, Nagle plus the
            # client's delayed ACK add ~40 ms to some replies, which is not the emulated
            # latency.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def do_GET(self) -> None:
            self._answer(body=True)

        def do_HEAD(self) -> None:
            self._answer(body=False)

        def _answer(self, body: bool) -> None:
            cfg = server.config
            now = server.current()
            server.record(
                Request(
                    time=time.time(),
                    client=self.client_address[0],
                    method=self.command,
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                )
            )
            fault = now.fault
            match = re.match(r"^/_fault/([^/]+)(/.*)?$", self.path)
            if match:
                fault = match.group(1)
            if now.first_byte_delay and server.stopping.wait(now.first_byte_delay):
                return
            if fault == "hang":
                server.stopping.wait(3600)
                self.close_connection = True
                return
            if fault in ("404", "401", "403", "500", "503"):
                self._status_only(int(fault))
                return
            if fault == "redirect":
                self.reply(302, {"Location": cfg.redirect_to})
                return
            content = cfg.objects.get(self.path.partition("?")[0], cfg.content)
            start, end, status = 0, len(content) - 1, 200
            wanted = self.headers.get("Range")
            if wanted and fault != "ignore_range":
                parsed = _RANGE.match(wanted.strip())
                if parsed and (parsed.group(1) or parsed.group(2)):
                    first, last = parsed.group(1), parsed.group(2)
                    if first:
                        start = int(first)
                        end = min(int(last), len(content) - 1) if last else len(content) - 1
                    else:
                        start = max(0, len(content) - int(last))
                    if start >= len(content):
                        self.reply(416, {"Content-Range": f"bytes */{len(content)}"})
                        return
                    status = 206
            payload = content[start : end + 1]
            self.send_response(status)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                shift = 1 if fault == "bad_range" else 0
                self.send_header("Content-Range", f"bytes {start + shift}-{end}/{len(content)}")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if not body:
                return
            if fault == "reset":
                self.wfile.write(payload[: len(payload) // 2])
                self.wfile.flush()
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.close_connection = True
                self.connection.close()
                return
            if fault == "drip":
                for i in range(len(payload)):
                    if server.stopping.wait(cfg.drip_interval):
                        return
                    self.wfile.write(payload[i : i + 1])
                    self.wfile.flush()
                return
            self._send_body(payload)

        def _send_body(self, payload: bytes) -> None:
            cfg = server.config
            due = time.monotonic()
            for offset in range(0, len(payload), cfg.chunk):
                piece = payload[offset : offset + cfg.chunk]
                # token bucket with a burst of one chunk: each piece may leave once the
                # previous ones have been paid for at the rate in force (a schedule may
                # change it mid-body)
                wait = due - time.monotonic()
                if wait > 0 and server.stopping.wait(wait):
                    return
                try:
                    self.wfile.write(piece)
                except (BrokenPipeError, ConnectionResetError):
                    return
                rate = server.current().bandwidth if server.schedule else cfg.bandwidth
                if rate:
                    due += len(piece) / rate

        def _status_only(self, status: int) -> None:
            headers = {}
            if status == 503:
                headers["Retry-After"] = server.config.retry_after
            if status == 401:
                headers["WWW-Authenticate"] = 'Basic realm="probe"'
            self.reply(status, headers, f"status {status}\n".encode())

    return Handler


@contextmanager
def faulty_backends(first: str, content: bytes, **flap: Any) -> Iterator[dict[str, RangeServer]]:
    """Five running servers on consecutive loopback addresses from ``first``: ``hang``,
    ``reset`` (mid-body), ``drip`` (a byte every 50 ms), ``flap`` (with the ``flap``
    settings, healthy by default: the test switches it) and ``good``."""
    prefix, _, last = first.rpartition(".")
    settings: dict[str, dict[str, Any]] = {
        "hang": {"fault": "hang"},
        "reset": {"fault": "reset"},
        "drip": {"fault": "drip", "drip_interval": 0.05},
        "flap": flap,
        "good": {},
    }
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(
                RangeServer(f"{prefix}.{int(last) + i}", content=content, **config)
            )
            for i, (name, config) in enumerate(settings.items())
        }
