"""One location during a fetch: its transport, state, rate meter and runs.

A *run* is a stretch during which the location was in use (activated until
switched away, failed or done); each run becomes one observation for the
sidecar, with the seconds the location actually had a request in flight.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from probes.result import scrub
from sidecar.fetch.plan import Location
from sidecar.fetch.transport import Transport
from strategies import nova
from strategies.failures import ErrorClass

State = Literal["standby", "active", "failed"]

#: Below this span a rate is noise and is not used.
MIN_SPAN = 0.3


@dataclass
class JobMeter:
    """The clock and byte counts of one job (one ranged request) in flight."""

    started: float
    last_byte_at: float
    """When a byte last came (the stall check)."""
    samples: deque[tuple[float, int]]
    """(time, the source's bytes so far), from the first byte on: the rate windows."""
    first_byte_at: float | None = None
    """When the answer's headers came (``None``: not yet)."""


@dataclass(eq=False)
class Source:
    index: int
    location: Location
    transport: Transport | None
    state: State = "standby"
    failures: int = 0
    retry_at: float = 0.0
    message: str = ""
    bytes: int = 0
    """Bytes written from this source, all runs."""
    measured: float | None = None
    """The rate of its last busy window in this fetch (bytes/s)."""
    peak: float | None = None
    """The best rate seen from it in this fetch: the guess for a standby never measured."""
    job: JobMeter | None = None
    """The job in flight (``None``: idle)."""
    slow_since: float | None = None
    """Since when it has been too slow to keep (the switching rule's hold)."""
    runs: list[nova.Attempt] = field(default_factory=list)
    _run_bytes: int = 0
    _run_busy: float = 0.0
    _run_first_byte: float | None = None

    @property
    def shown(self) -> str:
        return self.location.shown

    def note(self, message: str) -> None:
        """Why it failed, with any secret of its URL blanked out."""
        secrets = self.transport.secrets if self.transport is not None else ()
        self.message = scrub(message, secrets)

    def expected(self) -> float | None:
        """What this source should deliver: measured here, else the sidecar's estimate."""
        return self.measured or self.location.expected_rate

    def latency(self) -> float:
        return self.location.expected_latency or 0.02

    # -- a run -------------------------------------------------------------------------
    def activate(self) -> None:
        self.state = "active"
        self._run_bytes, self._run_busy, self._run_first_byte = 0, 0.0, None
        self.slow_since = None

    def end_run(self, error: ErrorClass | None = None) -> None:
        """Close the current run; it becomes an observation (if anything happened)."""
        if self.job is not None:
            self.job_ended(time.monotonic())
        if self._run_busy > 0 or error is not None:
            self.runs.append(
                nova.Attempt(
                    self.shown,
                    error is None,
                    self._run_bytes,
                    self._run_busy,
                    self._run_first_byte,
                    error,
                )
            )
        self._run_bytes, self._run_busy = 0, 0.0

    # -- jobs and bytes ----------------------------------------------------------------
    def job_started(self, now: float) -> None:
        self.job = JobMeter(started=now, last_byte_at=now, samples=deque([(now, self.bytes)]))

    def first_byte(self, seconds: float, now: float) -> None:
        """The answer's headers are in: rates count from here (the wait for the first
        byte is spent whatever happens next, so it says nothing about the rest)."""
        if self._run_first_byte is None:
            self._run_first_byte = seconds
        if self.job is not None:
            self.job.first_byte_at = now
            self.job.samples = deque([(now, self.bytes)])

    def job_ended(self, now: float) -> None:
        if self.job is None:
            return
        rate = self.rate(now, window=float("inf"))
        if rate is not None:
            self.measured = rate
        self._run_busy += now - self.job.started
        self.job = None

    def add(self, count: int, now: float) -> None:
        self.bytes += count
        self._run_bytes += count
        job = self.job
        if job is None:
            return
        job.last_byte_at = now
        samples = job.samples
        samples.append((now, self.bytes))
        while len(samples) > 2 and samples[1][0] < now - 5.0:
            samples.popleft()

    def window(self, now: float, span: float) -> tuple[int, float] | None:
        """Bytes and seconds over the last ``span`` seconds (at least) of the current job's
        transfer, from its first byte on (``None``: no first byte yet)."""
        job = self.job
        if job is None or job.first_byte_at is None or not job.samples:
            return None
        base = job.samples[0]
        for sample in job.samples:
            if sample[0] <= now - span:
                base = sample
            else:
                break
        return self.bytes - base[1], now - base[0]

    def rate(self, now: float, window: float) -> float | None:
        """Bytes/s over the last ``window`` seconds of the current job's transfer, from its
        first byte on (``None``: no first byte yet, or too young)."""
        seen = self.window(now, window)
        if seen is None or seen[1] < MIN_SPAN:
            return None
        rate = seen[0] / seen[1]
        if self.peak is None or rate > self.peak:
            self.peak = rate
        return rate
