"""The probe scheduler: runs what ``sidecar.probe_plan`` decides, inside the sidecar.

Targets are the ``[[probe.targets]]`` of the config plus locations learnt from
``/v1/rank`` requests, but only those whose host (or backend key) matches
``probe.learn_from`` and, for ``file://``, whose path lies under
``probe.file_roots``; anything else is never contacted. Redirects, Swift
storage URLs and Keystone endpoints only go to such hosts (or a configured
target's host): ``allow_host`` is the policy of every probe's gate (``probes.gate``).

A learned URL may carry credentials (Glance puts them there). It is kept in
memory only, in its planned target keyed by the redacted backend key: history,
logs, metrics and ``/v1/backends`` see the key, never the URL. After a restart
those URLs are gone: estimates come back from the history, and a backend is
probed again once a rank request names one of its locations (at once if its
data is no longer fresh, else on the normal spread schedule).

This module is the thin, asynchronous part: probes are coroutines (file and
rbd reads run in threads inside ``probes``), results go through the ``record``
function it is given (history, estimators and so the ejection logic), then
metrics. It sees nothing else of the daemon: a clock, an :class:`EstimatesReader`,
its ``[probe]`` config, a few settings and a metrics registry.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

from prometheus_client import CollectorRegistry

import probes
from probes import Measurability, ProbeLimits, ProbeResult, ProbeTarget, Reason, TokenCache
from probes.measurable import ceph_available
from sidecar.history import HistoryError
from sidecar.probe_config import ProbeConfig
from sidecar.probe_metrics import ProbeMetrics
from sidecar.probe_plan import Due, ProbePlanner
from sidecar.probe_state import NoteKind, ProbeStateOut, ProbeStatus
from sidecar.samples import Sample
from strategies.backends import backend_of

LOG = logging.getLogger(__name__)
MAX_NOTES = 1024
"""Backends remembered as not probed (keys only), oldest forgotten first."""

Prober = Callable[[ProbeTarget, ProbeLimits], Awaitable[ProbeResult]]
Record = Callable[[Sample], Awaitable[None]]


class EstimatesReader(Protocol):
    """What the scheduler reads of the estimators."""

    def known(self, key: str, now: float) -> tuple[bool, bool]:
        """``(fresh, has a throughput estimate)`` for a backend."""
        ...

    def report_throughput_at(self, key: str) -> float | None:
        """Time of the newest client download of ``key`` that measured a throughput."""
        ...


@dataclass(frozen=True)
class Note:
    kind: NoteKind
    message: str


def sample_of(
    result: ProbeResult,
    kind: Literal["latency", "throughput"],
    key: str,
    time: float,
    *,
    min_bytes: int = 1,
) -> Sample | None:
    """The history sample of a probe result, or ``None`` when nothing was measured.

    A throughput probe cut by ``probe.timeout`` after at least ``min_bytes``
    (the estimators' ``min_throughput_bytes``) is a measurement of a slow
    backend (bytes read in the time allowed), not a failure. One that read less
    (a backend dripping bytes) measured nothing but its first byte: a failure,
    or a slow-drip backend would look healthy and escape ejection.
    """
    if not result.measured:
        return None
    ok, error_class = result.ok, result.error_class
    if capped(result, kind) and result.bytes >= min_bytes:
        ok, error_class = True, None
    return Sample(
        time=time,
        backend=key,
        source="probe",
        ok=ok,
        error_class=error_class,
        status=result.status,
        first_byte_seconds=result.first_byte_seconds,
        bytes=result.bytes,
        seconds=result.seconds,
        kind=kind,
    )


def capped(result: ProbeResult, kind: str) -> bool:
    return (
        kind == "throughput"
        and result.timed_out
        and result.first_byte_seconds is not None
        and result.bytes > 0
        and result.error_class == "local"
    )


class ProbeScheduler:
    """Owns the planner, the learned targets, the Swift token cache and the probe metrics."""

    def __init__(
        self,
        config: ProbeConfig,
        *,
        record: Record,
        clock: Callable[[], float],
        estimates: EstimatesReader,
        registry: CollectorRegistry,
        file_roots: tuple[str, ...] = (),
        local_ceph_fsid: str | None = None,
        hold_at_least: float = 0.0,
        min_throughput_bytes: int = 1,
        rng: random.Random | None = None,
        prober: Prober = probes.probe,
    ) -> None:
        """``hold_at_least``: the shortest hold of a target after an auth error
        (``estimator.eject_max``); ``min_throughput_bytes``: see :func:`sample_of`."""
        self.config = config
        self.record = record
        self.clock = clock
        self.estimates = estimates
        self.prober = prober
        self.file_roots = file_roots
        self.local_fsid = local_ceph_fsid
        self.min_throughput_bytes = min_throughput_bytes
        self.metrics = ProbeMetrics(registry, budget=lambda: self.planner.budget.level(clock()))
        self.planner = ProbePlanner(
            config,
            rng or random.Random(),
            clock(),
            auth_backoff=max(hold_at_least, config.latency_interval),
            on_skip=self.metrics.skip,
        )
        self.tokens = TokenCache()
        self.notes: OrderedDict[str, Note] = OrderedDict()
        self.configured_hosts = {
            h for h in (backend_of(t.url).host for t in config.targets) if h is not None
        }
        self._rbd = ceph_available()  # imported once, before the loop runs
        self._wake: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def wanted(self) -> bool:
        """Whether there is anything to probe: run :meth:`run` as a task only then."""
        c = self.config
        return c.enabled and bool(c.targets or c.learn_from or c.file_roots)

    # -- learning from rank requests --------------------------------------------------
    def learn(self, locations: Iterable[tuple[str, str | None]]) -> None:
        """Consider ``(url, backend key)`` pairs of a rank request; never blocks."""
        if not self.config.enabled:
            return
        now = self.clock()
        changed = False
        for url, key in locations:
            if key is None:
                continue
            if key in self.planner.targets:
                changed |= self.planner.offer_url(key, url)
                continue
            if key in self.notes:
                self.notes.move_to_end(key)
                continue
            note = self._verdict(url, key)
            if note is None:
                learned = sum(1 for t in self.planner.targets.values() if t.origin == "learned")
                if learned >= self.config.max_learned:
                    note = Note("not_allowed", f"probe.max_learned ({learned}) reached")
            if note is not None:
                self._note(key, note)
                continue
            fresh, has_throughput = self.estimates.known(key, now)
            self.planner.add(
                key, url, origin="learned", now=now, fresh=fresh, has_throughput=has_throughput
            )
            LOG.info("probing %s from now on (learned from a rank request)", key)
            changed = True
        if changed and self._wake is not None:
            self._wake.set()

    def _note(self, key: str, note: Note) -> None:
        if note.kind == "not_allowed":
            self.metrics.skip("not_allowed")
        self.notes[key] = note
        while len(self.notes) > MAX_NOTES:
            self.notes.popitem(last=False)

    def _verdict(self, url: str, key: str) -> Note | None:
        """Why this location must not be probed, or ``None`` when it may be."""
        verdict = self.measurability(url)
        if verdict.outcome != "ok":
            return Note(verdict.outcome, verdict.message)
        try:
            # root "/": the path, host and store without looking for a mount point (no I/O)
            backend = backend_of(url, file_roots=("/",))
        except ValueError as exc:
            return Note("not_measurable", str(exc))
        if backend.store == "rbd":
            if not self.config.host_allowed(None, key):
                return Note("not_allowed", "backend not in probe.learn_from")
        elif backend.store == "file":
            if not self.config.path_allowed(backend.path):
                return Note("not_allowed", "path not under probe.file_roots")
        elif not self.config.host_allowed(backend.host, key):
            return Note("not_allowed", "host not in probe.learn_from")
        return None

    def allow_host(self, host: str) -> bool:
        """Where probes may connect besides a location's own host (``probes.gate``):
        a learn_from host or a configured target's host."""
        return host in self.configured_hosts or self.config.host_allowed(host, host)

    # -- what /v1/backends says -------------------------------------------------------
    def measurability(self, url_or_key: str) -> Measurability:
        """Whether this node can measure a backend, and why not (``probes.measurability``)."""
        return probes.measurability(url_or_key, local_ceph_fsid=self.local_fsid, ceph=self._rbd)

    def keys(self) -> list[str]:
        """Backends to list although they may have no sample: probed or not measurable."""
        listed = list(self.planner.targets)
        listed += [k for k, n in self.notes.items() if n.kind != "not_allowed"]
        return listed

    def describe(self, key: str, now: float) -> ProbeStateOut | None:
        """The scheduler's view of one backend (``probe`` in ``/v1/backends``)."""
        target = self.planner.targets.get(key)
        if target is None:
            note = self.notes.get(key)
            return None if note is None else ProbeStateOut(status=note.kind, note=note.message)
        held = target.hold_until > now
        status: ProbeStatus = (
            "running"
            if target.running
            else "waiting_for_url"
            if target.url is None
            else "held"
            if held
            else "planned"
        )
        return ProbeStateOut(
            status=status,
            origin=target.origin,
            next_latency_at=target.next_latency_at,
            next_throughput_at=target.next_throughput_at,
            held_until=target.hold_until if held and target.hold_until != float("inf") else None,
            last_probe_at=target.last_at,
            last_outcome=target.last_outcome,
            probes=dict(target.probes),
            note=target.hold_reason or target.last_message or None,
        )

    # -- the loop ---------------------------------------------------------------------
    async def run(self) -> None:
        """Plan the configured targets, then start what is due until cancelled."""
        self._wake = asyncio.Event()
        now = self.clock()
        for target in self.config.targets:
            key = backend_of(target.url, file_roots=self.file_roots).key
            fresh, has_throughput = self.estimates.known(key, now)
            self.planner.add(
                key,
                target.url,
                origin="configured",
                now=now,
                fresh=fresh,
                has_throughput=has_throughput,
                credentials=target.credentials,
                ca_file=target.ca_file,
            )
        try:
            while True:
                self._wake.clear()
                report_at = self.estimates.report_throughput_at
                for due in self.planner.take_due(self.clock(), report_at):
                    task = asyncio.create_task(self._probe(due), name=f"probe {due.kind}")
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
                delay = min(max(self.planner.next_wakeup() - self.clock(), 0.05), 60.0)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
        finally:
            pending = list(self._tasks)
            for task in pending:
                task.cancel()
            # let them unwind before the app closes the history under them
            await asyncio.gather(*pending, return_exceptions=True)

    async def _probe(self, due: Due) -> None:
        target = self.planner.targets[due.key]
        assert target.url is not None
        probe_target = ProbeTarget(
            url=target.url,
            credentials=target.credentials,
            swift_tokens=self.tokens,
            local_ceph_fsid=self.local_fsid,
            file_roots=self.file_roots,
        )
        c = self.config
        limits = ProbeLimits(
            max_bytes=due.max_bytes,
            timeout=c.timeout,
            connect_timeout=min(c.connect_timeout, c.timeout),
            max_redirects=c.max_redirects,
            ca_file=target.ca_file or c.ca_file,
            allow_host=self.allow_host,
            allow_path=c.real_path_allowed,
        )
        try:
            result = await self.prober(probe_target, limits)
        except Exception as exc:  # a prober must not kill the scheduler
            LOG.error("probe of %s raised %s", due.key, type(exc).__name__)
            self.planner.finished(
                due, self.clock(), outcome="error", error_class="local", message="crashed"
            )
            self._poke()
            return
        now = self.clock()
        try:
            sample = sample_of(result, due.kind, due.key, now, min_bytes=self.min_throughput_bytes)
        except ValueError as exc:  # beyond the physical limits (sidecar.samples): not stored
            LOG.warning("probe of %s measured the impossible (%s): not stored", due.key, exc)
            sample = None
        if sample is not None:
            try:
                await self.record(sample)
            except HistoryError as exc:
                LOG.warning("probe sample of %s not stored: %s", due.key, exc)
            self.metrics.result(due.key, due.kind, result, sample.ok)
        elif result.reason is Reason.NOT_ALLOWED:
            self.metrics.skip("not_allowed")
        ok = sample is not None and sample.ok
        outcome = "ok" if ok else result.outcome
        self.planner.finished(
            due,
            now,
            outcome=outcome,
            error_class=None if ok else result.error_class,
            bytes_read=result.bytes,
            retry_after=result.retry_after,
            message=result.message,
        )
        if not ok:
            level = logging.WARNING if target.hold_until > now else logging.INFO
            LOG.log(
                level,
                "%s probe of %s: %s %s %s",
                due.kind,
                due.key,
                result.outcome,
                result.error_class or "",
                result.message,
            )
        self._poke()

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()
