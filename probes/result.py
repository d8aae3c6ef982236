"""The one result type every probe returns, whatever the backend kind.

Shaped after blackbox_exporter: disjoint phase durations plus an outcome, so
the scheduler can feed estimators and metrics without knowing the protocol.
A result never holds a credential: the URL is redacted and messages are built
from redacted pieces (and scrubbed of known secrets as a second line).
"""

from __future__ import annotations

import email.utils
import re
import time
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Literal

from strategies.failures import ErrorClass, error_class_for_status

Outcome = Literal["ok", "error", "not_measurable", "not_needed"]
"""``ok``/``error``: a probe ran. ``not_measurable``: this node cannot measure the
backend (cinder, vsphere, swift+config, rbd without bindings, a redirect it may
not follow). ``not_needed``: nothing to measure (an rbd clone on the local cluster)."""


class Reason(StrEnum):
    """Why a backend was not probed, or need not be: the typed value callers
    branch on (the ``message`` is for people and may change)."""

    NO_PROBE = "no_probe"
    """A scheme this node has no probe for (cinder, vsphere, swift+config, unknown)."""
    INVALID_URL = "invalid_url"
    """The location URL cannot be read (no fsid in an rbd URL, bad host, ...)."""
    LOCAL_CEPH = "local_ceph"
    """An rbd image on this node's own Ceph cluster: a clone, nothing to measure."""
    NO_CEPH_BINDINGS = "no_ceph_bindings"
    """The ``rados``/``rbd`` Python bindings are not installed."""
    OTHER_CLUSTER = "other_cluster"
    """This node's ceph.conf points at another cluster than the URL's."""
    NOT_ALLOWED = "not_allowed"
    """A policy refused it: a host outside the allowlist (redirect, storage URL,
    catalog endpoint), a path outside the file roots, a downgrade to http."""
    NOT_A_FILE = "not_a_file"
    """A ``file://`` path that is not a regular file (FIFO, device)."""


PHASES = ("resolve", "connect", "tls", "first_byte", "transfer", "total")


@dataclass
class Phases:
    """Disjoint durations in seconds (``None``: the phase did not happen).

    ``first_byte`` runs from the request being sent (after connect and TLS) to
    the response headers; ``transfer`` from the headers to the last byte read.
    ``auth`` is the time spent getting a token (Swift) and is not a storage
    phase: it is outside ``first_byte_seconds`` but inside ``total``.
    """

    resolve: float | None = None
    """Name lookup (``None`` for an IP literal or a file)."""
    connect: float | None = None
    """TCP connect, or ``open()`` for a file."""
    tls: float | None = None
    """TLS handshake (https only)."""
    first_byte: float | None = None
    transfer: float | None = None
    total: float = 0.0
    """Wall time of the whole probe, auth included."""
    auth: float | None = None

    def add(self, name: str, seconds: float) -> None:
        """Accumulate (a redirect or a retried request adds to the same phase)."""
        current = getattr(self, name)
        setattr(self, name, seconds if current is None else current + seconds)


@dataclass(frozen=True)
class ProbeResult:
    """One measurement of one backend from this node."""

    url: str
    """The probed location, redacted (no userinfo, query or fragment)."""
    backend: str
    """``strategies.backends.backend_of(url).key``: credential-free."""
    kind: str
    """Probe module that ran: ``http``, ``file``, ``s3``, ``swift``, ``rbd`` or ``none``."""
    outcome: Outcome
    """Whether a sample came of it: ``ok``, ``error``, ``not_measurable`` or ``not_needed``."""
    message: str = ""
    """The outcome in words (credential-free)."""
    reason: Reason | None = None
    """Set when ``outcome`` is ``not_measurable`` or ``not_needed``."""
    error_class: ErrorClass | None = None
    """Which side failed, when ``outcome`` is ``error`` (the failure vocabulary)."""
    status: int | None = None
    """HTTP status of the last response, when there was one."""
    retry_after: float | None = None
    """Seconds the server asked us to wait (``Retry-After``), when given."""
    bytes: int = 0
    requested_bytes: int = 0
    phases: Phases = field(default_factory=Phases)
    range_honoured: bool | None = None
    """``False`` when an HTTP server answered 200 to a ranged GET (we still read at
    most ``requested_bytes``)."""
    timed_out: bool = False
    started_at: float = field(default_factory=time.time)

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"

    @property
    def measured(self) -> bool:
        """Whether this result is a sample (ok or error), not a "cannot/need not" note."""
        return self.outcome in ("ok", "error")

    @property
    def first_byte_seconds(self) -> float | None:
        """Latency as a client sees it: resolve + connect + TLS + first byte (no auth)."""
        if self.phases.first_byte is None:
            return None
        parts = (self.phases.resolve, self.phases.connect, self.phases.tls, self.phases.first_byte)
        return sum(p for p in parts if p is not None)

    @property
    def seconds(self) -> float:
        """Wall time of the data request: first byte plus transfer (no auth)."""
        first = self.first_byte_seconds
        if first is None:
            return self.phases.total
        return first + (self.phases.transfer or 0.0)

    @property
    def throughput_bytes_per_second(self) -> float | None:
        transfer = self.phases.transfer
        if not self.bytes or not transfer or transfer <= 0:
            return None
        return self.bytes / transfer

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        data["first_byte_seconds"] = self.first_byte_seconds
        data["seconds"] = self.seconds
        data["throughput_bytes_per_second"] = self.throughput_bytes_per_second
        return data


def class_of_status(status: int) -> ErrorClass | None:
    """Error class of an HTTP status; ``None`` for success."""
    if status < 400 or status == 416:  # 416: a ranged read of an empty object
        return None
    return error_class_for_status(status)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def scrub(text: str, secrets: tuple[str, ...]) -> str:
    """Second line of defence: blank out known secrets in a message, also as a
    library would quote them (``repr`` escapes, bytes), then control characters."""
    for secret in secrets:
        if not secret or len(secret) < 3:
            continue
        quoted = repr(secret.encode("utf-8", "backslashreplace"))[2:-1]
        for form in {secret, repr(secret)[1:-1], quoted}:
            text = text.replace(form, "***")
    return _CONTROL.sub("?", text)
