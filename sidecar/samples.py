"""One measurement of one backend, from a probe or from a client's real download."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, get_args

from strategies.failures import ERROR_CLASSES, ErrorClass

Source = Literal["probe", "report"]
Kind = Literal["latency", "throughput", "download", "progress"]

SOURCES: tuple[str, ...] = get_args(Source)
KINDS: tuple[str, ...] = get_args(Kind)

# -- what is physically possible: the one home of these limits -------------------------
# The API refuses an observation breaking them (422 naming the field), the
# estimators never see one, and a history row breaking them is skipped on replay.
MAX_RATE = 64 * 1024**3
"""Bytes per second no transfer reaches (64 GiB/s, above a memory copy of one core)."""
MIN_SECONDS = 1e-6
"""A successful transfer takes at least this long (1 µs)."""
MAX_SECONDS = 86400.0
"""Longer than any one download or probe (1 day); also the ceiling of ``first_byte_seconds``."""
MAX_BYTES = 2**53 - 1
"""8 PiB; JSON numbers above 2**53 lose precision in most parsers."""


def seconds_problem(seconds: float, *, ok: bool, size: int) -> str | None:
    """Why ``seconds`` (a whole transfer of ``size`` bytes) cannot be true, or ``None``."""
    if not math.isfinite(seconds) or seconds < 0:
        return f"must be finite and non-negative, got {seconds!r}"
    if seconds > MAX_SECONDS:
        return f"must be at most {MAX_SECONDS:g} s, got {seconds!r}"
    if ok and seconds < MIN_SECONDS:
        return f"a success takes at least {MIN_SECONDS:g} s, got {seconds!r}"
    if size > 0 and size > seconds * MAX_RATE:
        return f"{size} bytes in {seconds!r} s is faster than {MAX_RATE} bytes/s"
    return None


def first_byte_problem(first_byte_seconds: float, *, seconds: float | None) -> str | None:
    """Why a first byte at ``first_byte_seconds`` cannot be true, or ``None``."""
    fb = first_byte_seconds
    if not math.isfinite(fb) or fb < 0 or fb > MAX_SECONDS:
        return f"must be between 0 and {MAX_SECONDS:g} s, got {fb!r}"
    if seconds is not None and fb > seconds:
        return f"the first byte ({fb!r} s) cannot come after the end (seconds {seconds!r})"
    return None


def bytes_problem(size: int) -> str | None:
    if not 0 <= size <= MAX_BYTES:
        return f"must be between 0 and {MAX_BYTES}, got {size!r}"
    return None


@dataclass(frozen=True)
class Sample:
    """What happened when this node fetched from ``backend`` (a redacted key) at ``time``.

    ``error_class`` is set exactly when ``ok`` is false: ``local`` (DNS, connect,
    TLS, timeout), ``server`` (5xx), ``missing`` (404: this object is not there,
    the backend is fine) or ``auth`` (401/403: a configuration problem).

    ``kind="progress"`` is a client's report of a download still running: the
    bytes of one recent window of the transfer. It is always ``ok``.
    """

    time: float
    backend: str
    source: Source
    ok: bool
    error_class: ErrorClass | None
    status: int | None
    first_byte_seconds: float | None
    bytes: int
    seconds: float
    kind: Kind

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"source must be one of {SOURCES}, got {self.source!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.ok and self.error_class is not None:
            raise ValueError("a successful sample has no error class")
        if self.kind == "progress" and not self.ok:
            raise ValueError("a progress sample reports a running transfer: ok must be true")
        if not self.ok and self.error_class not in ERROR_CLASSES:
            raise ValueError(f"a failed sample needs an error class in {ERROR_CLASSES}")
        if not self.backend or "@" in self.backend:
            raise ValueError("backend must be a redacted backend key")
        if not math.isfinite(self.time) or self.time < 0:
            raise ValueError(f"time must be finite and non-negative, got {self.time!r}")
        problem = bytes_problem(self.bytes)
        if problem:
            raise ValueError(f"bytes {problem}")
        problem = seconds_problem(self.seconds, ok=self.ok, size=self.bytes)
        if problem:
            raise ValueError(f"seconds {problem}")
        fb = self.first_byte_seconds
        problem = None if fb is None else first_byte_problem(fb, seconds=self.seconds)
        if problem:
            raise ValueError(f"first_byte_seconds {problem}")

    def as_row(self) -> dict[str, Any]:
        return {
            "time": self.time,
            "backend": self.backend,
            "source": self.source,
            "ok": int(self.ok),
            "error_class": self.error_class,
            "status": self.status,
            "first_byte_seconds": self.first_byte_seconds,
            "bytes": self.bytes,
            "seconds": self.seconds,
            "kind": self.kind,
        }

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Sample:
        """The sample of a history row; ``ValueError`` (or ``TypeError``) when it breaks a rule."""
        fb = row["first_byte_seconds"]
        return cls(
            time=float(row["time"]),
            backend=str(row["backend"]),
            source=row["source"],
            ok=bool(row["ok"]),
            error_class=row["error_class"],
            status=row["status"],
            first_byte_seconds=None if fb is None else float(fb),
            bytes=int(row["bytes"]),
            seconds=float(row["seconds"]),
            kind=row["kind"],
        )
