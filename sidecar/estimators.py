"""Per-backend estimates learnt from samples (see ARCHITECTURE.md, Estimators).

- Latency: a peak-sensitive, time-decayed EWMA (``w = exp(-dt/tau)``, tau about
  15 min): a slower sample raises the estimate at once (by up to ``MAX_STEP``),
  faster ones pull it down slowly, so a backend that just stalled is not trusted
  again after one good reply.
- Throughput: a time-decayed EWMA (tau about 2 h) that moves most of the way at
  once when a sample falls below half the estimate (a sharp drop is news).
- A client's real download counts as ``report_weight`` probes.
- A client's report of a download still running (``kind="progress"``: the
  bytes of one recent window) feeds the throughput estimate only: a backend that
  slows down mid-transfer is news before the transfer ends. It is not a finished
  success: it neither resets the failures in a row nor ends an ejection, so a
  backend whose transfers break at 90% is still ejected.
- Failures by class: ``local``/``server`` failures in a row eject the backend
  for a jittered, doubling time (about 60 s up to 30 min); after that it is on
  probation: one good sample brings it back, one more failure ejects it again
  for twice as long. ``auth`` is a configuration problem: the backend is flagged
  and set aside for ``eject_max`` at once, with no doubling loop. ``missing``
  (404) says the object is absent, not that the backend is bad: counted only.
- When every recently active backend is failing at the same time, the fault is
  most likely this node's own network: nobody is reported ejected.
- One sample moves an estimate by at most a factor of ``MAX_STEP`` (4) either
  way: it is clamped to within that factor of the current estimate before it is
  averaged in (the first sample of a backend sets it, within the physical limits
  of :mod:`sidecar.samples`). A stall still shows at once (x4 per sample) and a
  single absurd report is forgotten as fast as an honest one.
- A success that moved no bytes (``download`` or ``throughput`` with ``bytes``
  0) measured nothing: it is counted, but neither ends an ejection nor resets
  the failures in a row.
- At most ``max_backends`` (1024) backends are tracked; a new one evicts the
  least recently useful (oldest newest sample, then oldest good one), so a
  real new backend is never locked out and memory and ``/metrics`` stay bounded.

Updates use the samples' own times, never the clock, so replaying history at
start-up rebuilds exactly the same state. The clock only enters through ``now``
when a snapshot is taken.
"""

from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from sidecar.config import EstimatorConfig
from sidecar.replay import Replayed
from sidecar.samples import MAX_RATE, MAX_SECONDS, MIN_SECONDS, SOURCES, Sample
from strategies.failures import ERROR_CLASSES
from strategies.stats import BackendStats

_NETWORK_CLASSES = ("local", "server")
_MOVING_KINDS = ("download", "throughput")
"""Kinds of success that must move bytes to count as one."""

_Values = tuple[float | None, float | None, float | None, float | None, str | None]
"""What :class:`BackendStats` is built from (latency, throughput, newest good, ejection)."""

MAX_STEP = 4.0
"""One sample moves an estimate by at most this factor, up or down."""
MAX_BACKENDS = 1024
"""Backends tracked at once; a new one evicts the least recently useful."""


def bounded(x: float, current: float | None, *, unit: float, ceiling: float) -> float:
    """``x`` within ``[0, ceiling]`` and within ``MAX_STEP`` of ``current`` (when set).

    ``unit`` is the smallest meaningful value: an estimate at 0 may still rise to
    ``unit * MAX_STEP`` in one step.
    """
    x = min(max(x, 0.0), ceiling)
    if current is None or not math.isfinite(current):
        return x
    base = max(current, unit)
    return min(max(x, current / MAX_STEP), base * MAX_STEP)


@dataclass
class Ewma:
    """A time-decayed exponentially weighted moving average."""

    value: float | None = None
    at: float | None = None

    def weight(self, time: float, tau: float, min_weight: float, multiplier: float) -> float:
        if self.value is None or self.at is None:
            return 1.0
        alpha = max(1.0 - math.exp(-max(0.0, time - self.at) / tau), min_weight)
        return 1.0 - float((1.0 - alpha) ** multiplier)

    def update(self, x: float, time: float, weight: float) -> None:
        if self.value is None:
            self.value = x
        else:
            self.value += weight * (x - self.value)
        self.at = time if self.at is None else max(self.at, time)


@dataclass
class BackendState:
    """Everything learnt about one backend."""

    key: str
    latency: Ewma = field(default_factory=Ewma)
    throughput: Ewma = field(default_factory=Ewma)
    newest_good_at: float | None = None
    """Epoch seconds of the newest successful sample."""
    newest_at: float | None = None
    """Epoch seconds of the newest sample, good or not (what the LRU cap and
    the network-suspect check go by)."""
    newest_report_throughput_at: float | None = None
    """Newest client download that measured a throughput: throughput probes wait while fresh."""
    last_ok: bool | None = None
    last_error_class: str | None = None
    """Failure class of the newest sample when it failed (the failure vocabulary)."""
    consecutive_failures: int = 0
    ejections: int = 0
    """Ejections since the last good sample: the exponent of the backoff."""
    ejected_until: float | None = None
    ejected_reason: str | None = None
    auth_failed: bool = False
    samples: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SOURCES, 0))
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ERROR_CLASSES, 0))

    def estimates(self) -> BackendStats:
        """The estimates and the newest good sample's time, without the ejection state."""
        return BackendStats(self.latency.value, self.throughput.value, self.newest_good_at)


@dataclass(frozen=True)
class BackendView:
    """A backend as ``GET /v1/backends`` shows it."""

    key: str
    stats: BackendStats
    age_seconds: float | None
    fresh: bool
    ejected: bool
    estimated: bool
    """Has both a latency and a throughput estimate."""
    auth_failed: bool
    samples: dict[str, int]
    errors: dict[str, int]


class Estimators:
    """The estimates of every backend seen; touched from one thread (the event loop)."""

    def __init__(
        self,
        config: EstimatorConfig,
        *,
        max_age: float,
        node_id: str = "",
        max_backends: int = MAX_BACKENDS,
    ) -> None:
        self.config = config
        self.max_age = max_age
        self.node_id = node_id
        self.max_backends = max_backends
        self.backends: dict[str, BackendState] = {}
        self.evicted = 0
        """Backends evicted to make room for a new one."""
        self.on_evict: list[Callable[[str], None]] = []
        """Called with the key of each evicted backend (the metrics drop its series)."""
        self.version = 0
        """Counts the samples learnt and the backends evicted: what a snapshot depends on."""
        self._suspect: tuple[int, float, float, bool] | None = None
        """``network_suspect`` as (version, computed at, valid until, value)."""
        self._snapshots: dict[str, tuple[int, bool, _Values, BackendStats]] = {}
        """Per backend, the statistics last built, the values they were built from and
        the version and ``network_suspect`` they were checked at."""

    def _state(self, key: str) -> BackendState:
        state = self.backends.get(key)
        if state is None:
            while len(self.backends) >= self.max_backends:
                self._evict()
            state = self.backends[key] = BackendState(key)
        return state

    def _evict(self) -> None:
        def usefulness(state: BackendState) -> tuple[float, float]:
            # Newest sample of any kind first: a failing backend's ejection is worth keeping.
            return (state.newest_at or -math.inf, state.newest_good_at or -math.inf)

        victim = min(self.backends.values(), key=usefulness).key
        del self.backends[victim]
        self._snapshots.pop(victim, None)
        self.version += 1
        self.evicted += 1
        for callback in self.on_evict:
            callback(victim)

    def rebuild(self, replayed: Iterable[Replayed]) -> int:
        """Learn from the history's replay; returns the samples replayed.

        The sample and error counts are those of every stored row of the
        window, not only of the samples replayed.
        """
        total = 0
        for part in replayed:
            for sample in part.samples:
                self.record(sample)
            total += len(part.samples)
            state = self.backends.get(part.backend)
            if state is None:
                continue
            state.samples = dict.fromkeys(SOURCES, 0)
            state.errors = dict.fromkeys(ERROR_CLASSES, 0)
            for source, ok, error_class, rows in part.counts:
                if source in state.samples:
                    state.samples[source] += int(rows)
                if not ok and error_class in state.errors:
                    state.errors[error_class] += int(rows)
        return total

    def record(self, sample: Sample) -> BackendState:
        self.version += 1
        state = self._state(sample.backend)
        state.samples[sample.source] += 1
        state.newest_at = (
            sample.time if state.newest_at is None else max(state.newest_at, sample.time)
        )
        if sample.kind == "progress":
            if sample.bytes > 0 and sample.seconds > 0:
                self._throughput(state, sample, sample.bytes / sample.seconds)
            return state
        if sample.ok and sample.bytes == 0 and sample.kind in _MOVING_KINDS:
            return state  # moved nothing: measured nothing
        state.last_ok = sample.ok
        state.last_error_class = sample.error_class
        if sample.ok:
            self._good(state, sample)
        else:
            self._failed(state, sample)
        return state

    def _good(self, state: BackendState, sample: Sample) -> None:
        c = self.config
        multiplier = c.report_weight if sample.source == "report" else 1.0
        latency = self._latency_of(sample)
        if latency is not None:
            ewma = state.latency
            latency = bounded(latency, ewma.value, unit=MIN_SECONDS, ceiling=MAX_SECONDS)
            if ewma.value is not None and latency > ewma.value:
                ewma.update(latency, sample.time, 1.0)  # peak-sensitive: rise at once
            else:
                w = ewma.weight(sample.time, c.latency_tau, c.min_weight, multiplier)
                ewma.update(latency, sample.time, w)
        throughput = self._throughput_of(sample)
        if throughput is not None:
            self._throughput(state, sample, throughput)
        elif latency is not None:
            self._good_at(state, sample.time)
        state.consecutive_failures = 0
        state.ejections = 0
        state.ejected_until = None
        state.ejected_reason = None
        state.auth_failed = False

    def _throughput(self, state: BackendState, sample: Sample, throughput: float) -> None:
        c = self.config
        multiplier = c.report_weight if sample.source == "report" else 1.0
        ewma = state.throughput
        throughput = bounded(throughput, ewma.value, unit=1.0, ceiling=MAX_RATE)
        w = ewma.weight(sample.time, c.throughput_tau, c.min_weight, multiplier)
        if ewma.value is not None and throughput < ewma.value * c.sharp_drop_ratio:
            w = max(w, c.sharp_drop_weight)
        ewma.update(throughput, sample.time, w)
        if sample.source == "report":
            last = state.newest_report_throughput_at
            state.newest_report_throughput_at = max(last or sample.time, sample.time)
        self._good_at(state, sample.time)

    @staticmethod
    def _good_at(state: BackendState, time: float) -> None:
        state.newest_good_at = (
            time if state.newest_good_at is None else max(state.newest_good_at, time)
        )

    def _latency_of(self, sample: Sample) -> float | None:
        if sample.first_byte_seconds is not None:
            return sample.first_byte_seconds
        if sample.kind == "latency" or sample.bytes < self.config.min_throughput_bytes:
            return sample.seconds
        return None

    def _throughput_of(self, sample: Sample) -> float | None:
        if sample.kind == "latency" or sample.bytes < self.config.min_throughput_bytes:
            return None
        transfer = sample.seconds - (sample.first_byte_seconds or 0.0)
        if transfer <= 0:
            return None
        return sample.bytes / transfer

    def _failed(self, state: BackendState, sample: Sample) -> None:
        c = self.config
        error = sample.error_class
        assert error is not None
        state.errors[error] += 1
        if error == "missing":
            return
        if error == "auth":
            state.auth_failed = True
            state.ejected_until = sample.time + c.eject_max
            state.ejected_reason = "auth error (401/403): check the credentials; not retried"
            return
        state.consecutive_failures += 1
        now = sample.time
        ejected_now = state.ejected_until is not None and state.ejected_until > now
        on_probation = state.ejections > 0 and not ejected_now
        if on_probation or (not ejected_now and state.consecutive_failures >= c.eject_after):
            self._eject(state, now, error)

    def _eject(self, state: BackendState, now: float, error: str) -> None:
        c = self.config
        state.ejections += 1
        base = min(c.eject_base * 2 ** (state.ejections - 1), c.eject_max)
        # Deterministic jitter: the same after a replay, different per node and backend.
        rng = random.Random(f"{self.node_id}|{state.key}|{state.ejections}|{now!r}")
        seconds = base * (1.0 + rng.uniform(-c.eject_jitter, c.eject_jitter))
        state.ejected_until = now + seconds
        state.ejected_reason = (
            f"{state.consecutive_failures} consecutive failures, last {error}; "
            f"ejection {state.ejections}"
        )

    def network_suspect(self, now: float) -> bool:
        """Every backend active within ``max_age`` (two or more) failed its last sample.

        Worked out once per sample learnt: the answer stands until a sample arrives
        or an active backend's newest sample passes ``max_age`` (or the clock steps back).
        """
        known = self._suspect
        if known is not None:
            version, since, until, suspect = known
            if version == self.version and since <= now <= until:
                return suspect
        active = [
            s
            for s in self.backends.values()
            if s.newest_at is not None and now - s.newest_at <= self.max_age
        ]
        suspect = len(active) >= 2 and all(
            s.last_ok is False and s.last_error_class in _NETWORK_CLASSES for s in active
        )
        # 1 ms short of the first active backend going quiet: no rounding decides it
        ends = [s.newest_at + self.max_age for s in active if s.newest_at is not None]
        until = min(ends, default=math.inf)
        self._suspect = (self.version, now, until - 1e-3, suspect)
        return suspect

    def _stats(self, state: BackendState, now: float, suspect: bool) -> BackendStats:
        """The statistics of one backend; the same object while its values are the same
        (what a snapshot works out once, e.g. ``BackendStats.problem``, is kept)."""
        known = self._snapshots.get(state.key)
        if known is not None and known[0] == self.version and known[1] is suspect:
            return known[3]  # nothing learnt since: the values cannot have changed
        ejected_until, reason = state.ejected_until, state.ejected_reason
        if suspect and not state.auth_failed:
            ejected_until, reason = None, None
        values: _Values = (
            state.latency.value,
            state.throughput.value,
            state.newest_good_at,
            ejected_until,
            reason,
        )
        if known is not None and all(map(operator.is_, known[2], values)):
            stats = known[3]
        else:
            stats = BackendStats(*values)
        self._snapshots[state.key] = (self.version, suspect, values, stats)
        return stats

    def stats(self, now: float, keys: Iterable[str] | None = None) -> dict[str, BackendStats]:
        """Snapshots for :func:`strategies.ranking.rank` (all backends when ``keys`` is None)."""
        suspect = self.network_suspect(now)
        if keys is None:
            return {key: self._stats(state, now, suspect) for key, state in self.backends.items()}
        backends = self.backends
        return {key: self._stats(backends[key], now, suspect) for key in keys if key in backends}

    def views(self, now: float) -> list[BackendView]:
        suspect = self.network_suspect(now)
        views = []
        for key in sorted(self.backends):
            state = self.backends[key]
            stats = self._stats(state, now, suspect)
            views.append(
                BackendView(
                    key=key,
                    stats=stats,
                    age_seconds=stats.age(now),
                    fresh=stats.fresh(now, self.max_age),
                    ejected=stats.ejected(now),
                    estimated=stats.estimated(),
                    auth_failed=state.auth_failed,
                    samples=dict(state.samples),
                    errors=dict(state.errors),
                )
            )
        return views
