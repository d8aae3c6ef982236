"""The transfer: one worker per source in use, a monitor that switches sources.

Each active source has one worker (so one connection per location) that takes
jobs from :class:`~sidecar.fetch.segments.Segments` and streams them to the part
file at their offsets; memory is one chunk per worker.

The monitor runs every ``TICK`` seconds, and at once when a worker ends:

- **switch**: an active source is put on standby, and the rest of its range goes
  to the next standby location with a Range request (the bytes already written
  stay), when finishing here would take more than ``SWITCH_GAIN`` times as long as
  finishing there: the next location's expected first byte plus the bytes left at
  its expected rate. The current location's rate is judged over the last
  ``SWITCH_WINDOW`` seconds of transfer (from the first byte on: the wait for it is
  spent anyway) with :func:`sidecar.fetch.evidence.clearly_below`, which grants it
  ``GRACE`` seconds of lost time, so the slower it is the sooner it is left (a
  location that collapsed to a tenth of what is needed, after about 0.1 s). The
  verdict must still hold ``SWITCH_HOLD`` seconds later, and a location left for
  slowness waits ``SWITCH_COOLDOWN`` seconds before it is used again (hysteresis:
  the 2x gain, the grace, the hold and the cooldown keep noise from flapping).
  The expectation of a location is its rate measured earlier in this fetch, else
  the sidecar's estimate, else the slowed source's own best rate so far (a
  location nobody knows is assumed as good as the current one was).
- **stall**: a source that delivered nothing for ``STALL_SECONDS`` fails its job.
- A source that fails (error, stall, lying answer) waits ``RETRY_BASE x 2^(n-1)``
  seconds before it is used again, and is dropped after ``MAX_FAILURES`` (at once
  for ``missing`` and ``auth``): never a tight retry loop.
- it keeps ``count`` sources active (the next ones in the plan's order).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sidecar.fetch.evidence import clearly_below
from sidecar.fetch.observe import Observer
from sidecar.fetch.partfile import PartFile
from sidecar.fetch.segments import Job, Segments
from sidecar.fetch.sources import Source
from sidecar.fetch.transport import TransportError
from strategies.failures import ErrorClass

TICK = 0.05
SWITCH_GAIN = 2.0
SWITCH_WINDOW = 0.3
#: The window of a source's rate for splitting work, its best rate and the progress bar.
RATE_WINDOW = 0.5
SWITCH_HOLD = 0.1
SWITCH_COOLDOWN = 5.0
STALL_SECONDS = 5.0
RETRY_BASE = 1.0
MAX_FAILURES = 3
#: Errors a retry within one fetch cannot fix: the location is dropped at once.
PERMANENT = frozenset({"missing", "auth"})


class AllFailed(Exception):
    """Every location failed."""


@dataclass(eq=False)
class Engine:
    sources: list[Source]
    segments: Segments
    part: PartFile
    observer: Observer
    count: int
    """How many sources to keep active."""
    on_tick: Callable[[Engine], None] | None = None
    switches: int = 0
    _tasks: dict[Job, asyncio.Task[None]] = field(default_factory=dict)
    _errors: dict[Job, TransportError] = field(default_factory=dict)
    _workers: dict[int, asyncio.Task[None]] = field(default_factory=dict)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    """Set when the monitor should look now (a worker ended, the last byte is in)."""

    # -- public ------------------------------------------------------------------------
    @property
    def active(self) -> list[Source]:
        return [s for s in self.sources if s.state == "active"]

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return sum(s.rate(now, RATE_WINDOW) or 0.0 for s in self.active)

    async def run(self) -> None:
        """Until every byte is written; :class:`AllFailed` when no location is left."""
        if self.segments.complete:
            return
        try:
            while not self.segments.complete:
                self._fill()
                if not self.active and not self._waiting():
                    raise AllFailed(self._why())
                self._watch(time.monotonic())
                if self.on_tick is not None:
                    self.on_tick(self)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), TICK)
                self._wake.clear()
        finally:
            await self._stop()
        for source in self.active:
            source.end_run()
            source.state = "standby"

    # -- sources -------------------------------------------------------------------------
    def _waiting(self) -> bool:
        return any(s.state == "standby" for s in self.sources)

    def _why(self) -> str:
        return "; ".join(f"{s.shown}: {s.message or 'failed'}" for s in self.sources)

    def _fill(self) -> None:
        now = time.monotonic()
        for source in self.sources:
            if len(self.active) >= self.count:
                return
            if source.state == "standby" and source.retry_at <= now:
                self._activate(source)

    def _activate(self, source: Source) -> None:
        source.activate()
        self._workers[source.index] = asyncio.get_running_loop().create_task(self._worker(source))

    def _deactivate(self, source: Source, error: ErrorClass | None, wait: float) -> None:
        source.end_run(error)
        source.state = "failed" if source.failures >= MAX_FAILURES else "standby"
        source.retry_at = time.monotonic() + wait
        self.observer.stop_window(source.index)
        for job, task in list(self._tasks.items()):
            if job.source == source.index:
                self.segments.release(job)  # now: the next source continues where it stopped
                task.cancel()
        worker = self._workers.pop(source.index, None)
        if worker is not None:
            worker.cancel()

    # -- the monitor -------------------------------------------------------------------
    def _watch(self, now: float) -> None:
        for source in list(self.active):
            job = source.job
            if job is None:
                continue
            expected = source.location.expected_rate
            self.observer.tick(source.index, source.shown, now, source.bytes, expected)
            if now - job.last_byte_at > STALL_SECONDS:
                self._fail_jobs(source, TransportError("server", "stalled mid-body"))
                continue
            self._maybe_switch(source, now)

    def _next_standby(self, now: float) -> Source | None:
        """The location to switch to: the next one in order that has not failed in this
        fetch (a failed one comes back only to replace a source that failed too)."""
        for source in self.sources:
            if source.state == "standby" and source.retry_at <= now and not source.failures:
                return source
        return None

    def _maybe_switch(self, source: Source, now: float) -> None:
        standby = self._next_standby(now)
        seen = source.window(now, SWITCH_WINDOW)
        source.rate(now, RATE_WINDOW)  # keeps its best rate: the guess for the unknown
        left = sum(self.segments.wanted(j) for j in self._tasks if j.source == source.index)
        expected = None if standby is None else standby.expected() or source.peak
        if standby is None or seen is None or not expected or not left:
            source.slow_since = None
            return
        elsewhere = standby.latency() + left / expected
        if not clearly_below(*seen, left / (SWITCH_GAIN * elsewhere)):
            source.slow_since = None
            return
        if source.slow_since is None:
            source.slow_since = now
            return
        if now - source.slow_since < SWITCH_HOLD:
            return
        source.note(f"switched away at {seen[0] / seen[1] / 1e6:.3g} MB/s")
        self.switches += 1
        self.observer.flush(source.index, source.shown, now, source.bytes)
        self._deactivate(source, None, SWITCH_COOLDOWN)
        self._activate(standby)

    def _fail_jobs(self, source: Source, error: TransportError) -> None:
        for job, task in list(self._tasks.items()):
            if job.source == source.index:
                self._errors[job] = error
                task.cancel()

    # -- workers -----------------------------------------------------------------------
    async def _worker(self, source: Source) -> None:
        try:
            await self._work(source)
        finally:
            self._wake.set()

    async def _work(self, source: Source) -> None:
        while not self.segments.complete and source.state == "active":
            job = self.segments.take(source.index, self._rate_of, self._latency_of)
            if job is None:
                await asyncio.sleep(TICK / 2)
                continue
            task = asyncio.get_running_loop().create_task(self._run_job(source, job))
            self._tasks[job] = task
            try:
                await asyncio.wait({task})
            finally:
                if not task.done():
                    task.cancel()
                    await asyncio.wait({task})
                self._tasks.pop(job, None)
                source.job_ended(time.monotonic())
                self.observer.stop_window(source.index)
                self._settle(job)
            error = self._errors.pop(job, None)
            if error is None and not task.cancelled():
                exc = task.exception()
                error = exc if isinstance(exc, TransportError) else None
                if exc is not None and error is None:
                    error = TransportError("local", f"{type(exc).__name__}: {exc}")
            if error is not None:
                source.failures += 1
                if error.error_class in PERMANENT:
                    source.failures = MAX_FAILURES  # retrying cannot help
                source.note(error.args[0] if error.args else "failed")
                wait = RETRY_BASE * 2 ** (source.failures - 1)
                self._deactivate(source, error.error_class, wait)
                return

    def _settle(self, job: Job) -> None:
        segment = job.segment
        if not segment.done and job in (segment.owner, segment.dup) and job.cursor >= segment.end:
            other = self.segments.finish(job)
            if other is not None and other in self._tasks:
                self._tasks[other].cancel()
        else:
            self.segments.release(job)
        if self.segments.complete:
            self._wake.set()

    async def _run_job(self, source: Source, job: Job) -> None:
        assert source.transport is not None
        segments, started = self.segments, time.monotonic()
        requested = job.segment.end
        source.job_started(started)
        async with source.transport.open(job.cursor, requested) as body:
            headed = time.monotonic()
            source.first_byte(headed - started, headed)
            self.observer.start_window(source.index, time.monotonic(), source.bytes)
            async for chunk in body.chunks:
                while chunk:
                    want = segments.wanted(job)
                    if want == 0 and body.whole and segments.extend(job):
                        want = segments.wanted(job)
                    if want == 0:
                        return  # cut short (stolen), or the other copy finished
                    piece = chunk[:want]
                    self.part.write(job.cursor, piece, segments.already_written(job, len(piece)))
                    segments.wrote(job, len(piece))
                    source.add(len(piece), time.monotonic())
                    chunk = chunk[len(piece) :]
                if segments.wanted(job) == 0:
                    if body.whole and not segments.extend(job):
                        return
                    if not body.whole and job.cursor < requested:
                        return  # cut short; else let the answer end (keeps the connection)
        if segments.wanted(job) > 0:
            raise TransportError("server", "body ended early")

    def _rate_of(self, index: int) -> float:
        source = self.sources[index]
        measured = source.rate(time.monotonic(), RATE_WINDOW)
        return max(1.0, measured or source.expected() or 1e6)

    def _latency_of(self, index: int) -> float:
        return self.sources[index].latency()

    async def _stop(self) -> None:
        for worker in self._workers.values():
            worker.cancel()
        for task in self._tasks.values():
            task.cancel()
        pending = [*self._workers.values(), *self._tasks.values()]
        if pending:
            await asyncio.wait(pending)
        self._workers.clear()
