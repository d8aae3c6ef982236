"""The sidecar's ASGI application: the service core, its routes and background tasks, assembled.

``create_app(config)`` builds a :class:`SidecarApp` (a FastAPI app) from

- :class:`sidecar.core.SidecarCore` (``app.core``): history, estimators, metrics,
  store map, probe scheduler; ``await app.record(sample)`` stores a sample
  (returns after the commit), then updates the estimators and the metrics;
- :class:`sidecar.api.SidecarAPI`: the routes, an ``APIRouter`` over the core;
- :class:`sidecar.tasks.Supervisor`: ``app.add_background_task(name, factory)``
  runs ``await factory(app)`` for the life of the app; a task that ends or
  raises makes ``/readyz`` fail and stops the systemd watchdog.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

from fastapi import FastAPI

from sidecar.api import EXCEPTION_HANDLERS, RESPONSES, SidecarAPI
from sidecar.auth import BearerAuthMiddleware
from sidecar.config import SidecarConfig
from sidecar.core import SidecarCore, package_version
from sidecar.guards import install_guards
from sidecar.history import History
from sidecar.notify import Notifier
from sidecar.samples import Sample
from sidecar.tasks import Heartbeat, Supervisor, maintenance, watchdog

TaskFactory = Callable[["SidecarApp"], Awaitable[None]]


class SidecarApp(FastAPI):
    """The FastAPI app over one :class:`SidecarCore`; see the module docstring for its API."""

    core: SidecarCore
    api: SidecarAPI
    supervisor: Supervisor
    notifier: Notifier
    heartbeat: Heartbeat

    async def record(self, sample: Sample) -> None:
        await self.core.record_many([sample])

    async def record_many(self, samples: Sequence[Sample]) -> None:
        await self.core.record_many(samples)

    # -- background tasks -------------------------------------------------------------
    @property
    def tasks(self) -> dict[str, asyncio.Task[None]]:
        return self.supervisor.tasks

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self.supervisor.loop

    def add_background_task(self, name: str, factory: TaskFactory) -> None:
        """Run ``await factory(app)`` while the app runs (started now if it already is).

        Safe to call from any thread.
        """
        self.supervisor.add(name, lambda: factory(self))

    def dead_tasks(self) -> list[str]:
        return self.supervisor.dead()

    @contextlib.asynccontextmanager
    async def lifespan_context_manager(self) -> AsyncIterator[None]:
        await asyncio.to_thread(self.core.open)
        self.supervisor.start()
        try:
            yield
        finally:
            await self.supervisor.stop()
            await asyncio.to_thread(self.core.close)


def create_app(
    config: SidecarConfig,
    *,
    clock: Callable[[], float] = time.time,
    notifier: Notifier | None = None,
    history: History | None = None,
) -> SidecarApp:
    """A new, independent sidecar app (tests run several side by side).

    ``history``: one the caller already opened (the daemon's start-up check does),
    so it is not opened twice.
    """
    app = SidecarApp(
        title="location-sidecar",
        version=package_version(),
        description="Ranks OpenStack Glance image locations by measured cost from this node.",
        responses=RESPONSES,
        exception_handlers=dict(EXCEPTION_HANDLERS),
    )
    core = SidecarCore(config, clock=clock, history=history)
    notifier = notifier or Notifier()
    supervisor = Supervisor()
    heartbeat = Heartbeat()
    app.core, app.supervisor, app.notifier, app.heartbeat = core, supervisor, notifier, heartbeat
    app.api = SidecarAPI(core, supervisor.dead)
    # The router's routes, not include_router(): FastAPI 0.165 matches an included
    # router through a layer of its own that costs ~15 us on every request. The router
    # tries its routes in order: the hot /v1/rank first, before FastAPI's /docs routes.
    hot = app.api.hot_route
    app.router.routes.insert(0, hot)
    app.router.routes.extend(route for route in app.api.router.routes if route is not hot)
    app.router.lifespan_context = lambda _app: app.lifespan_context_manager()

    def healthy() -> bool:
        return not supervisor.dead() and core.history.alive

    supervisor.add(
        "maintenance",
        lambda: maintenance(heartbeat, notifier, core.prune, config.history.prune_interval),
    )
    supervisor.add("watchdog", lambda: watchdog(heartbeat, notifier, healthy))
    supervisor.add("settle", core.settle_forever)
    if core.scheduler.wanted:
        supervisor.add("probe-scheduler", core.scheduler.run)
    if config.fleet.enabled:
        supervisor.add("fleet", core.fleet.run)
    install_guards(  # sidecar/guards.py: Host check, body limits, request timing
        app,
        config,
        core.metrics.registry,
        supervisor.add,
        core.metrics.http_duration,
        hot={hot.path: hot.app},
    )
    if config.server.auth_token:  # added last: outermost, before any body is read
        app.add_middleware(
            BearerAuthMiddleware,
            token=config.server.auth_token,
            metrics_auth=config.server.metrics_auth,
        )
    return app
