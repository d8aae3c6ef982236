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
        for name in ("time", "seconds"):
            value = getattr(self, name)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be finite and non-negative, got {value!r}")
        fb = self.first_byte_seconds
        if fb is not None and (not math.isfinite(fb) or fb < 0):
            raise ValueError(f"first_byte_seconds must be finite and non-negative, got {fb!r}")
        if self.bytes < 0:
            raise ValueError(f"bytes must be non-negative, got {self.bytes!r}")

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
        return cls(
            time=float(row["time"]),
            backend=str(row["backend"]),
            source=row["source"],
            ok=bool(row["ok"]),
            error_class=row["error_class"],
            status=row["status"],
            first_byte_seconds=row["first_byte_seconds"],
            bytes=int(row["bytes"]),
            seconds=float(row["seconds"]),
            kind=row["kind"],
        )
