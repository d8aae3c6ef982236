"""Open connections under uvicorn: a cap, request deadlines, quiet accept errors.

uvicorn's h11 protocol keeps a connection that sent half a request head for as
long as the client likes, and one that stalls in the middle of a body too; past
the open-files limit every accept fails and is logged. Here (numbers in
README.md, "Limits"):

- at most ``max_connections`` are open; a new one beyond that replaces the
  oldest connection that is idle or still waiting for its request head or the
  rest of its body (so a flood of half-sent requests cannot lock a real client
  out), or is closed at once when every connection is being answered;
- a request head must be complete within ``head_timeout`` of the connection
  (or of the previous answer on it), a body within ``body_timeout`` of its
  head; otherwise the client gets ``408`` and the connection is closed;
- a head still incomplete after ``MAX_HEAD_BYTES`` gets ``400`` (h11's own limit; a
  whole head arriving in one read of at most 256 KiB is parsed), and uvicorn's
  warning per such request is summed up (``QuietClientWarnings``);
- dropped connections are counted (``location_sidecar_connections_dropped_total``)
  and summed up in one log line per ``SUMMARY_INTERVAL`` at most, like accept
  errors (``quiet_accept_errors``): a flood never floods the log.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from uvicorn.protocols.http.h11_impl import H11Protocol

LOG = logging.getLogger(__name__)

MAX_HEAD_BYTES = 16 * 1024
"""Request line plus headers buffered before the head is complete (h11's
``max_incomplete_event_size``)."""
FD_RESERVE = 128
"""Open files kept for everything but client connections (history, probes, DNS, logs)."""
SUMMARY_INTERVAL = 60.0
"""At most one log line per this many seconds about dropped connections or accept errors."""
DROP_REASONS = ("head_timeout", "body_timeout", "replaced", "refused")

_TIMEOUT_BODY = b'{"error": "request not received in time"}'
_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
    b"content-length: " + str(len(_TIMEOUT_BODY)).encode() + b"\r\nconnection: close\r\n\r\n"
) + _TIMEOUT_BODY


@dataclass(frozen=True)
class ConnectionLimits:
    max_connections: int
    head_timeout: float
    body_timeout: float


class RateLimitedLog:
    """Counts events and logs one summary line per ``interval`` at most."""

    def __init__(self, logger: logging.Logger, what: str, interval: float = SUMMARY_INTERVAL):
        self.logger, self.what, self.interval = logger, what, interval
        self.pending: dict[str, int] = {}
        self.last = -interval

    def note(self, reason: str, now: float | None = None) -> None:
        self.pending[reason] = self.pending.get(reason, 0) + 1
        now = time.monotonic() if now is None else now
        if now - self.last >= self.interval:
            self.last = now
            counts = ", ".join(f"{k}: {v}" for k, v in sorted(self.pending.items()))
            self.pending.clear()
            self.logger.warning(
                "%s (%s; at most one such line per %.0f s)", self.what, counts, self.interval
            )


class ConnectionGuard:
    """State shared by the connections of one server: who is open, who may be replaced."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open: set[GuardedH11Protocol] = set()
        self.waiting: OrderedDict[GuardedH11Protocol, None] = OrderedDict()
        """Idle, or waiting for a request head or the rest of a body, oldest first: these
        may be replaced (on loopback a real client sends a whole request in milliseconds)."""
        self.dropped = dict.fromkeys(DROP_REASONS, 0)
        self.log = RateLimitedLog(LOG, "dropped client connections")

    def admit(self, conn: GuardedH11Protocol) -> bool:
        while len(self.open) >= self.limits.max_connections:
            if not self.waiting:
                self.drop("refused")
                return False
            victim, _ = self.waiting.popitem(last=False)
            victim.drop("replaced")
        self.open.add(conn)
        return True

    def release(self, conn: GuardedH11Protocol) -> None:
        self.open.discard(conn)
        self.waiting.pop(conn, None)

    def drop(self, reason: str) -> None:
        self.dropped[reason] += 1
        self.log.note(reason)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the limits of :class:`ConnectionGuard`."""

    guard: ClassVar[ConnectionGuard]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._dropped = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if not self.guard.admit(self):
            self._dropped = True
            transport.abort()
            return
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        self.guard.release(self)
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        self._track()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._track()

    def drop(self, reason: str) -> None:
        """Answer 408 (deadline) or nothing (replaced), then close; a request whose body
        was cut off sees ``http.disconnect``."""
        if self._dropped or self.transport.is_closing():
            return
        self._dropped = True
        self._cancel()
        self.guard.release(self)  # now: its socket is closed on the next loop turn
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the app's receive() answers http.disconnect
            cycle.message_event.set()
        head = self._phase == "head" or cycle is None
        if reason != "replaced" and (head or not cycle.response_started):
            self.transport.write(_TIMEOUT_RESPONSE)
        self.guard.drop(reason)
        self.transport.close()

    # -- the deadline of the current phase -------------------------------------------
    def _track(self) -> None:
        if self._dropped or self.transport is None or self.transport.is_closing():
            return
        state = self.conn.their_state
        phase = "head" if state is h11.IDLE else "body" if state is h11.SEND_BODY else None
        if phase == self._phase:
            return
        self._cancel()
        self._phase = phase
        limits = self.guard.limits
        if phase is None:  # being answered: never replaced
            self.guard.waiting.pop(self, None)
            return
        self.guard.waiting[self] = None
        self.guard.waiting.move_to_end(self)
        timeout = limits.head_timeout if phase == "head" else limits.body_timeout
        self._deadline = self.loop.call_later(timeout, self.drop, f"{phase}_timeout")

    def _cancel(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None


def protocol_class(guard: ConnectionGuard) -> type[GuardedH11Protocol]:
    """A protocol class for one server (``uvicorn.Config(http=...)``)."""
    return type("GuardedH11Protocol", (GuardedH11Protocol,), {"guard": guard})


class ConnectionCollector(Collector):
    """``location_sidecar_open_connections`` and ``..._connections_dropped_total{reason}``."""

    def __init__(self, guard: ConnectionGuard) -> None:
        self.guard = guard

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "location_sidecar_open_connections",
            "Client connections open now",
            value=len(self.guard.open),
        )
        dropped = CounterMetricFamily(
            "location_sidecar_connections_dropped",
            "Client connections closed by a limit: head_timeout, body_timeout, "
            "replaced (by a newer one at max_connections), refused (all busy)",
            labels=["reason"],
        )
        for reason, count in self.guard.dropped.items():
            dropped.add_metric([reason], count)
        yield dropped


def fit_open_files(max_connections: int, backlog: int) -> tuple[int, int]:
    """Raise the soft open-files limit (up to the hard one) so that ``max_connections``
    open connections, a full accept ``backlog`` (accepted in one burst before any is
    replaced) and ``FD_RESERVE`` fit; else lower both, with a warning. Returns
    ``(max_connections, backlog)``."""
    wanted = max_connections + backlog + FD_RESERVE
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):  # a sandbox may forbid setrlimit (systemd @resources)
            pass
    if soft == resource.RLIM_INFINITY or soft >= wanted:
        return max_connections, backlog
    room = max(32, soft - FD_RESERVE)
    backlog = min(backlog, max(16, room // 4))
    fitting = max(16, min(max_connections, room - backlog))
    LOG.warning(
        "open-files limit %d: server.max_connections lowered from %d to %d, "
        "accept backlog to %d (raise LimitNOFILE= or ulimit -n)",
        soft,
        max_connections,
        fitting,
        backlog,
    )
    return fitting, backlog


class QuietClientWarnings(logging.Filter):
    """uvicorn logs a warning per refused request (``Exceeded concurrency limit.``) and
    per malformed one (``Invalid HTTP request received.``, oversized heads included):
    a client could fill the log with them. They become one counted line per
    ``SUMMARY_INTERVAL``."""

    MESSAGES: ClassVar[dict[str, str]] = {
        "Exceeded concurrency limit.": "limit_concurrency",
        "Invalid HTTP request received.": "invalid_request",
    }

    def __init__(self) -> None:
        super().__init__()
        self.summary = RateLimitedLog(LOG, "client requests refused by uvicorn")

    def filter(self, record: logging.LogRecord) -> bool:
        kind = self.MESSAGES.get(str(record.msg))
        if kind is None:
            return True
        self.summary.note(kind)
        return False


def quiet_accept_errors(loop: asyncio.AbstractEventLoop) -> None:
    """Accept failures (no file descriptors left...) become one counted line per minute."""
    summary = RateLimitedLog(logging.getLogger("asyncio"), "accept() failing")

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        message = str(context.get("message", ""))
        if message.startswith("socket.accept()"):
            exc = context.get("exception")
            summary.note(type(exc).__name__ if exc else "error")
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)
