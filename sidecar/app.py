"""The sidecar's HTTP application: every piece of state lives on the app object.

``create_app(config)`` builds a :class:`SidecarApp` (a FastAPI app) holding the
history, the estimators, the metrics and the background tasks. Other parts of
the daemon (the probe scheduler) use two methods of it:

- ``await app.record(sample)``: store a :class:`~sidecar.samples.Sample` (returns
  after the commit), then update the estimators and the metrics;
- ``app.add_background_task(name, factory)``: run ``await factory(app)`` for the
  life of the app; a task that ends or raises makes ``/readyz`` fail and stops
  the systemd watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sidecar.api_models import (
    MAX_OBSERVATIONS,
    BackendOut,
    BackendsResponse,
    ErrorResponse,
    HistoryResponse,
    ObservationIn,
    ObservationsResponse,
    ProbeStateOut,
    RankedLocationOut,
    RankRequest,
    RankResponse,
    ReadyResponse,
    SampleOut,
    StoreOut,
)
from sidecar.auth import BearerAuthMiddleware
from sidecar.config import SidecarConfig
from sidecar.estimators import Estimators
from sidecar.fleet import Fleet
from sidecar.guards import install_guards
from sidecar.history import History, HistoryError
from sidecar.intake import IngestLimit
from sidecar.looplag import rank_context
from sidecar.metrics import SidecarMetrics
from sidecar.notify import Notifier
from sidecar.replay import CLOCK_SKEW, replay
from sidecar.samples import Sample
from sidecar.scheduler import ProbeScheduler
from sidecar.stores import StoreMap
from strategies.backends import backend_of
from strategies.failures import ERROR_CLASSES
from strategies.metrics import rank
from strategies.prefer import prefer_of
from strategies.registry import available_strategies, get_strategy
from strategies.units import parse_duration

LOG = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
TaskFactory = Callable[["SidecarApp"], Awaitable[None]]


def package_version() -> str:
    try:
        return version("image-location-sidecar")
    except PackageNotFoundError:
        return "0+unknown"


class APIError(Exception):
    """An error answered as ``{"error": message}`` with ``status``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class SidecarApp(FastAPI):
    """The FastAPI app plus the daemon's state; see the module docstring for its API."""

    config: SidecarConfig
    clock: Callable[[], float]
    history: History
    estimators: Estimators
    metrics: SidecarMetrics
    notifier: Notifier
    stores: StoreMap
    scheduler: ProbeScheduler
    fleet: Fleet

    def setup_state(
        self, config: SidecarConfig, clock: Callable[[], float], notifier: Notifier
    ) -> None:
        self.config = config
        self.clock = clock
        self.notifier = notifier
        self.stores = StoreMap()
        self.history = History(
            config.history.path,
            retention=config.history.retention,
            max_rows=config.history.max_rows,
        )
        self.intake = IngestLimit(config.history.max_reports_per_second)
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
        self.progress = 0
        """Ticks of the maintenance loop: the watchdog's proof of life."""
        self.started = False
        self.loop: asyncio.AbstractEventLoop | None = None
        self._factories: list[tuple[str, TaskFactory]] = []
        self.tasks: dict[str, asyncio.Task[None]] = {}

    # -- the API for other parts of the daemon -------------------------------------
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

    def add_background_task(self, name: str, factory: TaskFactory) -> None:
        """Run ``await factory(app)`` while the app runs (started now if it already is).

        Safe to call from any thread.
        """
        if name in self.tasks or any(n == name for n, _ in self._factories):
            raise ValueError(f"background task {name!r} already exists")
        self._factories.append((name, factory))
        if self.started and self.loop is not None:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is self.loop:
                self._start(name, factory)
            else:  # from another thread
                self.loop.call_soon_threadsafe(self._start, name, factory)

    def _start(self, name: str, factory: TaskFactory) -> None:
        async def run() -> None:
            try:
                await factory(self)
            except asyncio.CancelledError:
                raise
            except Exception:
                LOG.exception("background task %s failed", name)
                raise
            LOG.error("background task %s ended", name)

        self.tasks[name] = asyncio.get_running_loop().create_task(run(), name=name)

    def dead_tasks(self) -> list[str]:
        return [name for name, task in self.tasks.items() if task.done()]

    # -- life cycle -------------------------------------------------------------------
    def rebuild(self) -> int:
        """Replay recent history into the estimators; returns the samples replayed."""
        now = self.clock()
        since, until = now - self.config.history.rebuild_window, now + CLOCK_SKEW
        cap = self.estimators.max_backends
        return self.estimators.rebuild(
            replay(self.history, since=since, until=until, max_backends=cap)
        )

    async def maintenance(self) -> None:
        """Tick (the watchdog's proof of progress) and prune old history now and then."""
        tick = 1.0
        if self.notifier.watchdog_seconds:
            tick = min(tick, self.notifier.watchdog_seconds / 8)
        loop = asyncio.get_running_loop()
        next_prune = loop.time()
        while True:
            self.progress += 1
            if loop.time() >= next_prune:
                next_prune = loop.time() + self.config.history.prune_interval
                try:
                    await asyncio.wrap_future(self.history.submit_prune(self.clock()))
                except HistoryError as exc:
                    LOG.warning("history prune failed: %s", exc)
            await asyncio.sleep(tick)

    async def watchdog(self) -> None:
        """``WATCHDOG=1`` at half the period, only while the maintenance loop progresses."""
        period = self.notifier.watchdog_seconds
        if not period:
            await asyncio.Event().wait()  # nothing to do, but stay alive for /readyz
            return
        seen = self.progress
        while True:
            await asyncio.sleep(period / 2)
            healthy = self.progress != seen and not self.dead_tasks() and self.history.alive
            seen = self.progress
            if healthy:
                self.notifier.watchdog()
            else:
                LOG.warning("watchdog: no progress or a dead task; not notifying")

    @contextlib.asynccontextmanager
    async def lifespan_context_manager(self) -> AsyncIterator[None]:
        await asyncio.to_thread(self.history.open)
        replayed = await asyncio.to_thread(self.rebuild)
        LOG.info(
            "history %s: %d rows, %d recent samples replayed",
            self.config.history.path,
            self.history.rows,
            replayed,
        )
        self.loop = asyncio.get_running_loop()
        self.started = True
        for name, factory in self._factories:
            self._start(name, factory)
        try:
            yield
        finally:
            self.started = False
            for task in self.tasks.values():
                task.cancel()
            for task in self.tasks.values():
                with contextlib.suppress(BaseException):
                    await task
            self.tasks.clear()
            await asyncio.to_thread(self.history.close)
            LOG.info("history flushed and closed")


class LimitsMiddleware:
    """Refuses bodies over 1 MiB and times every request for the histogram."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], SidecarMetrics]) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        try:
            length = dict(scope.get("headers") or []).get(b"content-length")
            if length is not None and (not length.isdigit() or int(length) > MAX_BODY_BYTES):
                await _too_large(send)
                return
            if scope.get("method") in ("POST", "PUT", "PATCH"):
                body, too_large = await _read_body(receive)
                if too_large:
                    await _too_large(send)
                    return
                receive = _replay(body, receive)
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            handler = getattr(route, "path", None) or "unmatched"
            self.metrics().http_duration.labels(handler).observe(time.perf_counter() - started)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return b"", True
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks), False


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _too_large(send: Send) -> None:
    response = JSONResponse(
        {"error": f"request body larger than {MAX_BODY_BYTES} bytes"}, status_code=413
    )
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def _backend_key(url: str, app: SidecarApp) -> str | None:
    try:
        return backend_of(url, file_roots=app.config.strategy.metrics.file_roots).key
    except ValueError:
        return None


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def create_app(
    config: SidecarConfig,
    *,
    clock: Callable[[], float] = time.time,
    notifier: Notifier | None = None,
) -> SidecarApp:
    """A new, independent sidecar app (tests run several side by side)."""
    app = SidecarApp(
        title="location-sidecar",
        version=package_version(),
        description="Ranks OpenStack Glance image locations by measured cost from this node.",
        responses={
            400: {"model": ErrorResponse, "description": "Body is not JSON text (e.g. not UTF-8)"},
            401: {"model": ErrorResponse, "description": "Bearer token missing or wrong"},
            413: {"model": ErrorResponse, "description": "Body over 1 MiB"},
            422: {"model": ErrorResponse, "description": "Invalid request"},
        },
    )
    app.setup_state(config, clock, notifier or Notifier())
    app.scheduler = ProbeScheduler.install(app)
    app.fleet = Fleet.install(app)
    app.router.lifespan_context = lambda _app: app.lifespan_context_manager()
    app.add_background_task("maintenance", SidecarApp.maintenance)
    app.add_background_task("watchdog", SidecarApp.watchdog)
    app.add_middleware(LimitsMiddleware, metrics=lambda: app.metrics)
    install_guards(app)  # body budget, Host check, loop lag (sidecar/guards.py)
    if config.server.auth_token:  # added last: outermost, before any body is read
        app.add_middleware(
            BearerAuthMiddleware,
            token=config.server.auth_token,
            metrics_auth=config.server.metrics_auth,
        )

    @app.exception_handler(APIError)
    async def api_error(request: Request, exc: APIError) -> JSONResponse:
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        # A body that may be one object or a list fails both branches of the union;
        # name the branch that matches what was sent, not the other's type error.
        wrong_shape = {"model_attributes_type", "list_type", "dict_type", "model_type"}
        if len(errors) > 1:
            errors.sort(key=lambda error: error.get("type") in wrong_shape)
        details = [
            {
                "field": ".".join(str(part) for part in error.get("loc", ())),
                "message": error.get("msg", "invalid"),
            }
            for error in errors
        ]
        first = details[0] if details else {"field": "body", "message": "invalid"}
        return JSONResponse(
            {
                "error": f"invalid request: {first['field']}: {first['message']}",
                "details": details,
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = str(exc.detail)
        cause = exc.__cause__
        if exc.status_code == 400 and cause is not None:  # FastAPI's body parsing failed
            kind = "not UTF-8" if isinstance(cause, UnicodeDecodeError) else type(cause).__name__
            message = f"cannot parse the body as JSON: {kind}"
        return JSONResponse({"error": message}, status_code=exc.status_code, headers=exc.headers)

    @app.post("/v1/rank", response_model=RankResponse, tags=["ranking"])
    async def rank_locations(body: RankRequest) -> Response:
        """Order locations, best first, and say why each is where it is."""
        name = (body.strategy or app.config.strategy.location_strategy).strip()
        if name not in available_strategies():
            raise APIError(
                422,
                f"unknown strategy {name!r}; valid strategies: {', '.join(available_strategies())}",
            )
        locations: list[dict[str, Any]] = [
            {"url": loc.url, "metadata": loc.metadata} for loc in body.locations
        ]
        preference = app.config.strategy.store_type_preference
        now = app.clock()
        context = await rank_context(  # off the loop when it touches files
            locations,
            now=now,
            policy=app.config.strategy.metrics,
            image_size=body.image_size,
            image_id=body.image_id,
            store_type_preference=preference,
        )
        keyed = [(p.location, p.backend.key if p.backend else None) for p in context.placed]
        for loc, key in keyed:
            app.stores.saw(loc["metadata"].get("store"), key, now)
        app.scheduler.learn((loc["url"], key) for loc, key in keyed)
        mode: Literal["metrics", "fleet", "fallback", "static"]
        if name == "metrics":
            keys = context.keys()
            ranking = rank(
                context, app.fleet.with_priors(app.estimators.stats(now, keys), keys, now)
            )
            out = [
                RankedLocationOut(
                    url=r.location["url"],
                    metadata=r.location["metadata"],
                    backend=r.backend,
                    expected_seconds=_finite(r.expected_seconds),
                    latency_seconds=r.latency_seconds,
                    throughput_bytes_per_second=r.throughput_bytes_per_second,
                    age_seconds=r.age_seconds,
                    why=r.why,
                )
                for r in ranking.locations
            ]
            mode, reason = ranking.mode, ranking.reason
            ordered = ranking.ordered()
        else:
            ordered = get_strategy(name).get_ordered_locations(
                locations, store_type_preference=preference
            )
            keys_by_url = {loc["url"]: key for loc, key in keyed}
            out = [
                RankedLocationOut(
                    url=loc["url"],
                    metadata=loc["metadata"],
                    backend=keys_by_url.get(loc["url"]),
                    expected_seconds=None,
                    latency_seconds=None,
                    throughput_bytes_per_second=None,
                    age_seconds=None,
                    why=f"{name}: position {position}",
                )
                for position, loc in enumerate(ordered, 1)
            ]
            mode, reason = "static", f"static strategy {name}: measurements not used"
        app.metrics.rank_requests.labels(mode).inc()
        answer = RankResponse(
            strategy=name, mode=mode, reason=reason, locations=out, prefer=prefer_of(ordered)
        )
        # Already validated: serialise once here instead of FastAPI validating it again
        # (the hot path; response_model still documents the schema).
        return Response(answer.model_dump_json(), media_type="application/json")

    unavailable: dict[int | str, dict[str, Any]] = {
        503: {"model": ErrorResponse, "description": "History not readable or writable now"}
    }
    limited = unavailable | {
        429: {"model": ErrorResponse, "description": "Over history.max_reports_per_second"}
    }

    @app.post(
        "/v1/observations",
        response_model=ObservationsResponse,
        tags=["measurements"],
        responses=limited,
    )
    async def observations(body: ObservationIn | list[ObservationIn]) -> ObservationsResponse:
        """Report real downloads; answered 200 only once they are stored."""
        items = body if isinstance(body, list) else [body]
        if len(items) > MAX_OBSERVATIONS:
            raise APIError(422, f"at most {MAX_OBSERVATIONS} observations per request")
        now = app.clock()
        samples = []
        for index, item in enumerate(items):
            key = _backend_key(item.url, app)
            if key is None:
                raise APIError(422, f"observation {index}: cannot place its URL on a backend")
            samples.append(
                Sample(
                    time=now,
                    backend=key,
                    source="report",
                    ok=item.ok,
                    error_class=None if item.ok else (item.error or "server"),
                    status=None,
                    first_byte_seconds=item.first_byte_seconds,
                    bytes=item.bytes,
                    seconds=item.seconds,
                    kind="progress" if item.partial else "download",
                )
            )
        if wait := app.intake.take(len(samples)):
            raise APIError(429, f"over {app.intake.rate:g} observations/s: retry in {wait:.2f} s")
        try:
            await app.record_many(samples)
        except HistoryError as exc:
            raise APIError(503, f"not stored: {exc}") from None
        return ObservationsResponse(stored=len(samples))

    @app.get("/v1/backends", response_model=BackendsResponse, tags=["measurements"])
    async def backends() -> BackendsResponse:
        """Every backend seen, with its estimates, data age and ejection state."""
        now = app.clock()
        scheduler = app.scheduler
        out = []
        for v in app.estimators.views(now):
            can, why = scheduler.measurability(v.key)
            probe = scheduler.describe(v.key, now)
            out.append(
                BackendOut(
                    backend=v.key,
                    latency_seconds=v.stats.latency_seconds,
                    throughput_bytes_per_second=v.stats.throughput_bytes_per_second,
                    newest_good_at=v.stats.newest_good_at,
                    age_seconds=v.age_seconds,
                    fresh=v.fresh,
                    ejected=v.ejected,
                    ejected_until=v.stats.ejected_until if v.ejected else None,
                    ejected_reason=v.stats.ejected_reason if v.ejected else None,
                    measurable=can or v.estimated,
                    not_measurable_reason=None if can or v.estimated else why,
                    probe=ProbeStateOut(**probe) if probe else None,
                    samples=v.samples,
                    errors=v.errors,
                )
            )
        seen = {b.backend for b in out}
        for key in sorted(set(scheduler.keys()) - seen):  # probed or noted, no sample yet
            can, why = scheduler.measurability(key)
            probe = scheduler.describe(key, now)
            out.append(
                BackendOut(
                    backend=key,
                    latency_seconds=None,
                    throughput_bytes_per_second=None,
                    newest_good_at=None,
                    age_seconds=None,
                    fresh=False,
                    ejected=False,
                    ejected_until=None,
                    ejected_reason=None,
                    measurable=can,
                    not_measurable_reason=why,
                    probe=ProbeStateOut(**probe) if probe else None,
                    samples={"probe": 0, "report": 0},
                    errors=dict.fromkeys(ERROR_CLASSES, 0),
                )
            )
        return BackendsResponse(
            now=now,
            network_suspect=app.estimators.network_suspect(now),
            backends=out,
            stores=[
                StoreOut(store=s.store, backends=s.backends, last_seen=s.last_seen)
                for s in app.stores.views()
            ],
        )

    @app.get(
        "/v1/history", response_model=HistoryResponse, tags=["measurements"], responses=unavailable
    )
    async def history(
        backend: str | None = Query(default=None, max_length=4096),
        since: str | None = Query(
            default=None,
            description="'1h' ago, or epoch seconds",
            pattern=r"^\s*[0-9.]+\s*(ms|s|m|h|d|w)?(\s*[0-9.]+\s*(ms|s|m|h|d|w)?)*\s*$",
            max_length=64,
        ),
        limit: int = Query(default=100, ge=1, le=10000),
    ) -> HistoryResponse:
        """Stored samples, newest first."""
        now = app.clock()
        start = None
        if since is not None:
            try:
                start = float(since) if since.replace(".", "", 1).isdigit() else None
                if start is None:
                    start = now - parse_duration(since, name="since")
            except ValueError as exc:
                raise APIError(422, str(exc)) from None
        key = (_backend_key(backend, app) or backend) if backend else None
        try:
            rows = await asyncio.to_thread(
                app.history.read, since=start, backend=key, limit=limit, newest_first=True
            )
        except Exception as exc:
            raise APIError(503, f"history unavailable: {type(exc).__name__}") from None
        return HistoryResponse(
            now=now, samples=[SampleOut(**sample.as_row() | {"ok": sample.ok}) for sample in rows]
        )

    @app.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The process is alive and answering."""
        return {"status": "ok"}

    @app.get(
        "/readyz",
        tags=["health"],
        response_model=ReadyResponse,
        responses={503: {"model": ReadyResponse, "description": "Not ready: see checks"}},
    )
    async def readyz() -> JSONResponse:
        """History writable and background tasks alive."""
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(asyncio.wrap_future(app.history.submit_check()), 5.0)
            checks["history"] = "ok"
        except (HistoryError, TimeoutError) as exc:
            checks["history"] = f"failing: {exc or 'timeout'}"
        dead = app.dead_tasks()
        checks["tasks"] = f"dead: {', '.join(dead)}" if dead else "ok"
        ready = all(value == "ok" for value in checks.values())
        body = {"ready": ready, "checks": checks, "fleet": app.fleet.describe(app.clock())}
        return JSONResponse(body, status_code=200 if ready else 503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus text format."""
        return Response(generate_latest(app.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return app
