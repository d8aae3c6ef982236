"""The sidecar's service core: history, estimators, metrics, store map, probe scheduler.

No HTTP here: ``sidecar.api`` turns requests into calls of this object and its
answers into responses; ``sidecar.app`` assembles both with the background
tasks. The data flow (see ARCHITECTURE.md): a probe or a client report becomes a
:class:`~sidecar.samples.Sample`, :meth:`SidecarCore.record_many` stores it, then
the estimators learn from it; :meth:`SidecarCore.rank` reads a snapshot of the
estimators and ranks with ``strategies``.

What a rank request teaches that does not decide its answer (which store ids
live on which backends, which locations the scheduler may learn) is queued by
:meth:`SidecarCore.rank`, deduplicated, and applied by :meth:`settle` (a
background task, and before anything that reads it: ``/v1/backends``,
``/metrics``), off the request path.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import probes
from sidecar.config import SidecarConfig
from sidecar.estimators import Estimators
from sidecar.fleet import Fleet
from sidecar.history import History, HistoryError
from sidecar.intake import IngestLimit
from sidecar.looplag import rank_context, touches_files
from sidecar.metrics import SidecarMetrics
from sidecar.replay import CLOCK_SKEW, replay
from sidecar.samples import Sample
from sidecar.scheduler import Prober, ProbeScheduler
from sidecar.stores import StoreMap
from strategies.backends import Backend, backend_of
from strategies.placement import Placed, place
from strategies.prefer import prefer_of
from strategies.ranking import RankContext, rank
from strategies.reasons import RankedLocation
from strategies.registry import available_strategies, get_strategy, load_strategies
from strategies.store_type import normalize_preference

LOG = logging.getLogger(__name__)

MAX_PENDING = 4096
"""Distinct (location, store) pairs waiting for :meth:`SidecarCore.settle`; more are dropped."""
MAX_PLACES = 4096
"""URLs whose placement is remembered (in memory only); the memo is emptied when full."""

RankMode = Literal["metrics", "fleet", "fallback", "static"]


def open_history(config: SidecarConfig) -> History:
    """The daemon's history as configured (not opened yet)."""
    return History(
        config.history.path,
        retention=config.history.retention,
        max_rows=config.history.max_rows,
    )


def package_version() -> str:
    try:
        return version("image-location-sidecar")
    except PackageNotFoundError:
        return "0+unknown"


class Refused(ValueError):
    """A request the core will not carry out; the message says why (answered 422)."""


@dataclass(frozen=True)
class StaticPlace:
    """A location placed by a static strategy: no figures, its position in ``why``."""

    location: dict[str, Any]
    backend: str | None
    why: str
    expected_seconds: None = None
    latency_seconds: None = None
    throughput_bytes_per_second: None = None
    age_seconds: None = None


@dataclass(frozen=True)
class RankAnswer:
    strategy: str
    mode: RankMode
    reason: str
    locations: Sequence[RankedLocation | StaticPlace]
    prefer: list[str]


class EstimatesReader:
    """What the probe scheduler may read of the estimators, and nothing else."""

    def __init__(self, estimators: Estimators) -> None:
        self._estimators = estimators

    def known(self, key: str, now: float) -> tuple[bool, bool]:
        """``(fresh, has a throughput estimate)`` for a backend."""
        state = self._estimators.backends.get(key)
        if state is None:
            return False, False
        has_throughput = state.throughput.value is not None
        return state.estimates().fresh(now, self._estimators.max_age), has_throughput

    def report_throughput_at(self, key: str) -> float | None:
        """Time of the newest client download of ``key`` that measured a throughput."""
        state = self._estimators.backends.get(key)
        return None if state is None else state.newest_report_throughput_at


class SidecarCore:
    """The daemon's state and the operations on it (one event loop; not thread-safe)."""

    def __init__(
        self,
        config: SidecarConfig,
        *,
        clock: Callable[[], float],
        history: History | None = None,
        rng: random.Random | None = None,
        prober: Prober | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.stores = StoreMap()
        self.history = history or open_history(config)
        self.intake = IngestLimit(config.history.max_reports_per_second)
        """Client observations stored per second (``history.max_reports_per_second``)."""
        self.estimators = Estimators(
            config.estimator,
            max_age=config.strategy.metrics.max_age,
            node_id=config.node_id,
        )
        self.metrics = SidecarMetrics(
            version=package_version(),
            estimators=self.estimators,
            history=self.history,
            clock=clock,
            default_image_size=config.strategy.metrics.default_image_size,
        )
        self.fleet = Fleet.install(config, clock, self.metrics.registry)
        policy = config.strategy.metrics
        self.scheduler = ProbeScheduler(
            config.probe,
            record=self.record,
            clock=clock,
            estimates=EstimatesReader(self.estimators),
            registry=self.metrics.registry,
            file_roots=tuple(policy.file_roots),
            local_ceph_fsid=policy.local_ceph_fsid or None,
            hold_at_least=config.estimator.eject_max,
            min_throughput_bytes=config.estimator.min_throughput_bytes,
            rng=rng,
            prober=prober or probes.probe,
        )
        # read once: the settings are fixed for the life of the core (the hot path)
        self._strategy = config.strategy
        self._preference = tuple(normalize_preference(self._strategy.store_type_preference))
        self._roots = tuple(policy.file_roots)
        self._places: dict[str, tuple[Backend | None, str | None]] = {}
        self._rank_counts = {
            mode: self.metrics.rank_requests.labels(mode)
            for mode in ("metrics", "fleet", "fallback", "static")
        }
        self._pending: dict[tuple[str, str | None, str | None], float] = {}
        self._wake = asyncio.Event()

    # -- life cycle -------------------------------------------------------------------
    def open(self) -> int:
        """Open the history (unless the caller already did) and replay recent samples."""
        if not self.history.alive:
            self.history.open()
        replayed = self.rebuild()
        LOG.info(
            "history %s: %d rows, %d recent samples replayed",
            self.config.history.path,
            self.history.rows,
            replayed,
        )
        return replayed

    def rebuild(self) -> int:
        """Replay recent history into the estimators; returns the samples replayed."""
        now = self.clock()
        since, until = now - self.config.history.rebuild_window, now + CLOCK_SKEW
        cap = self.estimators.max_backends
        return self.estimators.rebuild(
            replay(self.history, since=since, until=until, max_backends=cap)
        )

    def close(self) -> None:
        self.history.close()
        LOG.info("history flushed and closed")

    async def prune(self) -> None:
        try:
            await asyncio.wrap_future(self.history.submit_prune(self.clock()))
        except HistoryError as exc:
            LOG.warning("history prune failed: %s", exc)

    # -- samples ------------------------------------------------------------------------
    async def record(self, sample: Sample) -> None:
        """Store one sample (after the commit), then learn from it."""
        await self.record_many([sample])

    async def record_many(self, samples: Sequence[Sample]) -> None:
        """Store samples in one transaction, then learn from them.

        Raises :class:`~sidecar.history.HistoryError` when they cannot be stored;
        nothing is learnt then, so memory never holds what the disk does not.
        """
        if not samples:
            return
        await asyncio.wrap_future(self.history.submit(samples))
        for sample in samples:
            self.estimators.record(sample)
            self.metrics.sample(sample)

    def backend_key(self, url: str) -> str | None:
        try:
            return backend_of(url, file_roots=self.config.strategy.metrics.file_roots).key
        except ValueError:
            return None

    # -- ranking --------------------------------------------------------------------------
    async def rank(
        self,
        locations: list[dict[str, Any]],
        *,
        image_size: int | None,
        image_id: str | None,
        strategy: str | None,
    ) -> RankAnswer:
        """Order ``locations`` (``{"url", "metadata"}`` dicts, not copied) best first."""
        now = self.clock()
        context = self.context(locations, now, image_size=image_size, image_id=image_id)
        if context is None:  # a file:// placement looks for mount points: off the loop
            settings = self._strategy
            context = await rank_context(
                locations,
                now=now,
                policy=settings.metrics,
                image_size=image_size,
                image_id=image_id,
                store_type_preference=settings.store_type_preference,
            )
        return self.answer(context, strategy)

    def context(
        self,
        locations: list[dict[str, Any]],
        now: float,
        *,
        image_size: int | None,
        image_id: str | None,
    ) -> RankContext | None:
        """The locations placed (through the memo), with the settings; ``None`` when a
        ``file://`` location is among them (placing it is I/O: see :meth:`rank`)."""
        places = self._places
        placed = []
        for location in locations:
            known = places.get(location["url"])
            if known is None:
                if touches_files((location,)):
                    return None
                placed.append(self._place(location))
            else:
                placed.append(Placed(location, *known))
        return RankContext(
            tuple(placed), now, self._strategy.metrics, image_size, image_id, self._preference
        )

    def answer(self, context: RankContext, strategy: str | None) -> RankAnswer:
        """The answer for a placed request with ``strategy`` (``None``: the configured one)."""
        settings = self._strategy
        name = (strategy or settings.location_strategy).strip()
        if name not in load_strategies():
            raise Refused(
                f"unknown strategy {name!r}; valid strategies: {', '.join(available_strategies())}"
            )
        now = context.now
        self._saw(context, now)
        mode: RankMode
        ranked: Sequence[RankedLocation | StaticPlace]
        if name == "metrics":
            keys = context.keys()
            stats = self.fleet.with_priors(self.estimators.stats(now, keys), keys, now)
            ranking = rank(context, stats)
            ranked, mode, reason = ranking.locations, ranking.mode, ranking.reason
        else:
            ordered = get_strategy(name).get_ordered_locations(
                [placed.location for placed in context.placed],
                store_type_preference=settings.store_type_preference,
            )
            by_url = {
                p.location["url"]: p.backend.key if p.backend else None for p in context.placed
            }
            ranked = [
                StaticPlace(location, by_url.get(location["url"]), f"{name}: position {n}")
                for n, location in enumerate(ordered, 1)
            ]
            mode, reason = "static", f"static strategy {name}: measurements not used"
        self._rank_counts[mode].inc()
        return RankAnswer(name, mode, reason, ranked, prefer_of([r.location for r in ranked]))

    def _place(self, location: dict[str, Any]) -> Placed:
        """``strategies.placement.place`` of one location, remembered by URL (not
        ``file`` stores: a mount may change)."""
        placed = place(location, "url", self._roots)
        if placed.backend is None or placed.backend.store != "file":
            if len(self._places) >= MAX_PLACES:
                self._places.clear()
            self._places[location["url"]] = (placed.backend, placed.error)
        return placed

    def _saw(self, context: RankContext, now: float) -> None:
        """Queue what this request teaches the store map and the scheduler (see :meth:`settle`)."""
        pending = self._pending
        if not pending:
            self._wake.set()
        for placed in context.placed:
            location, backend = placed.location, placed.backend
            metadata = location.get("metadata")
            store = metadata.get("store") if isinstance(metadata, dict) else None
            entry = (
                location["url"],
                backend.key if backend else None,
                store if isinstance(store, str) else None,  # the map keeps string ids only
            )
            if entry in pending or len(pending) < MAX_PENDING:
                pending[entry] = now

    def settle(self) -> None:
        """Apply what rank requests taught since the last call: store map, scheduler."""
        pending, self._pending = self._pending, {}
        for (_url, key, store), now in pending.items():
            self.stores.saw(store, key, now)
        self.scheduler.learn((url, key) for url, key, _store in pending)

    async def settle_forever(self) -> None:
        """The background task that calls :meth:`settle` whenever rank requests taught something."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            self.settle()
