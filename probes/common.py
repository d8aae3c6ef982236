"""The harness every probe module runs in: deadline, error classes, result.

A probe body only does its protocol's work on a :class:`Run`; this module owns
the hard timeout and the mapping of transport failures to the ``local`` class,
so every backend kind reports the same way.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpcore

from probes.fetch import BadHeader, Fetched, Progress, ResolveError
from probes.gate import Gate, NotAllowed
from probes.result import Outcome, Phases, ProbeResult, Reason, class_of_status, scrub
from probes.result import parse_retry_after as _parse_retry_after
from probes.target import ProbeLimits, ProbeTarget
from strategies.backends import backend_of, redact_url
from strategies.failures import ErrorClass


@dataclass
class Run:
    """Mutable state of one probe while it runs."""

    target: ProbeTarget
    limits: ProbeLimits
    gate: Gate
    """Where this probe may connect; every fetch of the run passes it."""
    secrets: tuple[str, ...] = ()
    phases: Phases = field(default_factory=Phases)
    progress: Progress = field(default_factory=Progress)
    outcome: Outcome = "ok"
    error_class: ErrorClass | None = None
    status: int | None = None
    retry_after: float | None = None
    range_honoured: bool | None = None
    message: str = ""
    reason: Reason | None = None

    def fail(self, error_class: ErrorClass, message: str) -> None:
        self.outcome = "error"
        self.error_class = error_class
        self.message = message

    def not_measurable(self, message: str, reason: Reason) -> None:
        self.outcome = "not_measurable"
        self.message = message
        self.reason = reason

    def take_response(self, fetched: Fetched, what: str = "object") -> None:
        """Record a data response: status, bytes, Range handling, error class."""
        self.status = fetched.status
        self.progress.bytes = fetched.bytes
        self.retry_after = _parse_retry_after(fetched.headers.get("retry-after"))
        if fetched.status == 206:
            self.range_honoured = True
        elif fetched.status == 200:
            self.range_honoured = False
            self.message = "server ignored Range; read the first bytes only"
        elif fetched.status == 416:
            self.message = f"{what} is empty (416 Range Not Satisfiable)"
        error = class_of_status(fetched.status)
        if error is not None:
            self.fail(error, f"HTTP {fetched.status} for the {what}" + _reason(fetched))
        elif fetched.status >= 300 and fetched.status != 416:
            self.fail("server", f"unexpected HTTP {fetched.status}")


def _reason(fetched: Fetched) -> str:
    retry_after = fetched.headers.get("retry-after")
    return f" (Retry-After: {retry_after[:40]})" if retry_after else ""


def _transport_error(exc: Exception) -> str:
    if isinstance(exc, ResolveError):
        return str(exc)
    if isinstance(exc, httpcore.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, httpcore.ReadTimeout | httpcore.WriteTimeout | httpcore.PoolTimeout):
        return "read timed out"
    if isinstance(exc, httpcore.ConnectError):
        detail = str(exc) or type(exc).__name__
        kind = "TLS handshake failed" if "SSL" in detail or "certificate" in detail else "connect"
        return f"{kind}: {detail}"
    if isinstance(exc, httpcore.RemoteProtocolError | httpcore.ReadError | httpcore.WriteError):
        return f"connection broken: {str(exc) or type(exc).__name__}"
    if isinstance(exc, httpcore.LocalProtocolError):
        # its text quotes the offending request piece, which may be a credential
        return "request refused by the HTTP library (an invalid header or URL)"
    return f"{type(exc).__name__}: {exc}"


async def measure(
    kind: str,
    target: ProbeTarget,
    limits: ProbeLimits,
    body: Callable[[Run], Awaitable[None]],
    secrets: tuple[str, ...] = (),
) -> ProbeResult:
    """Run ``body`` under the hard deadline and turn what happened into a result."""
    run = Run(target=target, limits=limits, gate=Gate.of(target, limits), secrets=secrets)
    wall = time.time()
    started = time.monotonic()
    timed_out = False
    try:
        async with asyncio.timeout(limits.timeout):
            await body(run)
    except NotAllowed as exc:
        run.not_measurable(str(exc), Reason.NOT_ALLOWED)
    except BadHeader as exc:
        run.fail("auth", str(exc))
    except TimeoutError:
        timed_out = True
        if run.progress.headed_at is not None and run.phases.transfer is None:
            run.phases.transfer = time.monotonic() - run.progress.headed_at
        where = "during transfer" if run.phases.first_byte is not None else "before first byte"
        run.fail(
            "local",
            f"timed out after {limits.timeout:g}s {where} ({run.progress.bytes} bytes read)",
        )
    except (httpcore.TimeoutException, httpcore.NetworkError, httpcore.ProtocolError) as exc:
        timed_out = isinstance(exc, httpcore.TimeoutException)
        run.fail("local", _transport_error(exc))
    except httpcore.UnsupportedProtocol as exc:
        run.fail("local", f"unsupported protocol: {exc}")
    except (ssl.SSLError, OSError) as exc:
        run.fail("local", f"{type(exc).__name__}: {exc}")
    except Exception as exc:  # a probe must return a result, never raise into a scheduler
        run.fail("local", f"probe failed unexpectedly: {type(exc).__name__}")
    run.phases.total = time.monotonic() - started
    return ProbeResult(
        url=redact_url(target.url),
        backend=backend_key(target),
        kind=kind,
        outcome=run.outcome,
        error_class=run.error_class,
        status=run.status if run.status is not None else run.progress.status,
        retry_after=run.retry_after,
        bytes=run.progress.bytes,
        requested_bytes=limits.max_bytes,
        phases=run.phases,
        range_honoured=run.range_honoured,
        timed_out=timed_out,
        started_at=wall,
        message=scrub(run.message, secrets),
        reason=run.reason,
    )


def backend_key(target: ProbeTarget) -> str:
    try:
        return backend_of(target.url, file_roots=target.file_roots).key
    except (TypeError, ValueError):
        return "<invalid>"


def note(
    kind: str,
    target: ProbeTarget,
    limits: ProbeLimits,
    outcome: Outcome,
    message: str,
    reason: Reason,
) -> ProbeResult:
    """A result for a backend that was not probed (cannot be, or need not be)."""
    return ProbeResult(
        url=redact_url(target.url),
        backend=backend_key(target),
        kind=kind,
        outcome=outcome,
        requested_bytes=limits.max_bytes,
        message=scrub(message, ()),
        reason=reason,
    )
